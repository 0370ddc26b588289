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
//   - The rollout State lives in the Deployment's CanaryRelease (created on
//     first sight, owned by the Deployment) and is read from nowhere else:
//     the Deployment's annotations are rewritten by people's tools (an undo
//     restores a ReplicaSet's), so they only carry a summary that is
//     written, never read back. A state from an annotation-state version is
//     adopted once.
//   - Each decision is recorded first, in one status write of the
//     CanaryRelease guarded by its resourceVersion; Events follow, then the
//     actions in the order weight → scale → promote, then the Deployment's
//     summary and the removal of the consumed commands (guarded by the
//     Deployment's resourceVersion, so a command written meanwhile is never
//     lost). The record is the intent: a failed action returns an error,
//     the key is retried with backoff, and the core finishes the recorded
//     decision; a consumed command whose removal failed is remembered in
//     the record and never acted on twice.
//   - Nothing slow runs on the reconcile path: a due analysis is asked of a
//     bounded pool (Config.AnalysisWorkers, each under AnalysisTimeout),
//     the reconcile goes on deciding without it, and the result wakes the
//     rollout through the workqueue; its window ends when it was asked
//     for. A reconcile with a rollback command asks for no analysis at
//     all. A Controller that was never Run analyses inline, for tests.
//   - A panic in one reconcile is caught: that rollout shows Invalid with
//     the message and a Warning, its traffic is left alone, the key is
//     retried with backoff, and every other rollout keeps being served.
//   - The VirtualService is changed only by a JSON Patch of the two managed
//     weights guarded by test operations (pkg/virtualservice); a rejected
//     patch is recomputed from a fresh read.
//   - Bad user input (annotations, policy, VirtualService, DestinationRule)
//     never returns an error to the queue and never touches traffic: it is an
//     Invalid phase, a Warning Event and a log line naming the field.
//   - Recent writes are overlaid on the informer caches (client-go's
//     MutationCache) so a reconcile right after a write never decides from
//     the state before it.
//   - The informer caches hold only what the controller reads (stripUnread:
//     no managedFields, no kubectl last-applied-configuration), so no write
//     ever sends a cached object back whole: Deployments are patched, the
//     pod template too (writeTemplate).
//   - With Config.Owns set (sharding, pkg/shard), a worker drops every key
//     of another replica's shard before any work, however it was queued;
//     the caches still hold every object, so a shard taken over starts warm.
//   - Release slots (Config.MaxConcurrentReleases) are counted in memory,
//     rebuilt from the CanaryReleases when Run starts, and taken under a
//     lock together with the count the core decided on, so two workers
//     never take the last one; a release that ends wakes the releases
//     first in line through the workqueue.
//   - A reconcile's cost does not grow with the number of other rollouts:
//     objects are found by key or informer index (the DestinationRule by
//     its host), never by listing, and the controller's metric series are
//     deleted by their exact label values (RolloutGaugeVec), never by
//     DeletePartialMatch.
//   - No Kubernetes Event is lost silently: NewEventRecorder counts every
//     Event that is spam-filtered, finds the queue full or is never written
//     in meshcanary_events_dropped_total{reason} and logs the first of each
//     reason and every Nth. Events are written on a client whose rate
//     limit is not the one that moves traffic.
package controller
