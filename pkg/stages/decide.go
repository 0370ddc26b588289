package stages

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Decide is the whole decision for one rollout: observations, the recorded
// state and the current time in; the next state and the actions out.
func Decide(obs Observation, st State, now time.Time) Decision {
	x := &decider{obs: obs, now: now, d: Decision{State: st}}
	if x.s().Phase == "" {
		x.s().Phase = Idle
	}
	x.recoverState()
	x.pinPlan()
	x.finishWeight()
	x.skipUnremoved()
	x.run()
	x.noteConsumed(obs.Commands)
	x.boundMessages()
	return x.d
}

// AnalysisDue reports whether the caller should gather an analysis before
// calling Decide, and over which window: one interval after the last
// analysed instant, from where the stage's evidence begins until now.
// The evidence begins when the stage's weight was written, or at the end
// of the last failed verdict, so each verdict judges all of the stage's
// traffic that no failure has used yet, never an earlier release's or
// stage's. The confidence sequences the checks use make that cumulative
// look, repeated every interval, as sound as a single one.
func AnalysisDue(st State, plan Plan, now time.Time) (bool, time.Duration) {
	if st.Phase != Progressing && st.Phase != Paused {
		return false, 0
	}
	if st.StageStart.IsZero() || stateProblem(st) != "" {
		return false, 0
	}
	last := st.StageStart
	if st.LastAnalysis.After(last) {
		last = st.LastAnalysis
	}
	due := last.Add(plan.Interval)
	// The stage's last window ends with the stage, so the stage's traffic
	// up to its end is judged before it advances.
	if st.Phase == Progressing && st.Stage < len(plan.Steps) {
		if end := stageEnd(st, plan.Steps[st.Stage]); end.After(last) && end.Before(due) {
			due = end
		}
	}
	if now.Before(due) {
		return false, 0
	}
	return true, now.Sub(EvidenceFrom(st))
}

// EvidenceFrom is where the current stage's evidence begins.
func EvidenceFrom(st State) time.Time {
	if st.EvidenceStart.After(st.StageStart) {
		return st.EvidenceStart
	}
	return st.StageStart
}

// StageElapsed is how long the current stage has run, pauses not counted.
func StageElapsed(st State, now time.Time) time.Duration {
	if st.StageStart.IsZero() {
		return 0
	}
	e := now.Sub(st.StageStart) - st.PausedFor
	if st.Phase == Paused && !st.PausedAt.IsZero() && st.PausedAt.After(st.StageStart) {
		e -= now.Sub(st.PausedAt)
	}
	if e < 0 {
		return 0
	}
	return e
}

// StageRemaining is how much of the current stage's duration is left.
func StageRemaining(st State, plan Plan, now time.Time) time.Duration {
	if !st.Phase.Active() || st.Stage < 0 || st.Stage >= len(plan.Steps) || st.StageStart.IsZero() {
		return 0
	}
	r := plan.Steps[st.Stage].Duration - StageElapsed(st, now)
	if r < 0 {
		return 0
	}
	return r
}

// StageLabel renders the stage as users read it: "2/4" (1-based).
func StageLabel(st State, plan Plan) string {
	n := len(plan.Steps)
	i := min(max(st.Stage+1, 1), n)
	if st.Phase == Idle || n == 0 {
		return fmt.Sprintf("0/%d", n)
	}
	return fmt.Sprintf("%d/%d", i, n)
}

// CanaryReplicas is the canary's size for a step: the step's own count, or
// the stable's size scaled by the weight, rounded up, at least one.
func CanaryReplicas(step Step, stableReplicas int32) int32 {
	if step.CanaryReplicas > 0 {
		return step.CanaryReplicas
	}
	n := (int64(stableReplicas)*int64(step.Weight) + 99) / 100
	if n < 1 {
		n = 1
	}
	return int32(n)
}

type decider struct {
	obs Observation
	now time.Time
	d   Decision
	// configured is the plan's steps as configured now; obs.Plan.Steps
	// holds the steps pinned by an in-flight release.
	configured []Step
}

func (x *decider) s() *State { return &x.d.State }

