// Package release tests the CanaryRelease resource (its generated CRD in
// charts/meshcanary/crds, pkg/apis/meshcanary/v1alpha1) and its access layer
// (pkg/release) against a real local control plane (internal/testenv),
// which installs the CRD as the chart does; it has no code of its own.
//
// Contract:
//   - The API server, not a fake, judges: status writes are conditional on
//     the resourceVersion, the schema refuses what the controller must never
//     write and keeps the opaque fields as written, kubectl shows the
//     printer columns, and the garbage collector removes a CanaryRelease
//     with its Deployment.
//   - Each test works in a namespace of its own and waits by polling with
//     deadlines, never by sleeping.
package release
