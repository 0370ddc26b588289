package stages

import (
	"testing"
	"time"
)

func countReason(events []Event, reason string) int {
	n := 0
	for _, e := range events {
		if e.Reason == reason {
			n++
		}
	}
	return n
}

func TestEvidenceRules(t *testing.T) {
	tests := map[string]func(t *testing.T){
		"the verdict after a failed one rests only on traffic after it": func(t *testing.T) {
			w := newWorld(t)
			w.atStage(1)
			w.tick(10*time.Second, Fail)
			if w.st.Failures != 1 || !w.st.EvidenceStart.Equal(w.st.LastAnalysis) {
				t.Fatalf("failures %d, evidence from %s, last analysis %s", w.st.Failures, w.st.EvidenceStart, w.st.LastAnalysis)
			}
			failedAt := w.st.LastAnalysis
			w.now = w.now.Add(10 * time.Second)
			due, window := AnalysisDue(w.st, w.obs.Plan, w.now)
			if !due || !w.now.Add(-window).Equal(failedAt) {
				t.Fatalf("due %v, window from %s, failed verdict ended %s", due, w.now.Add(-window), failedAt)
			}
		},
		"an undecided verdict between two failures does not reset the count": func(t *testing.T) {
			w := newWorld(t)
			w.atStage(1)
			w.tick(10*time.Second, Fail)
			w.tick(10*time.Second, Inconclusive)
			w.tick(10*time.Second, Fail)
			if w.st.Phase != RolledBack {
				t.Fatalf("phase %s after fail, inconclusive, fail with failureLimit 2", w.st.Phase)
			}
		},
		"a pass that only failed to fail does not clear a failed verdict, and the stage waits": func(t *testing.T) {
			w := newWorld(t, Step{Weight: 10, Duration: 30 * time.Second}, Step{Weight: 100, Duration: 30 * time.Second})
			w.atStage(10)
			w.tick(10*time.Second, Fail)
			w.shape = func(a *Analysis) { a.Confident = false }
			for range 6 {
				w.tick(10*time.Second, Pass)
			}
			if w.st.Failures != 1 || w.st.Stage != 0 {
				t.Fatalf("failures %d stage %d after undecided passes, want the failure kept and the stage held", w.st.Failures, w.st.Stage)
			}
			w.tick(10*time.Second, Fail)
			if w.st.Phase != RolledBack {
				t.Fatalf("phase %s after a second failure separated by undecided passes", w.st.Phase)
			}
		},
		"a decisive pass clears a failed verdict and lets the stage complete": func(t *testing.T) {
			w := newWorld(t, Step{Weight: 10, Duration: 30 * time.Second}, Step{Weight: 100, Duration: 30 * time.Second})
			w.atStage(10)
			w.tick(10*time.Second, Fail)
			for range 3 {
				w.tick(10*time.Second, Pass)
			}
			if w.st.Failures != 0 || w.st.Stage != 1 {
				t.Fatalf("failures %d stage %d after decisive passes", w.st.Failures, w.st.Stage)
			}
		},
		"a stage waiting for evidence is not reported stuck in the decision that completes it": func(t *testing.T) {
			w := newWorld(t)
			w.obs.Plan.StuckAfter = time.Minute
			w.shape = func(a *Analysis) { a.AwaitingEvidence = true }
			w.atStage(1)
			for range 30 {
				w.tick(10*time.Second, Inconclusive)
			}
			w.shape = nil
			w.tick(10*time.Second, Pass)
			if n := countReason(w.events, ReasonRolloutStuck); n != 0 || w.st.Stage != 1 {
				t.Fatalf("%d RolloutStuck events, stage %d", n, w.st.Stage)
			}
		},
		"a stage does not complete when its last verdict lacks data, even after passes": func(t *testing.T) {
			w := newWorld(t, Step{Weight: 10, Duration: 30 * time.Second}, Step{Weight: 100, Duration: 30 * time.Second})
			w.atStage(10)
			w.tick(10*time.Second, Pass)
			w.tick(10*time.Second, Pass)
			w.tick(10*time.Second, Inconclusive)
			w.tick(10*time.Second, Inconclusive)
			if w.st.Stage != 0 {
				t.Fatalf("advanced to stage %d on an inconclusive last verdict", w.st.Stage)
			}
			w.tick(10*time.Second, Pass)
			if w.st.Stage != 1 {
				t.Fatalf("stage %d after a passing verdict past the duration", w.st.Stage)
			}
		},
		"a stage waiting for the canary's minimum of requests is not reported stuck": func(t *testing.T) {
			w := newWorld(t)
			w.obs.Plan.StuckAfter = time.Minute
			w.shape = func(a *Analysis) { a.AwaitingEvidence = true }
			w.atStage(1)
			for range 60 {
				w.tick(10*time.Second, Inconclusive)
			}
			if n := countReason(w.events, ReasonRolloutStuck); n != 0 || w.st.Stage != 0 {
				t.Fatalf("%d RolloutStuck events, stage %d", n, w.st.Stage)
			}
		},
		"a stage held by missing data is reported stuck": func(t *testing.T) {
			w := newWorld(t)
			w.obs.Plan.StuckAfter = time.Minute
			w.atStage(1)
			for range 60 {
				w.tick(10*time.Second, Inconclusive)
			}
			if n := countReason(w.events, ReasonRolloutStuck); n != 1 {
				t.Fatalf("%d RolloutStuck events, want 1", n)
			}
		},
		"traffic too low for the plan is said once per release": func(t *testing.T) {
			w := newWorld(t)
			w.shape = func(a *Analysis) { a.Forecast = "stage 1/4 expects 6 canary requests in 1m0s" }
			w.atStage(1)
			for range 10 {
				w.tick(10*time.Second, Inconclusive)
			}
			if n := countReason(w.events, ReasonLowTraffic); n != 1 {
				t.Fatalf("%d LowTraffic events, want 1", n)
			}
		},
	}
	for name, fn := range tests {
		t.Run(name, fn)
	}
}
