package stages

import (
	"fmt"
	"time"
)

// maxFreezeSearch bounds the minute-by-minute search for a freeze's end.
const maxFreezeSearch = 14 * 24 * time.Hour

// Matches reports whether the minute containing t is one the schedule
// names: Next from just before that minute lands on it. Whole minutes start
// at the same instants in every zone in use (offsets are whole minutes), so
// truncating the instant finds the minute; the schedule's own zone (a
// CRON_TZ prefix) decides which minutes it names.
func Matches(s Schedule, t time.Time) bool {
	m := t.Truncate(time.Minute)
	return s.Next(m.Add(-time.Second)).Equal(m)
}

// NextOutside returns the start of the first minute at or after t that the
// schedule does not name, looking no further than t+limit; false when every
// minute up to there is named. It steps minute by minute because a cron
// schedule only says where its matches are, not its gaps: a week's limit is
// about ten thousand steps.
func NextOutside(s Schedule, t time.Time, limit time.Duration) (time.Time, bool) {
	minute := t.Truncate(time.Minute)
	if minute.Before(t) {
		minute = minute.Add(time.Minute)
	}
	end := t.Add(limit)
	for ; !minute.After(end); minute = minute.Add(time.Minute) {
		if !Matches(s, minute) {
			return minute, true
		}
	}
	return time.Time{}, false
}

// allowed says whether a rollout may advance (start a stage or promote)
// at now, and if not, why and when to look again.
func (x *decider) allowed() (ok bool, next time.Time, why string) {
	plan, now := x.obs.Plan, x.now
	for _, f := range plan.Freeze {
		if !Matches(f, now) {
			continue
		}
		end, ok := NextOutside(f, now, maxFreezeSearch)
		if !ok {
			// A freeze longer than the search: look again at its horizon.
			return false, now.Add(maxFreezeSearch), "release freeze for at least two weeks"
		}
		return false, end, fmt.Sprintf("release freeze until %s", end.UTC().Format("2006-01-02 15:04 MST"))
	}
	if plan.Window != nil && !Matches(plan.Window, now) {
		open := plan.Window.Next(now)
		return false, open, fmt.Sprintf("outside the release window; it opens %s", open.UTC().Format("2006-01-02 15:04 MST"))
	}
	return true, time.Time{}, ""
}

// hold keeps the rollout where it is and says why, announcing each new
// reason once.
func (x *decider) hold(why string, until time.Time) {
	s := x.s()
	if s.Held != why {
		x.event(false, ReasonHeld, "holding at stage %s (canary weight %d%%): %s", StageLabel(*s, x.obs.Plan), s.Weight, why)
	}
	s.Held = why
	s.Message = fmt.Sprintf("stage %s: holding: %s", StageLabel(*s, x.obs.Plan), why)
	if !until.IsZero() {
		x.requeueAt(until)
	}
}

// gates is the outcome of the gates that apply at one point.
type gateOutcome int

const (
	gatesPassed gateOutcome = iota
	gatesPending
	gatesRolledBack
)

// gatesAt drives the webhook gates of one type (and stage): it asks for
// runs, records passes, rolls back or holds on failures.
func (x *decider) gatesAt(typ GateType, stage int) gateOutcome {
	s, plan := x.s(), x.obs.Plan
	out := gatesPassed
	for _, g := range plan.Gates {
		if !g.appliesAt(typ, stage) {
			continue
		}
		if s.Gates == nil {
			s.Gates = map[string]GateState{}
		}
		gs := s.Gates[g.Name]
		if gs.Passed {
			continue
		}
		if gs.Attempt == 0 {
			gs.Attempt = 1
		}
		res, known := x.obs.Gates[g.Name]
		switch {
		case known && res.Status == GatePassed && gs.FailedAt.IsZero():
			gs.Passed = true
			x.event(false, ReasonGatePassed, "gate %s passed: %s", g.Name, res.Message)
		case known && res.Status == GateFailed && gs.FailedAt.IsZero():
			if !g.Hold {
				s.Gates[g.Name] = gs
				x.rollback(ResultRolledBack, DecidedByGate, fmt.Sprintf("gate %s failed: %s", g.Name, res.Message))
				return gatesRolledBack
			}
			gs.FailedAt = x.now
			x.event(true, ReasonGateFailed, "gate %s failed, holding and retrying every %s: %s", g.Name, plan.Interval, res.Message)
			out = gatesPending
		case !gs.FailedAt.IsZero():
			// A held failure is retried one interval later, as a new attempt.
			if retry := gs.FailedAt.Add(plan.Interval); x.now.Before(retry) {
				x.requeueAt(retry)
			} else {
				gs.Attempt++
				gs.FailedAt = time.Time{}
				x.d.RunGates = append(x.d.RunGates, GateRun{Name: g.Name, Attempt: gs.Attempt})
			}
			out = gatesPending
		default:
			x.d.RunGates = append(x.d.RunGates, GateRun{Name: g.Name, Attempt: gs.Attempt})
			out = gatesPending
		}
		s.Gates[g.Name] = gs
	}
	return out
}

