// Package controller is the thin client-go shell around the decision core in
// pkg/stages. It owns no policy of its own: for each opted-in Deployment it
// gathers observations from informer caches (and, when the core says an
// analysis is due, one verdict from Prometheus through pkg/metrics), asks
// stages.Decide, and performs the returned actions.
//
// Contract:
//   - Every wake-up is a key (namespace/name of the stable Deployment) on one
//     rate-limited workqueue: watch events of the stable and canary
//     Deployments, VirtualServices and DestinationRules, policy reloads, and
//     the core's RequeueAfter (AddAfter). No goroutine or ticker per rollout.
//   - An idle opted-in Deployment costs no API calls and no Prometheus
//     queries: reconciling it reads only from the informer caches and writes
//     nothing when nothing changed.
//   - Actions run in the order weight → scale → promote → persist. The
//     rollout State is persisted last, in one merge patch of the stable
//     Deployment's annotations that also removes the command annotations
//     the decision consumed (with a resourceVersion precondition, so a
//     command written meanwhile is never lost). A failed action returns an
//     error and the key is retried with backoff from unchanged State.
//   - The VirtualService is changed only by a JSON Patch of the two managed
//     weights guarded by test operations (pkg/virtualservice); a rejected
//     patch is recomputed from a fresh read.
//   - Bad user input (annotations, policy, VirtualService, DestinationRule)
//     never returns an error to the queue and never touches traffic: it is an
//     Invalid phase, a Warning Event and a log line naming the field.
//   - Recent writes are overlaid on the informer caches (client-go's
//     MutationCache) so a reconcile right after a write never decides from
//     the state before it.
package controller