func (x *decider) run() {
	s := x.s()
	if x.obs.Invalid != "" {
		x.rollbackWhileInvalid()
		x.invalid()
		return
	}
	if s.Phase == Invalid {
		prev := s.Interrupted
		if prev == "" {
			prev = Idle
		}
		s.Phase, s.Interrupted = prev, ""
		s.Message = fmt.Sprintf("configuration fits again; %s", strings.ToLower(string(prev)))
		x.event(false, ReasonConfigurationFixed, "configuration fits again; phase %s resumes", prev)
	}
	if s.Phase.Active() {
		x.active()
		return
	}
	x.stableMovedBetweenReleases()
	if x.waitForSlot() {
		return
	}
	if x.retryWanted() {
		x.start(ReasonRetried, fmt.Sprintf("release of canary revision %s started again by meshcanary.io/retry: %s", x.obs.Canary.Revision, describeSteps(x.configured)))
		x.active()
		return
	}
	if x.releaseWanted() {
		x.start(ReasonRolloutStarted, fmt.Sprintf("release of canary revision %s started: %s", x.obs.Canary.Revision, describeSteps(x.obs.Plan.Steps)))
		x.active()
		return
	}
	x.ignoreCommands()
	x.settle()
}

// invalid parks the rollout without touching traffic, remembering the phase
// to return to.
func (x *decider) invalid() {
	s := x.s()
	changed := s.Phase != Invalid || s.Message != x.obs.Invalid
	if s.Phase != Invalid {
		s.Interrupted = s.Phase
		s.Phase = Invalid
	}
	s.Message = x.obs.Invalid
	if changed {
		x.event(true, ReasonInvalidConfiguration, "%s", x.obs.Invalid)
	}
}

// releaseWanted: the canary runs a template stable does not, and it is not
// the revision whose release just ended (a rolled-back revision is not
// retried, and a promoted one is not released twice, until the canary's
// template changes again).
func (x *decider) releaseWanted() bool {
	c := x.obs.Canary.Revision
	if c == "" || c == x.obs.Stable.Revision {
		return false
	}
	s := x.s()
	if (s.Phase == RolledBack || s.Phase == Succeeded) && c == s.Revision {
		return false
	}
	return c != s.NotRelease
}

func (x *decider) start(reason, msg string) {
	s := x.s()
	*s = State{
		Unremoved:      s.Unremoved,
		Phase:          Progressing,
		Revision:       x.obs.Canary.Revision,
		StableRevision: x.obs.Stable.Revision,
		Started:        x.now,
		Message:        msg,
		Steps:          slices.Clone(x.configured),
	}
	x.obs.Plan.Steps = s.Steps
	// Every release begins with all traffic on stable: a state that was
	// lost or restored may not match what the route carries, and the
	// canary is about to be resized for the first stage.
	x.setWeight(0)
	if at := x.obs.Plan.StartAt; at != nil && !Matches(at, x.now) {
		s.NotBefore = at.Next(x.now)
	}
	x.event(false, reason, "%s", msg)
}

