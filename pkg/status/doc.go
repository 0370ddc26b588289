// Package status is the read model of a rollout: what the controller
// publishes on the stable Deployment's annotations, decoded for tools (the
// kubectl plugin, tests, scripts). The controller writes through the same
// types, so reader and writer cannot drift apart.
//
// Contract: Read never fails on a Deployment that is merely not opted in or
// has never been reconciled; it returns what is there. The JSON shapes of
// Analysis and Release are versioned by adding fields only.
package status