// appliesAt reports whether the gate guards this point of the rollout:
// its type, and for per-stage gates its stage.
func (g Gate) appliesAt(typ GateType, stage int) bool {
	if g.Type != typ {
		return false
	}
	return (typ != GatePreStage && typ != GateDuringStage) || g.Stage == stage
}

// pendingGates names the gates of a type (and stage) not yet passed.
func (x *decider) pendingGates(typ GateType, stage int) []string {
	var names []string
	for _, g := range x.obs.Plan.Gates {
		if g.appliesAt(typ, stage) && !x.s().Gates[g.Name].Passed {
			names = append(names, g.Name)
		}
	}
	return names
}

// needsApproval reports whether promotion waits for a person.
func (x *decider) needsApproval() bool {
	for _, g := range x.obs.Plan.Gates {
		if g.Type == GateConfirmPromotion {
			return !x.s().Approved
		}
	}
	return false
}

// rules folds one interval's rule hits into the state and acts on the rules
// whose condition held for their whole duration. It reports whether the
// rollout was rolled back. windowStart is where the analysed window began:
// a condition holding in it is taken to have held since then.
func (x *decider) rules(windowStart time.Time) bool {
	s, plan := x.s(), x.obs.Plan
	for _, hit := range x.obs.Rules {
		var rule *Rule
		for i := range plan.Rules {
			if plan.Rules[i].Name == hit.Name {
				rule = &plan.Rules[i]
			}
		}
		if rule == nil {
			continue
		}
		if !hit.Held {
			if s.RuleFired[rule.Name] && rule.Action != RuleRollback {
				x.d.Events = append(x.d.Events, Event{Reason: ReasonRuleRecovered, Resolve: true, Notify: rule.Notify,
					Message: fmt.Sprintf("rule %s recovered: %s", rule.Name, hit.Message)})
			}
			delete(s.RuleSince, rule.Name)
			delete(s.RuleFired, rule.Name)
			continue
		}
		if s.RuleSince == nil {
			s.RuleSince, s.RuleFired = map[string]time.Time{}, map[string]bool{}
		}
		since, ok := s.RuleSince[rule.Name]
		if !ok {
			since = windowStart
			s.RuleSince[rule.Name] = since
		}
		held := x.now.Sub(since)
		if held < rule.For || s.RuleFired[rule.Name] {
			continue
		}
		if s.RuleFired == nil {
			s.RuleFired = map[string]bool{}
		}
		s.RuleFired[rule.Name] = true
		msg := fmt.Sprintf("rule %s: %s for %s", rule.Name, hit.Message, held.Round(time.Second))
		switch rule.Action {
		case RuleRollback:
			x.rollback(ResultRolledBack, DecidedByRule, msg)
			x.d.Events[len(x.d.Events)-1].Notify = rule.Notify
			return true
		case RulePause:
			x.d.SetPause = true
			x.d.Events = append(x.d.Events, Event{Warning: true, Reason: ReasonRulePaused, Notify: rule.Notify, Page: true,
				Message: msg + "; paused (remove meshcanary.io/pause to resume)"})
		case RuleAlert:
			x.d.Events = append(x.d.Events, Event{Warning: true, Reason: ReasonRuleAlert, Notify: rule.Notify, Page: true,
				Message: msg + "; alert only, a person decides"})
		}
	}
	return false
}