func (x *decider) active() {
	s := x.s()
	c := x.obs.Canary.Revision

	if x.stableChanged() {
		return
	}
	if s.Phase != Promoting && c == x.obs.Stable.Revision {
		x.rollback(ResultAborted, DecidedByCanaryReverted, fmt.Sprintf("canary template returned to stable's (revision %s); release of %s ended", c, s.Revision))
		return
	}
	if c != s.Revision {
		if s.Phase == Promoting && x.obs.Stable.Revision == s.Revision {
			// Stable already carries the validated release; the canary is
			// turning into something unvalidated, so it loses its traffic
			// while stable settles.
			x.setWeight(0)
		} else {
			prev := s.Revision
			x.start(ReasonRolloutRestarted, fmt.Sprintf("canary changed from revision %s to %s mid-release; restarting from stage 1 with no traffic", prev, c))
		}
	}

	cmd := x.obs.Commands
	if cmd.Rollback != "" {
		x.d.Consumed.Rollback = true
		x.rollback(ResultManualRollback, DecidedByAnnotation, "manual rollback: "+cmd.Rollback)
		return
	}
	if cmd.Retry {
		x.d.Consumed.Retry = true
		x.event(false, ReasonCommandIgnored, "meshcanary.io/retry ignored: a release is in flight (phase %s)", s.Phase)
	}
	if cmd.Approve != "" {
		x.d.Consumed.Approve = true
		if !s.Approved {
			s.Approved = true
			x.event(false, ReasonApproved, "promotion approved by %s", cmd.Approve)
		}
	}
	if cmd.Promote {
		x.d.Consumed.Promote = true
		if s.Phase != Promoting {
			x.promote(true)
		}
	}
	switch {
	case cmd.Pause && s.Phase == Progressing:
		s.Phase, s.PausedAt = Paused, x.now
		x.event(false, ReasonPaused, "paused at stage %s, canary weight %d%%", StageLabel(*s, x.obs.Plan), s.Weight)
	case !cmd.Pause && s.Phase == Paused:
		if !s.StageStart.IsZero() && !s.PausedAt.IsZero() {
			from := s.PausedAt
			if s.StageStart.After(from) {
				from = s.StageStart
			}
			s.PausedFor += x.now.Sub(from)
		}
		s.Phase, s.PausedAt = Progressing, time.Time{}
		x.event(false, ReasonResumed, "resumed at stage %s; %s of the stage left", StageLabel(*s, x.obs.Plan), StageRemaining(*s, x.obs.Plan, x.now).Round(time.Second))
	}

	if s.Phase == Promoting {
		x.promoting()
		return
	}
	x.progress()
}

func (x *decider) progress() {
	s, plan := x.s(), x.obs.Plan
	if s.Stage >= len(plan.Steps) {
		x.promote(false)
		x.promoting()
		return
	}
	step := plan.Steps[s.Stage]
	if s.Stage == 0 && s.StageStart.IsZero() && x.now.Before(s.NotBefore) {
		x.hold(fmt.Sprintf("the release waits for its start time %s (startAt)", s.NotBefore.UTC().Format("2006-01-02 15:04 MST")), s.NotBefore)
		return
	}
	want := CanaryReplicas(step, x.obs.Stable.Replicas)
	if want < x.obs.Canary.Replicas && x.obs.Weight > s.Weight {
		// The route still sends the canary more than this stage's
		// predecessor did (a release restarted from a lost or restored
		// state): shrink the canary only once that traffic is gone.
		s.Message = fmt.Sprintf("stage %s: waiting for the route to carry canary weight %d%% (now %d%%) before resizing the canary", StageLabel(*s, plan), s.Weight, x.obs.Weight)
		return
	}
	x.scale(want)

	if s.StageStart.IsZero() {
		x.startStage(step, want)
		return
	}

	if x.obs.Weight != s.Weight && !s.WeightPending && x.obs.Weight == 0 {
		// Checked before the canary's pods: a person who moved all traffic
		// to stable and then scaled the canary down rolled back by hand.
		x.rollback(ResultManualRollback, DecidedByVirtualServiceEdit, fmt.Sprintf("manual rollback: the route's managed weights were set to send all traffic to stable at stage %s", StageLabel(*s, plan)))
		return
	}
	if x.obs.Canary.Available == 0 && s.Weight > 0 {
		x.rollback(ResultRolledBack, DecidedByController, fmt.Sprintf("canary has no available pods at stage %s", StageLabel(*s, plan)))
		return
	}
	if x.obs.Weight != s.Weight && !s.WeightPending {
		x.event(true, ReasonWeightsRestored, "VirtualService had canary weight %d%%; restored %d%%", x.obs.Weight, s.Weight)
		x.setWeight(s.Weight)
	}
	if a := x.obs.Analysis; a != nil {
		if x.analysis(*a) {
			return
		}
	}
	gates := x.gatesAt(GateDuringStage, s.Stage)
	if gates == gatesRolledBack {
		return
	}
	elapsed := StageElapsed(*s, x.now)
	judged := !s.LastAnalysis.Before(stageEnd(*s, step))
	complete := s.Phase == Progressing && elapsed >= step.Duration && judged && s.LastVerdict == Pass && s.Failures == 0 && s.Outages == 0
	if !complete && plan.StuckAfter > 0 && !s.StuckReported && !s.AwaitingEvidence && elapsed >= step.Duration+plan.StuckAfter {
		s.StuckReported = true
		x.d.Events = append(x.d.Events, Event{Warning: true, Reason: ReasonRolloutStuck, Page: true,
			Message: fmt.Sprintf("stage %s has not completed %s after its %s duration: %s", StageLabel(*s, plan), plan.StuckAfter, step.Duration, s.Message)})
	}
	if complete {
		if ok, next, why := x.allowed(); !ok {
			x.hold(why, next)
			return
		}
		if gates == gatesPending {
			x.hold("waiting for gate "+joinNames(x.pendingGates(GateDuringStage, s.Stage)), time.Time{})
			return
		}
		if s.Stage == len(plan.Steps)-1 && x.needsApproval() {
			if !s.ApprovalAsked {
				s.ApprovalAsked = true
				x.event(false, ReasonAwaitingApproval, "all %d stages passed; promotion waits for approval: kubectl annotate deployment/<stable> meshcanary.io/approve=<your name> --overwrite", len(plan.Steps))
			}
			x.hold("waiting for approval (meshcanary.io/approve)", time.Time{})
			return
		}
		s.Held = ""
		s.Stage++
		s.StageStart, s.ScaleStart, s.PausedFor = time.Time{}, time.Time{}, 0
		s.Passes, s.LastAnalysis, s.LastVerdict, s.StuckReported = 0, time.Time{}, "", false
		s.EvidenceStart, s.AwaitingEvidence = time.Time{}, false
		x.progress()
		return
	}
	if plan.StuckAfter > 0 && !s.StuckReported {
		x.requeueAt(s.StageStart.Add(s.PausedFor + step.Duration + plan.StuckAfter))
	}
	from := s.StageStart
	if s.LastAnalysis.After(from) {
		from = s.LastAnalysis
	}
	x.requeueAt(from.Add(plan.Interval))
	if s.Phase == Progressing {
		x.requeueAt(stageEnd(*s, step))
	}
	if x.d.RequeueAfter == 0 {
		// Everything above was already due: look again one interval on,
		// never sooner, so a stage waiting for evidence costs a reconcile
		// per interval and not a busy loop.
		x.requeueAt(x.now.Add(plan.Interval))
	}
}

