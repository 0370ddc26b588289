package stages

import (
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

// MaxMessage bounds every message the core writes (State.Message, Event
// messages): they end up in annotations, status fields and Events, which
// the API server limits, and a user's 100 KB annotation echoed back must
// not make the state itself unwritable.
const MaxMessage = 1024

// Bound cuts s to at most n bytes on a rune boundary, marking the cut.
func Bound(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "… (truncated)"
	cut := max(n-len(mark), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// EffectivePlan is the plan a release is sequenced by: the steps pinned at
// its start while it is in flight, the configured ones otherwise. Callers
// use it wherever they show or analyse a stage, so the core and its
// caller never disagree on which stage is which.
func EffectivePlan(st State, configured Plan) Plan {
	if InFlight(st) && len(st.Steps) > 0 {
		configured.Steps = st.Steps
	}
	return configured
}

// InFlight reports whether st is a release in flight, including one that
// an invalid configuration interrupted.
func InFlight(st State) bool {
	return st.Phase.Active() || (st.Phase == Invalid && st.Interrupted.Active())
}

// stateProblem says what makes a recorded state unusable, or "". Such a
// state comes from a hand edit or a restore; acting on it could index a
// stage that does not exist or trust a weight nobody wrote.
func stateProblem(st State) string {
	known := func(p Phase) bool {
		switch p {
		case Idle, Progressing, Paused, Promoting, Succeeded, RolledBack, Invalid:
			return true
		}
		return false
	}
	switch {
	case !known(st.Phase):
		return fmt.Sprintf("phase %q is not a phase", st.Phase)
	case st.Interrupted != "" && (!known(st.Interrupted) || st.Interrupted == Invalid):
		return fmt.Sprintf("interrupted phase %q is not a phase", st.Interrupted)
	case st.Stage < 0 || (len(st.Steps) > 0 && st.Stage > len(st.Steps)):
		return fmt.Sprintf("stage %d is outside the plan's %d stages", st.Stage, len(st.Steps))
	case st.Weight < 0 || st.Weight > 100:
		return fmt.Sprintf("weight %d is outside 0–100", st.Weight)
	case st.Failures < 0 || st.Outages < 0 || st.Passes < 0 || st.PausedFor < 0:
		return "negative counters"
	case InFlight(st) && st.Revision == "":
		return "a release in flight without a revision"
	}
	for i, s := range st.Steps {
		if s.Weight < 0 || s.Weight > 100 || s.Duration < 0 || s.CanaryReplicas < 0 {
			return fmt.Sprintf("pinned stage %d (weight %d, duration %s) is not a stage", i+1, s.Weight, s.Duration)
		}
	}
	return ""
}

// recoverState replaces a state that was lost (the caller could not read
// it) or makes no sense with a fresh one. Traffic returns to stable first:
// nothing the old state said about the canary can be trusted, so the
// release, if one is wanted, starts again from its first stage.
func (x *decider) recoverState() {
	why := x.obs.StateLost
	if why == "" {
		why = stateProblem(*x.s())
	}
	if why == "" {
		return
	}
	*x.s() = State{Phase: Idle}
	if x.obs.Invalid == "" && x.obs.Weight != 0 {
		x.setWeight(0)
	}
	x.event(true, ReasonStateLost, "rollout state unusable (%s): traffic returns to stable and any release starts again from its first stage", why)
}

// pinPlan makes an in-flight release follow the steps it started with.
// A state recorded before plans were pinned adopts the configured steps.
func (x *decider) pinPlan() {
	s := x.s()
	x.configured = x.obs.Plan.Steps
	if !InFlight(*s) {
		return
	}
	if len(s.Steps) == 0 {
		s.Steps = slices.Clone(x.configured)
		return
	}
	if !slices.Equal(s.Steps, x.configured) && !s.PlanChangeNoted {
		s.PlanChangeNoted = true
		x.event(false, ReasonPlanChanged, "the configured stages changed to %s; this release keeps %s and the change applies to the next release", describeSteps(x.configured), describeSteps(s.Steps))
	}
	x.obs.Plan.Steps = s.Steps
}

// finishWeight completes a weight this controller decided and recorded but
// has not yet seen on the route: the write failed, or the process died
// between recording and writing. A person who writes exactly the previous
// weight in the moment between our write and its watch event is taken for
// that unfinished write; any other value is judged as their edit. It never sends traffic to a canary while
// the configuration is invalid; a pending return to stable is finished.
func (x *decider) finishWeight() {
	s := x.s()
	if !s.WeightPending {
		return
	}
	if x.obs.Invalid != "" && (!x.obs.RouteResolved || s.Weight != 0) {
		return
	}
	switch x.obs.Weight {
	case s.Weight:
		s.WeightPending, s.WeightFrom = false, 0
		if s.Phase.Active() && s.Weight > 0 && !s.StageStart.IsZero() && s.LastAnalysis.IsZero() {
			// The stage's traffic is seen now: its clock starts here, so
			// a write that failed, or a restart before it, never takes
			// time off the stage.
			s.StageStart = x.now
		}
	case s.WeightFrom:
		x.setWeight(s.Weight)
	default:
		// Someone else wrote a third value after our write: that is an
		// edit, judged like any other.
		s.WeightPending, s.WeightFrom = false, 0
	}
}

// stableChanged ends a release whose stable template changed without
// meshcanary: a person's undo or edit wins, and the canary loses its
// traffic at once. It reports whether it ended the release.
func (x *decider) stableChanged() bool {
	s := x.s()
	if s.StableRevision == "" {
		s.StableRevision = x.obs.Stable.Revision // recorded before revisions were kept
	}
	rev := x.obs.Stable.Revision
	if s.Phase == Promoting {
		if rev == s.Revision {
			s.StableUpdated = true
			return false
		}
		if !s.StableUpdated || rev == "" {
			return false
		}
		// Stable carried the release and was changed back: the person's
		// change stands, and stable takes the traffic once it can serve it.
		x.dropRestoredCommands()
		if x.obs.Stable.Available == 0 {
			s.Message = fmt.Sprintf("promotion of %s stopped by a change to stable's template; waiting for stable's pods before moving traffic", s.Revision)
			return true
		}
		s.StableRevision = rev
		x.rollback(ResultAborted, DecidedByStableChanged, fmt.Sprintf("promotion of revision %s stopped: stable's template was changed to revision %s outside meshcanary; all traffic back on stable", s.Revision, rev))
		x.event(true, ReasonStableChanged, "stable Deployment's template changed to revision %s during promotion of %s; meshcanary does not write it back", rev, s.Revision)
		return true
	}
	if rev == s.StableRevision || rev == "" {
		return false
	}
	x.dropRestoredCommands()
	prev := s.StableRevision
	x.rollback(ResultAborted, DecidedByStableChanged, fmt.Sprintf("stable's template changed from revision %s to %s outside meshcanary during the release of %s; release aborted, all traffic on stable", prev, rev, s.Revision))
	x.event(true, ReasonStableChanged, "stable Deployment's template changed from revision %s to %s (kubectl rollout undo, edit, apply or set image); meshcanary does not write it back", prev, rev)
	s.StableRevision = rev
	return true
}

// boundMessages keeps every message the decision writes within MaxMessage.
func (x *decider) boundMessages() {
	s := x.s()
	s.Message = Bound(s.Message, MaxMessage)
	for i := range x.d.Events {
		x.d.Events[i].Message = Bound(x.d.Events[i].Message, MaxMessage)
	}
}

// stageEnd is when the current stage's duration is over, pauses that have
// ended counted out.
func stageEnd(st State, step Step) time.Time {
	return st.StageStart.Add(st.PausedFor + step.Duration)
}

// rollbackWhileInvalid honours meshcanary.io/rollback for a release in
// flight even though the configuration no longer fits, as long as the
// managed route still resolves: a person must never have to fix a typo
// before they can take traffic off a canary. Nothing else is acted on.
func (x *decider) rollbackWhileInvalid() {
	s := x.s()
	if x.obs.Commands.Rollback == "" || !InFlight(*s) || !x.obs.RouteResolved {
		return
	}
	if s.Phase == Invalid {
		s.Phase, s.Interrupted = s.Interrupted, ""
	}
	x.d.Consumed.Rollback = true
	x.setWeight(0)
	s.Phase, s.Result, s.Finished = RolledBack, ResultManualRollback, x.now
	s.DecidedBy, s.PausedAt = DecidedByAnnotation, time.Time{}
	s.Message = "manual rollback (configuration invalid): " + x.obs.Commands.Rollback
	x.d.Events = append(x.d.Events, Event{Warning: true, Reason: ReasonRolledBack, Message: s.Message, Resolve: true})
}

// stableMovedBetweenReleases records a change of stable's template that
// meshcanary did not make while no release is in flight: a plain
// Kubernetes rollback or deploy. It pages nobody and starts no release —
// neither of the revision stable left nor of the one in the canary — and
// any command annotation that came back with it (an undo restores a
// ReplicaSet's old annotations) is dropped unread.
func (x *decider) stableMovedBetweenReleases() {
	s, rev := x.s(), x.obs.Stable.Revision
	if rev == "" || rev == s.StableRevision || (s.RestoreStable && rev == s.Revision) {
		return
	}
	if s.StableRevision == "" {
		s.StableRevision = rev // first look, or a state from before revisions were kept
		return
	}
	prev := s.StableRevision
	s.StableRevision, s.NotRelease = rev, x.obs.Canary.Revision
	x.d.Reverted = rev
	x.dropRestoredCommands()
	x.event(false, ReasonStableChanged, "stable Deployment's template changed from revision %s to %s outside meshcanary (kubectl rollout undo, edit, apply or set image); recorded as reverted, no release started", prev, rev)
}

// dropRestoredCommands removes every command present together with a
// change of stable's template: `kubectl rollout undo` copies back the
// annotations of the ReplicaSet it returns to, including commands that
// were acted on long ago.
func (x *decider) dropRestoredCommands() {
	cmd := x.obs.Commands
	if cmd == (Commands{}) {
		return
	}
	x.d.Consumed = Consumed{Rollback: cmd.Rollback != "", Promote: cmd.Promote, Pause: cmd.Pause, Approve: cmd.Approve != "", Retry: cmd.Retry}
	x.obs.Commands = Commands{}
	x.event(false, ReasonCommandIgnored, "command annotations present when stable's template changed outside meshcanary were dropped unread: an undo restores old ones")
}

// retryWanted: a person asked to release the canary's revision again after
// its release ended without promotion, or after stable was changed under
// it. The start consumes the command.
func (x *decider) retryWanted() bool {
	if !x.obs.Commands.Retry || x.obs.Canary.Revision == "" || x.obs.Canary.Revision == x.obs.Stable.Revision {
		return false
	}
	x.d.Consumed.Retry = true
	x.obs.Commands.Retry = false
	return true
}

// commandValues lists the commands present, by name, with their values.
func commandValues(c Commands) map[string]string {
	m := map[string]string{}
	if c.Rollback != "" {
		m["rollback"] = c.Rollback
	}
	if c.Promote {
		m["promote"] = "true"
	}
	if c.Pause {
		m["pause"] = "true"
	}
	if c.Approve != "" {
		m["approve"] = c.Approve
	}
	if c.Retry {
		m["retry"] = "true"
	}
	return m
}

// skipUnremoved hides the commands already acted on whose removal has not
// been seen yet (the write that removes them failed or has not happened):
// they are asked to be removed again, never acted on twice. An entry is
// forgotten once its annotation is gone or holds another value.
func (x *decider) skipUnremoved() {
	s, present := x.s(), commandValues(x.obs.Commands)
	for k, v := range s.Unremoved {
		if present[k] != v {
			delete(s.Unremoved, k)
		}
	}
	if len(s.Unremoved) == 0 {
		s.Unremoved = nil
		return
	}
	c := &x.obs.Commands
	for k := range s.Unremoved {
		switch k {
		case "rollback":
			c.Rollback, x.d.Consumed.Rollback = "", true
		case "promote":
			c.Promote, x.d.Consumed.Promote = false, true
		case "approve":
			c.Approve, x.d.Consumed.Approve = "", true
		case "retry":
			c.Retry, x.d.Consumed.Retry = false, true
		}
	}
}

// noteConsumed remembers the commands this decision acted on until their
// removal is seen. Pause is left out: it is a level, not an event.
func (x *decider) noteConsumed(seen Commands) {
	s, values := x.s(), commandValues(seen)
	for k, consumed := range map[string]bool{
		"rollback": x.d.Consumed.Rollback, "promote": x.d.Consumed.Promote,
		"approve": x.d.Consumed.Approve, "retry": x.d.Consumed.Retry,
	} {
		if v, ok := values[k]; ok && consumed {
			if s.Unremoved == nil {
				s.Unremoved = map[string]string{}
			}
			s.Unremoved[k] = v
		}
	}
}

// restoreStable asks for stable's pre-promotion template until stable is
// seen back on it. Someone else changing stable meanwhile wins.
func (x *decider) restoreStable() {
	s := x.s()
	if !s.RestoreStable {
		return
	}
	switch x.obs.Stable.Revision {
	case s.Revision:
		x.d.RestoreStable = true
	default:
		s.RestoreStable = false
	}
}
