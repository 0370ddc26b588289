package decisions

import (
	"reflect"
	"testing"
	"time"

	"github.com/meshcanary/meshcanary/pkg/metrics"
)

// TestHarness checks the harness itself on releases whose end is not in
// doubt; the figures are the benchmark's.
func TestHarness(t *testing.T) {
	m := NewMeshcanary()
	limit := 4*m.Nominal() + time.Hour
	broken := healthy()
	broken.ErrorRate = 1
	tests := []struct {
		name   string
		rule   Rule
		canary Profile
		want   End
		stage  int
	}{
		{"meshcanary promotes a healthy release at 200 rps after its four stages", m, healthy(), Promoted, 4},
		{"meshcanary rolls back a canary failing every request in its first stage", m, broken, RolledBack, 1},
		{"the Flagger-like rule promotes a healthy release at 200 rps at 50%", NewFlagger(), healthy(), Promoted, 5},
		{"the Flagger-like rule rolls back a canary failing every request at 10%", NewFlagger(), broken, RolledBack, 1},
		{"both Argo-like countings promote a healthy release at 200 rps after its four steps", NewArgo(m.Plan.Steps), healthy(), Promoted, 4},
		{"both Argo-like countings roll back a canary failing every request in its first step", NewArgo(m.Plan.Steps), broken, RolledBack, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outs := tt.rule.Run(NewStream(BaseSeed, 200, healthy(), tt.canary), limit)
			if len(outs) != len(tt.rule.Names()) {
				t.Fatalf("%d outcomes for %d names", len(outs), len(tt.rule.Names()))
			}
			for _, o := range outs {
				if o.End != tt.want || o.Stage != tt.stage {
					t.Fatalf("got %+v, want end %v at stage %d", o, tt.want, tt.stage)
				}
				if o.At < 0 || o.CanaryRequests == 0 {
					t.Errorf("the canary served no request: %+v", o)
				}
			}
		})
	}
	t.Run("a healthy meshcanary release takes its plan, from its first canary request", func(t *testing.T) {
		o := m.Release(NewStream(BaseSeed, 200, healthy(), healthy()), limit)
		if o.At < m.Nominal()-5*time.Second || o.At > m.Nominal() {
			t.Errorf("promoted %s after the first canary request, plan %s", o.At, m.Nominal())
		}
	})
}

func TestSimulateDependsOnlyOnTheConfiguration(t *testing.T) {
	m := NewMeshcanary()
	cfg := Config{
		Scenarios: Scenarios(3, 2),
		Levels:    []float64{50},
		Rules:     []Rule{m, NewFlagger(), NewArgo(m.Plan.Steps)},
		Limit:     4*m.Nominal() + time.Hour,
		Workers:   1,
	}
	one := Simulate(cfg)
	cfg.Workers = 3
	if three := Simulate(cfg); !reflect.DeepEqual(one, three) {
		t.Error("outcomes differ between one worker and three")
	}
}

func TestVerdictTally(t *testing.T) {
	const (
		p = metrics.VerdictPass
		f = metrics.VerdictFail
		i = metrics.VerdictInconclusive
	)
	tests := []struct {
		name string
		seq  []metrics.Verdict
		want [6]int // verdicts, failed, after, failed after, decided after, failed decided after
	}{
		{"passes alone count as verdicts only", []metrics.Verdict{p, i, p}, [6]int{3, 0, 0, 0, 0, 0}},
		{"an inconclusive verdict after a failure is the next verdict but not the next decided one", []metrics.Verdict{f, i, p}, [6]int{3, 1, 1, 0, 1, 0}},
		{"a failure after an inconclusive one is the next decided verdict of the first failure", []metrics.Verdict{f, i, f}, [6]int{3, 2, 1, 0, 1, 1}},
		{"each failure of a run of failures counts the next one", []metrics.Verdict{f, f, f, p}, [6]int{4, 3, 3, 2, 3, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &mcRun{}
			for _, v := range tt.seq {
				r.tally(metrics.Result{Verdict: v})
			}
			c := r.counts
			got := [6]int{c.Verdicts, c.Failed, c.AfterFailed, c.FailedAfterFailed, c.DecidedAfterFailed, c.FailedDecidedAfterFailed}
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