// startStage writes the stage's weight once the canary is available at the
// stage's size, and never before.
func (x *decider) startStage(step Step, want int32) {
	s, plan := x.s(), x.obs.Plan
	if s.ScaleStart.IsZero() {
		s.ScaleStart = x.now
	}
	c := x.obs.Canary
	if c.Replicas != want || !c.Settled || c.Available < want {
		if plan.ProgressDeadline > 0 && x.now.Sub(s.ScaleStart) >= plan.ProgressDeadline {
			x.event(true, ReasonCanaryNotReady, "canary not available within %s at stage %s (%d/%d available)", plan.ProgressDeadline, StageLabel(*s, plan), c.Available, want)
			x.rollback(ResultRolledBack, DecidedByProgressDeadline, fmt.Sprintf("canary did not become available within %s (%d/%d available)", plan.ProgressDeadline, c.Available, want))
			return
		}
		s.Message = fmt.Sprintf("stage %s: waiting for %d canary replicas to be available (%d now)", StageLabel(*s, plan), want, c.Available)
		if plan.ProgressDeadline > 0 {
			x.requeueAt(s.ScaleStart.Add(plan.ProgressDeadline))
		}
		return
	}
	if s.Phase == Paused {
		s.Message = fmt.Sprintf("paused before stage %s", StageLabel(*s, plan))
		return
	}
	if ok, next, why := x.allowed(); !ok {
		x.hold(why, next)
		return
	}
	for _, typ := range []GateType{GatePreRollout, GatePreStage} {
		if typ == GatePreRollout && s.Stage != 0 {
			continue
		}
		switch x.gatesAt(typ, s.Stage) {
		case gatesRolledBack:
			return
		case gatesPending:
			x.hold("waiting for gate "+joinNames(x.pendingGates(typ, s.Stage)), time.Time{})
			return
		}
	}
	if s.WeightPending {
		// The route has not yet been seen carrying what was decided before
		// this stage (all traffic on stable, for a release that started
		// over): that comes first.
		s.Message = fmt.Sprintf("stage %s: waiting for the route to carry canary weight %d%% before the stage starts", StageLabel(*s, plan), s.Weight)
		return
	}
	s.Held = ""
	x.setWeight(step.Weight)
	s.StageStart, s.Failures, s.Outages, s.Passes = x.now, 0, 0, 0
	s.StageDuration = step.Duration
	s.LastAnalysis, s.LastVerdict, s.PausedFor = time.Time{}, "", 0
	s.EvidenceStart, s.AwaitingEvidence = time.Time{}, false
	s.Message = fmt.Sprintf("stage %s: canary weight %d%% with %d replicas for %s", StageLabel(*s, plan), step.Weight, want, step.Duration)
	x.event(false, ReasonStageStarted, "%s", s.Message)
	x.requeueAt(x.now.Add(plan.Interval))
	x.gatesAt(GateDuringStage, s.Stage)
}

