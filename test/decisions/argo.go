package decisions

import (
	"time"

	"github.com/meshcanary/meshcanary/pkg/stages"
)

// Argo models an Argo Rollouts canary with a background analysis, canary
// only: the steps (setWeight, pause for the duration) are walked on time,
// and every Interval a measurement takes the canary's error rate over that
// Interval; it fails at MaxErrorRate or more. A measurement without canary
// requests is inconclusive and counts for nothing. The release is promoted
// when the last step's pause ends.
//
// Two countings of failed measurements run on the same measurements: as
// Argo does (analysis.go, assessMetricStatus), the analysis fails when more
// than FailureLimit measurements failed in total; "in a row" rolls back on
// FailureLimit consecutive failed measurements, a passing one resetting
// the streak and an inconclusive one not.
type Argo struct {
	Interval     time.Duration
	MaxErrorRate float64
	FailureLimit int
	Steps        []stages.Step
}

// NewArgo is the configuration the comparison uses: meshcanary's default
// stages, a 10 s measurement failing at an error rate of 1%, failureLimit 2.
func NewArgo(steps []stages.Step) Argo {
	return Argo{Interval: 10 * time.Second, MaxErrorRate: 0.01, FailureLimit: 2, Steps: steps}
}

// Names are the two countings, in the order Run returns them.
func (a Argo) Names() []string {
	return []string{"Argo-like (>2 in total)", "Argo-like (2 in a row)"}
}

// Nominal is the sum of the steps' pauses.
func (a Argo) Nominal() time.Duration { return sumSteps(a.Steps) }

// Measure judges the canary's counts over one measurement.
func (a Argo) Measure(c Counts) Check {
	switch {
	case !(c.Requests > 0):
		return NotRun
	case c.Errors/c.Requests >= a.MaxErrorRate:
		return Failed
	}
	return Passed
}

// ArgoState counts the failed measurements; Ends says whether each counting
// (in total, in a row) failed the analysis.
type ArgoState struct {
	Failed, Streak int
	Ends           [2]End
}

// Fold adds one measurement.
func (a Argo) Fold(st ArgoState, m Check) ArgoState {
	switch m {
	case Failed:
		st.Failed++
		st.Streak++
	case Passed:
		st.Streak = 0
	}
	if st.Ends[0] == NotEnded && st.Failed > a.FailureLimit {
		st.Ends[0] = RolledBack
	}
	if st.Ends[1] == NotEnded && st.Streak >= a.FailureLimit {
		st.Ends[1] = RolledBack
	}
	return st
}

// Run walks the steps, measuring every Interval, until both countings
// ended or limit passes.
func (a Argo) Run(s *Stream, limit time.Duration) []Outcome {
	iv := int(a.Interval / time.Second)
	w := argoWalk{a: a, s: s, stageEnd: int(a.Steps[0].Duration / time.Second)}
	for t := iv; t <= int(limit/time.Second) && !w.done(); t += iv {
		w.step(t)
	}
	for i := range w.out {
		if !w.ended[i] {
			w.out[i] = finish(s, NotEnded, int(limit/time.Second), w.stage+1, a.Steps[w.stage].Weight)
		}
	}
	return w.out[:]
}

// argoWalk is one release under both countings.
type argoWalk struct {
	a               Argo
	s               *Stream
	st              ArgoState
	stage, stageEnd int
	out             [2]Outcome
	ended           [2]bool
}

func (w *argoWalk) done() bool { return w.ended[0] && w.ended[1] }

// step measures at second t, then ends the stage if it is over.
func (w *argoWalk) step(t int) {
	iv := int(w.a.Interval / time.Second)
	weight := w.a.Steps[w.stage].Weight
	w.s.Advance(t, weight)
	w.st = w.a.Fold(w.st, w.a.Measure(w.s.Window(canary, t-iv, t)))
	w.end(t, w.st.Ends)
	if t < w.stageEnd {
		return
	}
	if w.stage == len(w.a.Steps)-1 {
		w.end(t, [2]End{Promoted, Promoted})
		return
	}
	w.stage++
	w.stageEnd += int(w.a.Steps[w.stage].Duration / time.Second)
}

// end records the countings that ended at second t.
func (w *argoWalk) end(t int, ends [2]End) {
	for i, e := range ends {
		if e != NotEnded && !w.ended[i] {
			w.ended[i] = true
			w.out[i] = finish(w.s, e, t, w.stage+1, w.a.Steps[w.stage].Weight)
		}
	}
}
