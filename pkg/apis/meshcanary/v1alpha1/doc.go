// Package v1alpha1 is the meshcanary.io/v1alpha1 API: the CanaryRelease, the
// status resource where the controller keeps the rollout state of one
// opted-in Deployment.
//
// The state used to live in annotations on the stable Deployment, which
// `kubectl rollout undo` overwrites wholesale with a ReplicaSet's, so a
// rollback by hand could erase a release in progress. A CanaryRelease is a
// separate object that nothing but the controller writes.
//
// Contract:
//   - One CanaryRelease per opted-in Deployment, with the Deployment's name
//     and namespace, owned by it (garbage-collected with it).
//   - Users fill nothing: spec.deployment repeats the name for readers, and
//     everything else is status, written only through the status
//     subresource with the resourceVersion it was read at.
//   - status.state, status.plan and status.lastAnalysis are JSON objects the
//     API server stores as given (x-kubernetes-preserve-unknown-fields): their
//     schema is the controller's Go types, which evolve without a CRD change.
//     status.history is typed and converts to and from pkg/status.Release
//     through JSON.
//   - The CRD (charts/meshcanary/crds/) and zz_generated.deepcopy.go are
//     generated from this package by `make generate`; `make verify` fails
//     when they are stale.
//
// There are no package variables: the group, version and scheme registration
// are functions, so nothing here can be changed at run time.
//
// +kubebuilder:object:generate=true
// +groupName=meshcanary.io
package v1alpha1