// analysis folds one verdict into the state; it reports whether the rollout
// was rolled back.
func (x *decider) analysis(a Analysis) bool {
	s := x.s()
	windowStart := s.StageStart
	if s.LastAnalysis.After(windowStart) {
		windowStart = s.LastAnalysis
	}
	s.LastAnalysis = x.now
	if !a.At.IsZero() && a.At.Before(x.now) && a.At.After(windowStart) {
		// Analysed off the reconcile path: the window ended when the
		// analysis was asked for, and the next one starts there.
		s.LastAnalysis = a.At
	}
	s.AwaitingEvidence = a.AwaitingEvidence && a.Verdict == Inconclusive
	x.warnLowTraffic(a)
	prefix := fmt.Sprintf("stage %s (%d%%): ", StageLabel(*s, x.obs.Plan), s.Weight)
	prev := s.LastVerdict
	s.LastVerdict = a.Verdict
	s.Message = prefix + a.Message
	if x.verdict(a, prev, prefix) {
		return true
	}
	return x.rules(windowStart)
}

// verdict counts one verdict; it reports whether the rollout was rolled
// back.
func (x *decider) verdict(a Analysis, prev Verdict, prefix string) bool {
	s, plan := x.s(), x.obs.Plan
	switch a.Verdict {
	case Pass:
		s.Passes++
		s.Outages = 0
		if a.Confident {
			s.Failures = 0
		}
		if prev != Pass {
			x.event(false, ReasonAnalysisPassed, "%s", s.Message)
		}
	case Inconclusive:
		s.Outages = 0
		if prev != Inconclusive {
			x.event(false, ReasonAnalysisInconclusive, "%s", s.Message)
		}
	case Fail:
		s.Failures++
		s.Outages = 0
		// The next verdict rests on traffic this one did not use, so
		// FailureLimit counts independent failures.
		s.EvidenceStart = s.LastAnalysis
		limit := max(plan.FailureLimit, 1)
		x.event(true, ReasonAnalysisFailed, "%sverdict failed (%d/%d)", prefix+a.Message+"; ", s.Failures, limit)
		if s.Failures >= limit {
			x.rollback(ResultRolledBack, DecidedByAnalysis, prefix+a.Message)
			return true
		}
	case Outage:
		s.Outages++
		limit := max(plan.OutageLimit, 1)
		x.event(true, ReasonMetricsUnavailable, "%smetrics unavailable (%d/%d), holding", prefix+a.Message+"; ", s.Outages, limit)
		if s.Outages >= limit {
			x.rollback(ResultRolledBack, DecidedByMetricsOutage, fmt.Sprintf("%smetrics unavailable for %d consecutive intervals: %s", prefix, s.Outages, a.Message))
			return true
		}
	}
	return false
}

// warnLowTraffic says once per release that the traffic is too low for
// the plan, with what each stage can expect, rather than letting the
// release take longer than its plan in silence.
func (x *decider) warnLowTraffic(a Analysis) {
	s := x.s()
	if a.Forecast == "" || s.TrafficWarned {
		return
	}
	s.TrafficWarned = true
	x.event(true, ReasonLowTraffic, "traffic too low for the plan: %s", a.Forecast)
}

