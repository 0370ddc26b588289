// Package release reads and writes CanaryReleases
// (pkg/apis/meshcanary/v1alpha1), the status resources where the controller
// keeps each opted-in Deployment's rollout state, through the dynamic client
// and the typed structs; there is no generated clientset.
//
// Contract:
//   - NewForDeployment makes the one CanaryRelease of a Deployment: same name
//     and namespace, owned by it (controller reference), so deleting the
//     Deployment garbage-collects it.
//   - Create writes metadata and spec only: the API server drops the status
//     of a create on a resource with a status subresource, so a new
//     CanaryRelease's status is written with UpdateStatus afterwards.
//   - UpdateStatus is a conditional write: it carries the resourceVersion the
//     object was read at and refuses to send none, so a concurrent writer
//     yields a Conflict (apierrors.IsConflict) instead of one write silently
//     replacing the other. The caller re-reads and decides again.
//   - Errors from the API server are wrapped with %w, so apierrors' Is*
//     functions see through them.
package release
