// Package virtualservice finds and rewrites the canary weights of an Istio
// VirtualService without owning the rest of it.
//
// Users own their VirtualService; meshcanary borrows exactly two numbers in
// it: the weight of the destination with the stable subset and the weight of
// the destination with the canary subset, both in one HTTP route (see
// Target). The package works on the raw object (the content of an
// *unstructured.Unstructured) rather than on Istio's typed structs, because a
// round trip through typed structs drops fields the typed client does not
// know and reorders or defaults others.
//
// Guarantees:
//
//   - Find and SetCanaryWeight never mutate their input and never panic,
//     whatever the shape of the input; a VirtualService that does not fit
//     is reported as a *FitError naming the field and what was expected.
//   - Edit.Result differs from the input only in the two managed weights.
//     Every other route, destination, match, retry, timeout, fault, mirror,
//     header operation, delegate and unknown field is kept as it was.
//   - In Edit.Result the weights of the managed route sum to 100: the canary
//     gets the requested weight (clamped so that destinations meshcanary does
//     not manage keep their weights), stable gets the rest.
//
// What callers must do: send Edit.PatchJSON as a JSON Patch
// (types.JSONPatchType), not an update of Edit.Result. The patch starts with
// `test` operations pinning the route name, the hosts and subsets of both
// destinations and their current weights to what Find saw, so that a
// concurrent edit by the user (a route inserted above the managed one, a
// subset renamed, weights changed by hand) makes the API server reject the
// whole patch instead of letting meshcanary write into the wrong place. On
// such a rejection (HTTP 422 Unprocessable Entity, a failed test operation)
// the caller re-reads the VirtualService and calls SetCanaryWeight again.
// When Edit.Changed is false there is nothing to send.
package virtualservice