func (x *decider) promote(manual bool) {
	s := x.s()
	s.Phase = Promoting
	s.PromoteStart, s.StuckReported = x.now, false
	s.PausedAt = time.Time{}
	s.DecidedBy = DecidedByAnalysis
	if manual {
		s.DecidedBy = DecidedByAnnotation
		s.Result = ResultManualPromoted
		s.Message = fmt.Sprintf("manual promotion at stage %s: updating stable to revision %s", StageLabel(*s, x.obs.Plan), s.Revision)
	} else {
		s.Result = ResultPromoted
		s.Message = fmt.Sprintf("all %d stages passed: updating stable to revision %s", len(x.obs.Plan.Steps), s.Revision)
	}
	x.event(false, ReasonPromoting, "%s", s.Message)
}

// promoting copies the template into stable, waits for stable to settle
// while the canary keeps its traffic, then hands all traffic to stable.
func (x *decider) promoting() {
	s := x.s()
	if x.obs.Stable.Revision != s.Revision {
		if x.obs.Canary.Revision == s.Revision {
			x.d.Promote = true
		}
		return
	}
	if !x.obs.Stable.Settled {
		s.Message = fmt.Sprintf("promoting revision %s: waiting for stable's rollout (%d/%d available)", s.Revision, x.obs.Stable.Available, x.obs.Stable.Replicas)
		// The canary keeps carrying its traffic, so nothing is unsafe; but a
		// stable that never finishes needs a person, so say so once.
		if d := x.obs.Plan.ProgressDeadline; d > 0 && !s.PromoteStart.IsZero() {
			if deadline := s.PromoteStart.Add(d); !x.now.Before(deadline) && !s.StuckReported {
				s.StuckReported = true
				x.d.Events = append(x.d.Events, Event{Warning: true, Reason: ReasonRolloutStuck, Page: true,
					Message: fmt.Sprintf("stable has not finished rolling out revision %s within %s (%d/%d available); the canary keeps its traffic", s.Revision, d, x.obs.Stable.Available, x.obs.Stable.Replicas)})
			} else if x.now.Before(deadline) {
				x.requeueAt(deadline)
			}
		}
		return
	}
	x.setWeight(0)
	s.Phase, s.Finished = Succeeded, x.now
	s.StableRevision = s.Revision
	if s.Result == "" {
		s.Result = ResultPromoted
	}
	s.Message = fmt.Sprintf("revision %s promoted: stable runs it and serves 100%%", s.Revision)
	x.d.Events = append(x.d.Events, Event{Reason: ReasonPromoted, Message: s.Message, Resolve: true})
	x.d.Consumed.Pause = x.obs.Commands.Pause
	x.settle()
}

func (x *decider) rollback(result Result, decidedBy, msg string) {
	s := x.s()
	if s.Phase == Promoting && decidedBy != DecidedByStableChanged && x.obs.Stable.Revision == s.Revision && s.StableRevision != s.Revision {
		// Stable already carries the rejected release: it goes back to
		// the template it had, or it would keep rolling out the release.
		s.RestoreStable = true
		msg += fmt.Sprintf("; stable's template is being put back to revision %s", s.StableRevision)
	}
	x.setWeight(0)
	s.Phase, s.Result, s.Finished, s.Message = RolledBack, result, x.now, msg
	s.DecidedBy = decidedBy
	s.PausedAt = time.Time{}
	// An automatic rollback pages: something shipped broken. A person's
	// rollback (or their reverting the canary) does not page the person who
	// made it, and closes any incident a rule opened for this release.
	human := decidedBy == DecidedByAnnotation || decidedBy == DecidedByCanaryReverted ||
		decidedBy == DecidedByStableChanged || decidedBy == DecidedByVirtualServiceEdit
	x.d.Events = append(x.d.Events, Event{Warning: true, Reason: ReasonRolledBack, Message: msg, Page: !human, Resolve: human})
	x.d.Consumed.Pause = x.obs.Commands.Pause
	x.settle()
}

