package decisions

import (
	"strings"
	"time"

	"github.com/meshcanary/meshcanary/pkg/metrics"
	"github.com/meshcanary/meshcanary/pkg/policy"
	"github.com/meshcanary/meshcanary/pkg/stages"
)

// progressDeadline is the controller's default --progress-deadline.
const progressDeadline = 10 * time.Minute

// maxSameInstant bounds the decisions taken at one instant (one per action
// the previous one asked for, as watch events would trigger).
const maxSameInstant = 8

// Meshcanary is the real decision core with the default policy at a 10 s
// interval.
type Meshcanary struct {
	Policy policy.Policy
	Plan   stages.Plan
}

// NewMeshcanary returns the default policy, interval 10 s, as the
// controller would plan it.
func NewMeshcanary() Meshcanary {
	p := policy.Policy{Name: policy.DefaultPolicyName}
	policy.Defaults(&p)
	p.Interval.Duration = 10 * time.Second
	return Meshcanary{Policy: p, Plan: planOf(p)}
}

// planOf is pkg/controller's buildPlan for a canary policy without
// schedules, gates or rules.
func planOf(p policy.Policy) stages.Plan {
	plan := stages.Plan{
		Interval:         p.Interval.Duration,
		FailureLimit:     p.FailureLimit,
		OutageLimit:      p.MetricsOutageLimit,
		ProgressDeadline: progressDeadline,
		StuckAfter:       p.StuckAfter.Duration,
	}
	for _, s := range p.Stages {
		step := stages.Step{Weight: s.Weight, Duration: s.Duration.Duration}
		if s.CanaryReplicas != nil {
			step.CanaryReplicas = *s.CanaryReplicas
		}
		plan.Steps = append(plan.Steps, step)
	}
	return plan
}

// meshcanaryName is the rule's name in the tables.
const meshcanaryName = "meshcanary"

// Names is the rule's one name.
func (Meshcanary) Names() []string { return []string{meshcanaryName} }

// Nominal is the sum of the stages' durations.
func (m Meshcanary) Nominal() time.Duration { return sumSteps(m.Plan.Steps) }

func sumSteps(steps []stages.Step) time.Duration {
	var d time.Duration
	for _, s := range steps {
		d += s.Duration
	}
	return d
}

// Run is Release as a Rule.
func (m Meshcanary) Run(s *Stream, limit time.Duration) []Outcome {
	return []Outcome{m.Release(s, limit)}
}

// Release releases revision v2 over stable v1 and decides until the
// release ends or limit passes.
func (m Meshcanary) Release(s *Stream, limit time.Duration) Outcome {
	r := &mcRun{m: m, s: s, t0: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)}
	r.now = r.t0
	r.obs = stages.Observation{
		Plan:          m.Plan,
		Stable:        stages.Workload{Revision: "v1", Replicas: 10, Available: 10, Settled: true},
		Canary:        stages.Workload{Revision: "v2", Settled: true},
		RouteResolved: true,
	}
	for r.now.Sub(r.t0) <= limit {
		wait := r.instant()
		if r.st.Phase == stages.Succeeded || r.st.Phase == stages.RolledBack {
			return r.finish()
		}
		r.now = r.now.Add(wait)
	}
	r.now = r.t0.Add(limit)
	return r.outcome(NotEnded)
}

// mcRun is one release under the real core.
type mcRun struct {
	m    Meshcanary
	s    *Stream
	t0   time.Time
	now  time.Time
	obs  stages.Observation
	st   stages.State
	prev metrics.Verdict
	// failedOpen says a failed verdict awaits the next Pass or Fail.
	failedOpen bool
	last       metrics.Result
	counts     Outcome
}

func (r *mcRun) sec(t time.Time) int { return int(t.Sub(r.t0) / time.Second) }

// instant decides at r.now, again after each action as its watch event
// would, and says how long to wait for the next decision.
func (r *mcRun) instant() time.Duration {
	for range maxSameInstant {
		r.s.Advance(r.sec(r.now), r.obs.Weight)
		r.obs.Analysis = r.analyse()
		dec := stages.Decide(r.obs, r.st, r.now)
		acted := r.apply(dec)
		if !acted || !r.st.Phase.Active() {
			return wakeAfter(dec.RequeueAfter)
		}
	}
	return time.Second
}

