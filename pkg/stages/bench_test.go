package stages

import (
	"testing"
	"time"
)

// BenchmarkDecide measures one decision of a rollout mid-stage with an
// analysis to fold in: the core's cost per reconcile.
func BenchmarkDecide(b *testing.B) {
	now := time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC)
	obs := Observation{
		Plan: Plan{Steps: []Step{{Weight: 1, Duration: time.Hour}, {Weight: 10, Duration: time.Hour}, {Weight: 50, Duration: time.Hour}, {Weight: 100, Duration: time.Hour}},
			Interval: time.Minute, FailureLimit: 2, OutageLimit: 5},
		Stable:   Workload{Revision: "v1", Replicas: 10, Available: 10, Settled: true},
		Canary:   Workload{Revision: "v2", Replicas: 1, Available: 1, Settled: true},
		Weight:   10,
		Analysis: &Analysis{Verdict: Pass, Message: "all 2 checks passed"},
	}
	st := State{Phase: Progressing, Revision: "v2", Stage: 1, StageStart: now.Add(-10 * time.Minute), Weight: 10, Passes: 3}
	b.ReportAllocs()
	for b.Loop() {
		_ = Decide(obs, st, now)
	}
}