// settle brings a finished release to rest: stable at 100%, then, once the
// VirtualService is observed there, the canary at zero replicas. Waiting for
// the observed weight keeps requests from being routed to canary pods that
// are already terminating.
func (x *decider) settle() {
	s := x.s()
	x.restoreStable()
	if s.Phase == Idle && x.obs.Weight != 0 && x.obs.Canary.Available == 0 {
		// No release, and the route sends traffic to pods that do not
		// exist: every such request fails, so stable takes it back.
		x.event(true, ReasonWeightsRestored, "VirtualService had canary weight %d%% with no canary pods and no release in flight; restored 0%%", x.obs.Weight)
		x.setWeight(0)
		return
	}
	if s.Phase != Succeeded && s.Phase != RolledBack {
		return
	}
	if x.obs.Weight != 0 {
		if x.d.SetWeight == nil {
			if s.Weight == 0 && !s.WeightPending {
				x.event(true, ReasonWeightsRestored, "VirtualService had canary weight %d%% after the release ended; restored 0%%", x.obs.Weight)
			}
			x.setWeight(0)
		}
		return
	}
	x.scale(0)
}

func (x *decider) ignoreCommands() {
	cmd, s := x.obs.Commands, x.s()
	if cmd.Retry {
		x.d.Consumed.Retry = true
		x.event(false, ReasonCommandIgnored, "meshcanary.io/retry ignored: the canary runs stable's template or a release is already wanted (phase %s)", s.Phase)
	}
	if cmd.Rollback != "" {
		x.d.Consumed.Rollback = true
		x.event(false, ReasonCommandIgnored, "meshcanary.io/rollback ignored: no release in progress (phase %s); to return to the previous version, kubectl rollout undo the stable Deployment (runbooks/regression-after-promotion.md)", s.Phase)
	}
	if cmd.Promote {
		x.d.Consumed.Promote = true
		x.event(false, ReasonCommandIgnored, "meshcanary.io/promote ignored: no release in progress (phase %s)", s.Phase)
	}
	if cmd.Pause {
		x.d.Consumed.Pause = true
		x.event(false, ReasonCommandIgnored, "meshcanary.io/pause ignored: no release in progress (phase %s)", s.Phase)
	}
	if cmd.Approve != "" {
		x.d.Consumed.Approve = true
		x.event(false, ReasonCommandIgnored, "meshcanary.io/approve ignored: no release in progress (phase %s)", s.Phase)
	}
}

// setWeight decides the canary weight. The State records it, as pending,
// before the caller writes it, so a write that fails or never happens is
// finished by the next decision rather than mistaken for a person's edit.
func (x *decider) setWeight(w int) {
	s := x.s()
	s.Weight = w
	if x.obs.Weight != w {
		x.d.SetWeight = &w
		s.WeightPending, s.WeightFrom = true, x.obs.Weight
	} else {
		x.d.SetWeight = nil
		s.WeightPending, s.WeightFrom = false, 0
	}
}

func (x *decider) scale(n int32) {
	if x.obs.Canary.Replicas != n {
		x.d.ScaleCanary = &n
	} else {
		x.d.ScaleCanary = nil
	}
}

// requeueAt asks to be woken at t. A moment already past asks for
// nothing: this decision has looked at everything due by now, and waking
// again at once would only spin.
func (x *decider) requeueAt(t time.Time) {
	d := t.Sub(x.now)
	if d <= 0 {
		return
	}
	if x.d.RequeueAfter == 0 || d < x.d.RequeueAfter {
		x.d.RequeueAfter = d
	}
}

func (x *decider) event(warning bool, reason, format string, args ...any) {
	x.d.Events = append(x.d.Events, Event{Warning: warning, Reason: reason, Message: fmt.Sprintf(format, args...)})
}

func describeSteps(steps []Step) string {
	parts := make([]string, len(steps))
	for i, st := range steps {
		parts[i] = fmt.Sprintf("%d%%", st.Weight)
	}
	return "stages " + strings.Join(parts, " → ")
}

func joinNames(names []string) string {
	return strings.Join(names, ", ")
}
