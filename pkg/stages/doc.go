// Package stages is meshcanary's decision core: given what the controller
// observed about one opted-in Deployment and the rollout's recorded State, it
// decides what should happen next. It is deterministic and does no I/O.
//
// The contract, in the manner of a state machine that leaves I/O to its
// caller:
//
//   - The caller gathers an Observation (both Deployments, the weight the
//     VirtualService carries now, the command annotations, and, when
//     AnalysisDue says so, one analysis verdict from Prometheus) and passes
//     the current time. Nothing here reads a clock, sleeps, or talks to the
//     API server or Prometheus.
//   - Decide returns a Decision: the next State, and at most one of each
//     action (write the canary weight, scale the canary, copy the canary's
//     pod template into stable), the Events to emit and when to be woken.
//   - The caller records Decision.State first, in one guarded write; then
//     it performs the actions in this order: weight, scale, promote; last it
//     removes the command annotations the Decision consumed. State.Unremoved
//     remembers consumed commands until their removal is seen, so a command
//     is acted on exactly once even when that removal fails. The State is
//     the intent: if a later action fails, or the process dies before
//     it, the next decision finishes it towards the same outcome (a weight
//     recorded as pending is rewritten; a promotion is repeated), so a
//     rollback decision never turns back into canary traffic. If the record
//     itself fails, nothing was done and the next reconcile decides again.
//   - A recorded State that is missing or makes no sense (a hand edit, a
//     restore) is replaced: traffic returns to stable first, a StateLost
//     Warning says so, and a wanted release starts from its first stage.
//   - A release follows the stages pinned when it started (EffectivePlan);
//     changes to the configured plan apply to the next release.
//   - The caller counts the release slots (Observation.Slots, the
//     controller's --max-concurrent-releases). A release about to start
//     while they are taken waits, queued (Queued, State.QueuedAt, one
//     Queued Event), until the caller asks again with a slot free for it;
//     a release in flight is never held by them.
//   - The caller re-invokes Decide on every relevant watch event and after
//     Decision.RequeueAfter. Decide is idempotent for an unchanged
//     Observation: repeating it asks for no new action.
//
// Safety rules the core guarantees, each covered by scenario tests:
//   - Traffic is never sent to a canary that has no available pods of the
//     revision being released: a stage's weight is written only after the
//     canary is scaled and its rollout is complete.
//   - A failed verdict stops advancement at once; FailureLimit consecutive
//     failed verdicts roll back, and after each the evidence restarts at its
//     end (EvidenceFrom), so they rest on traffic that does not overlap.
//     Inconclusive verdicts neither pass nor fail, and a stage completes only
//     after its whole duration (pauses not counted) on a passing last
//     verdict, which covers the stage's evidence up to its end: the caller's
//     Pass means no check failing, nothing missing and enough requests. A
//     stage short only of evidence (Analysis.AwaitingEvidence) is waiting, not
//     stuck; a Forecast of too little traffic is said once per release.
//   - Metrics outages hold the rollout; OutageLimit consecutive outages roll
//     back. Nothing is ever promoted without a passing verdict ending every
//     stage.
//   - A rollback writes the weights back to stable in one step; the canary is
//     scaled to zero only once the VirtualService is observed at 0.
//   - An invalid configuration touches no traffic: the phase becomes
//     Invalid and the rollout resumes from where it was once it is fixed.
//   - Time spent paused or stopped (controller restart) never shortens a
//     stage: stage progress is measured from the recorded StageStart. A
//     stage completes only once an analysis has covered its traffic up to
//     its end: an analysis is due at the stage's end.
//   - A change of stable's template that meshcanary did not make aborts the
//     release (stable-changed) and is never written back; all traffic
//     returns to stable in one write.
//   - Nothing asks to be woken sooner than the next moment its decision can
//     change: a stage waiting for evidence wakes once per interval.
//   - A queued release has no traffic: the canary is neither scaled nor
//     given a weight before it starts, and a rollback ends it unstarted.
package stages