// wakeAfter is RequeueAfter rounded up to whole seconds, at least one: the
// traffic is simulated per second.
func wakeAfter(d time.Duration) time.Duration {
	if d <= 0 {
		return time.Second
	}
	return (d + time.Second - 1).Truncate(time.Second)
}

// analyse answers the analysis AnalysisDue asks for, if any, over exactly
// its window.
func (r *mcRun) analyse() *stages.Analysis {
	due, window := stages.AnalysisDue(r.st, stages.EffectivePlan(r.st, r.m.Plan), r.now)
	if !due {
		return nil
	}
	res := r.evaluate(window)
	r.tally(res)
	a := analysisOf(res, r.now)
	return &a
}

// evaluate judges the window of the given length that ends now.
func (r *mcRun) evaluate(window time.Duration) metrics.Result {
	from, to := r.sec(r.now.Add(-window)), r.sec(r.now)
	checks := r.m.Policy.ChecksFor(r.st.Stage)
	smp := samplesOf(r.s.Window(canary, from, to), r.s.Window(stable, from, to), window, r.st.Weight, checks)
	return metrics.Evaluate(smp, checks, r.m.Policy.MinRequests)
}

// tally counts the verdict and what follows a failed one.
func (r *mcRun) tally(res metrics.Result) {
	c := &r.counts
	c.Verdicts++
	if r.prev == metrics.VerdictFail {
		c.AfterFailed++
		if res.Verdict == metrics.VerdictFail {
			c.FailedAfterFailed++
		}
	}
	decided := res.Verdict == metrics.VerdictPass || res.Verdict == metrics.VerdictFail
	if r.failedOpen && decided {
		c.DecidedAfterFailed++
		if res.Verdict == metrics.VerdictFail {
			c.FailedDecidedAfterFailed++
		}
	}
	if res.Verdict == metrics.VerdictFail {
		c.Failed++
	}
	r.failedOpen = (r.failedOpen && !decided) || res.Verdict == metrics.VerdictFail
	r.prev, r.last = res.Verdict, res
}

// apply does what the decision asks, at once and completely, and reports
// whether it asked for anything.
func (r *mcRun) apply(dec stages.Decision) bool {
	r.st = dec.State
	for _, e := range dec.Events {
		if e.Reason == stages.ReasonRolloutStuck {
			r.counts.Stuck = true
		}
	}
	if dec.SetWeight != nil {
		r.obs.Weight = *dec.SetWeight
	}
	if dec.ScaleCanary != nil {
		n := *dec.ScaleCanary
		r.obs.Canary.Replicas, r.obs.Canary.Available, r.obs.Canary.Settled = n, n, true
	}
	if dec.Promote {
		r.obs.Stable.Revision, r.obs.Stable.Settled = r.obs.Canary.Revision, true
	}
	return dec.SetWeight != nil || dec.ScaleCanary != nil || dec.Promote
}

func (r *mcRun) finish() Outcome {
	if r.st.Phase == stages.Succeeded {
		return r.outcome(Promoted)
	}
	out := r.outcome(RolledBack)
	if r.st.DecidedBy == stages.DecidedByAnalysis && r.last.Verdict == metrics.VerdictFail {
		var failed []string
		for _, c := range r.last.Checks {
			if c.Verdict == metrics.VerdictFail {
				failed = append(failed, c.Metric)
			}
		}
		out.Cause = strings.Join(failed, "+")
	} else {
		out.Cause = "decided by " + r.st.DecidedBy
	}
	return out
}

func (r *mcRun) outcome(e End) Outcome {
	steps := r.m.Plan.Steps
	i := min(max(r.st.Stage, 0), len(steps)-1)
	out := finish(r.s, e, r.sec(r.now), i+1, steps[i].Weight)
	c := r.counts
	out.Verdicts, out.Failed, out.AfterFailed, out.FailedAfterFailed, out.Stuck = c.Verdicts, c.Failed, c.AfterFailed, c.FailedAfterFailed, c.Stuck
	out.DecidedAfterFailed, out.FailedDecidedAfterFailed = c.DecidedAfterFailed, c.FailedDecidedAfterFailed
	return out
}
