package decisions

import (
	"time"

	"github.com/meshcanary/meshcanary/pkg/metrics"
)

// Check is one canary-only check's outcome.
type Check int

const (
	// NotRun: the canary served no request in the check's window.
	NotRun Check = iota
	Passed
	Failed
)

// Flagger models Flagger's progressive canary analysis with its builtin
// Istio metrics, canary only: every Interval, request-success-rate ≥
// MinSuccessRate and request-duration p99 ≤ MaxP99 over the last Lookback of
// the canary's traffic; a passing check advances the weight by StepWeight,
// and a passing check at MaxWeight promotes. Failed checks count in total,
// never reset; the iteration after the Threshold-th failed check rolls back
// (Flagger checks the count before it analyses). A window without canary
// requests runs no check: no advance, no failure (Flagger itself counts
// "no values found" as a failed check).
type Flagger struct {
	Interval, Lookback    time.Duration
	MinSuccessRate        float64
	MaxP99                float64 // seconds
	Threshold             int
	StepWeight, MaxWeight int
}

// NewFlagger is the configuration the comparison uses: interval 10 s,
// 1 min metrics, success rate ≥ 99%, p99 ≤ 500 ms, threshold 2, steps of
// 10% up to 50%.
func NewFlagger() Flagger {
	return Flagger{Interval: 10 * time.Second, Lookback: time.Minute, MinSuccessRate: 0.99,
		MaxP99: 0.5, Threshold: 2, StepWeight: 10, MaxWeight: 50}
}

// Names is the rule's one name.
func (Flagger) Names() []string { return []string{"Flagger-like"} }

// Nominal is one interval per step up to MaxWeight, the last one's check
// promoting.
func (f Flagger) Nominal() time.Duration {
	return time.Duration(f.MaxWeight/f.StepWeight) * f.Interval
}

// Check judges the canary's counts over one lookback.
func (f Flagger) Check(c Counts) Check {
	if !(c.Requests > 0) {
		return NotRun
	}
	if 1-c.Errors/c.Requests < f.MinSuccessRate {
		return Failed
	}
	if metrics.Quantile(histogram(c), 0.99) > f.MaxP99 {
		return Failed
	}
	return Passed
}

// FlaggerState is the analysis' state between iterations.
type FlaggerState struct {
	Weight, FailedChecks int
	End                  End
}

// Next is one iteration: roll back on the threshold, start the traffic,
// or act on the check.
func (f Flagger) Next(st FlaggerState, check func() Check) FlaggerState {
	switch {
	case st.FailedChecks >= f.Threshold:
		st.End = RolledBack
	case st.Weight == 0:
		st.Weight = f.StepWeight
	default:
		switch check() {
		case Failed:
			st.FailedChecks++
		case Passed:
			if st.Weight >= f.MaxWeight {
				st.End = Promoted
			} else {
				st.Weight = min(st.Weight+f.StepWeight, f.MaxWeight)
			}
		}
	}
	return st
}

// Run is Release as a Rule.
func (f Flagger) Run(s *Stream, limit time.Duration) []Outcome {
	return []Outcome{f.Release(s, limit)}
}

// Release iterates every Interval until the analysis ends or limit passes.
func (f Flagger) Release(s *Stream, limit time.Duration) Outcome {
	iv, lb := int(f.Interval/time.Second), int(f.Lookback/time.Second)
	st, t := FlaggerState{}, 0
	for ; t <= int(limit/time.Second); t += iv {
		s.Advance(t, st.Weight)
		st = f.Next(st, func() Check { return f.Check(s.Window(canary, t-lb, t)) })
		if st.End != NotEnded {
			break
		}
	}
	return finish(s, st.End, t, st.Weight/f.StepWeight, st.Weight)
}
