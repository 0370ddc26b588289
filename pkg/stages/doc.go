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
//   - The caller performs the actions in this order: weight, scale, promote;
//     then persists Decision.State together with clearing the command
//     annotations the Decision consumed, in one write, so a command is acted
//     on exactly once even across restarts. If any action fails the caller
//     must not persist the State; the next reconcile decides again from
//     the unchanged State and fresh observations.
//   - The caller re-invokes Decide on every relevant watch event and after
//     Decision.RequeueAfter. Decide is idempotent for an unchanged
//     Observation: repeating it asks for no new action.
//
// Safety rules the core guarantees, each covered by scenario tests:
//   - Traffic is never sent to a canary that has no available pods of the
//     revision being released: a stage's weight is written only after the
//     canary is scaled and its rollout is complete.
//   - A failed analysis interval stops advancement at once; FailureLimit
//     consecutive failures roll back. Inconclusive intervals neither pass nor
//     fail, and a stage completes only after its whole duration (pauses not
//     counted) with at least one passing interval and no failure pending.
//   - Metrics outages hold the rollout; OutageLimit consecutive outages roll
//     back. Nothing is ever promoted without a passing verdict in every stage.
//   - A rollback writes the weights back to stable in one step; the canary is
//     scaled to zero only once the VirtualService is observed at 0.
//   - An invalid configuration touches no traffic: the phase becomes
//     Invalid and the rollout resumes from where it was once it is fixed.
//   - Time spent paused or stopped (controller restart) never shortens a
//     stage: stage progress is measured from the recorded StageStart.
package stages
