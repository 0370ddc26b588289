package stages

import (
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

func schedule(t *testing.T, spec string) Schedule {
	t.Helper()
	s, err := cron.ParseStandard(spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func failGate(name string) func(string, int) GateResult {
	return func(n string, _ int) GateResult {
		if n == name {
			return GateResult{Status: GateFailed, Message: "POST /smoke → 503"}
		}
		return GateResult{Status: GatePassed, Message: "200 OK"}
	}
}

func TestReleaseSafety(t *testing.T) {
	tests := map[string]func(t *testing.T){
		"a failing pre-rollout gate keeps all traffic on stable and rolls back": func(t *testing.T) {
			w := newWorld(t)
			w.obs.Plan.Gates = []Gate{{Name: "smoke", Type: GatePreRollout}}
			w.gate = failGate("smoke")
			w.release("v2")
			for i := 0; i < 5 && w.st.Phase != RolledBack; i++ {
				w.tick(time.Second, Pass)
			}
			if w.st.Phase != RolledBack || w.st.DecidedBy != DecidedByGate || !strings.Contains(w.st.Message, "gate smoke failed") {
				t.Fatalf("state %+v", w.st)
			}
			for _, wt := range w.writes {
				if wt != 0 {
					t.Fatalf("canary got traffic (%d%%) before its pre-rollout gate passed", wt)
				}
			}
		},
		"a passing pre-rollout gate runs once and lets the first stage start": func(t *testing.T) {
			w := newWorld(t)
			w.obs.Plan.Gates = []Gate{{Name: "smoke", Type: GatePreRollout}}
			w.release("v2")
			w.tick(time.Second, Pass) // scale
			w.tick(time.Second, Pass) // gate requested and answered
			w.tick(time.Second, Pass) // weight written
			if w.obs.Weight != 1 || len(w.runs) != 1 {
				t.Fatalf("weight %d, runs %v", w.obs.Weight, w.runs)
			}
		},
		"a held gate failure keeps the weight and retries every interval as a new attempt": func(t *testing.T) {
			w := newWorld(t)
			w.obs.Plan.Gates = []Gate{{Name: "load", Type: GatePreStage, Stage: 1, Hold: true}}
			attempts := 0
			w.gate = func(_ string, a int) GateResult {
				attempts = a
				if a < 3 {
					return GateResult{Status: GateFailed, Message: "load test p99 too high"}
				}
				return GateResult{Status: GatePassed}
			}
			w.release("v2")
			for i := 0; i < 100 && w.obs.Weight != 10; i++ {
				w.tick(2*time.Second, Pass)
				if w.st.Phase == RolledBack {
					t.Fatalf("a hold gate rolled back")
				}
			}
			if attempts != 3 || w.obs.Weight != 10 {
				t.Fatalf("attempts %d weight %d", attempts, w.obs.Weight)
			}
		},
		"a during-stage gate must pass before its stage completes": func(t *testing.T) {
			w := newWorld(t)
			w.obs.Plan.Gates = []Gate{{Name: "acceptance", Type: GateDuringStage, Stage: 0, Hold: true}}
			pass := false
			w.gate = func(string, int) GateResult {
				if pass {
					return GateResult{Status: GatePassed}
				}
				return GateResult{Status: GateRunning}
			}
			w.release("v2")
			for i := 0; i < 30; i++ {
				w.tick(5*time.Second, Pass)
			}
			if w.st.Stage != 0 || !strings.Contains(w.st.Held, "acceptance") {
				t.Fatalf("stage %d held %q", w.st.Stage, w.st.Held)
			}
			pass = true
			for i := 0; i < 5 && w.st.Stage == 0; i++ {
				w.tick(5*time.Second, Pass)
			}
			if w.st.Stage != 1 {
				t.Fatalf("did not advance after the gate passed: %s", w.st.Message)
			}
		},
		"a manual approval gate holds the last stage, analysing all along, until a person approves": func(t *testing.T) {
			w := newWorld(t, Step{Weight: 50, Duration: 10 * time.Second}, Step{Weight: 100, Duration: 10 * time.Second})
			w.obs.Plan.Gates = []Gate{{Name: "confirm", Type: GateConfirmPromotion}}
			w.release("v2")
			for i := 0; i < 40; i++ {
				w.tick(5*time.Second, Pass)
			}
			if w.st.Phase != Progressing || w.obs.Weight != 100 || !w.hasEvent(ReasonAwaitingApproval) {
				t.Fatalf("phase %s weight %d", w.st.Phase, w.obs.Weight)
			}
			// Analysis still runs while waiting: a failure now rolls back.
			w2 := *w
			w2.tick(10*time.Second, Fail)
			w2.tick(10*time.Second, Fail)
			if w2.st.Phase != RolledBack {
				t.Fatalf("waiting for approval stopped the analysis")
			}
			w.obs.Commands.Approve = "alice"
			w.runUntil(Succeeded, 5*time.Second, Pass, 10)
			if !w.st.Approved || !w.hasEvent(ReasonApproved) {
				t.Fatalf("state %+v", w.st)
			}
		},
		"a rollout outside its window holds its weight and continues when the window opens": func(t *testing.T) {
			w := newWorld(t)
			w.now = time.Date(2026, 11, 23, 16, 58, 0, 0, time.UTC) // a Monday
			w.obs.Plan.Window = schedule(t, "* 9-16 * * 1-5")
			w.release("v2")
			w.tick(time.Second, Pass)
			w.tick(time.Second, Pass)
			if w.obs.Weight != 1 {
				t.Fatalf("first stage did not start inside the window")
			}
			// Stage 1 ends at 16:59, inside the window; stage 2 ends after 17:00.
			for i := 0; i < 30; i++ {
				w.tick(10*time.Second, Pass)
			}
			if w.obs.Weight != 10 || !strings.Contains(w.st.Held, "outside the release window") {
				t.Fatalf("weight %d held %q", w.obs.Weight, w.st.Held)
			}
			dec := w.tick(10*time.Second, Pass)
			if dec.RequeueAfter <= 0 {
				t.Fatalf("no wake-up asked while holding")
			}
			// The clock jumps to the next morning: the core continues.
			w.now = time.Date(2026, 11, 24, 9, 0, 5, 0, time.UTC)
			w.tick(time.Second, Pass)
			w.tick(10*time.Second, Pass)
			if w.obs.Weight != 50 {
				t.Fatalf("did not continue when the window opened: weight %d (%s)", w.obs.Weight, w.st.Message)
			}
		},
		"a rollback is allowed during a freeze, advancing is not": func(t *testing.T) {
			w := newWorld(t)
			w.obs.Plan.Freeze = []Schedule{schedule(t, "* 14-15 * * *")}
			w.release("v2")
			w.tick(time.Second, Pass)
			w.tick(time.Second, Pass)
			if w.obs.Weight != 0 || !strings.Contains(w.st.Held, "freeze") {
				t.Fatalf("advanced into a freeze: weight %d", w.obs.Weight)
			}
			w.obs.Commands.Rollback = "bad"
			w.tick(time.Second, "")
			if w.st.Phase != RolledBack {
				t.Fatalf("rollback refused during a freeze")
			}
		},
		"startAt delays the first stage to the next matching time": func(t *testing.T) {
			w := newWorld(t)
			w.obs.Plan.StartAt = schedule(t, "0 15 * * *")
			w.release("v2")
			for i := 0; i < 10; i++ {
				w.tick(time.Minute, Pass)
			}
			if w.obs.Weight != 0 || w.obs.Canary.Replicas != 0 {
				t.Fatalf("started before 15:00: weight %d replicas %d at %s", w.obs.Weight, w.obs.Canary.Replicas, w.now)
			}
			w.now = time.Date(2026, 11, 23, 15, 0, 1, 0, time.UTC)
			w.tick(time.Second, Pass)
			w.tick(time.Second, Pass)
			if w.obs.Weight != 1 {
				t.Fatalf("did not start at 15:00: %s", w.st.Message)
			}
		},
		"an alert-only rule notifies once per hold and never rolls back": func(t *testing.T) {
			w := newWorld(t)
			w.obs.Plan.Rules = []Rule{{Name: "latency-p95 > 3s", Action: RuleAlert, Notify: []string{"slack"}}}
			w.ruleHits = func(time.Time) []RuleHit {
				return []RuleHit{{Name: "latency-p95 > 3s", Held: true, Message: "latency-p95 canary 3.4s"}}
			}
			w.release("v2")
			for i := 0; i < 20; i++ {
				w.tick(5*time.Second, Pass)
			}
			alerts := 0
			for _, e := range w.events {
				if e.Reason == ReasonRuleAlert {
					alerts++
					if len(e.Notify) != 1 || e.Notify[0] != "slack" {
						t.Errorf("alert routed to %v", e.Notify)
					}
				}
			}
			if alerts != 1 || w.st.Phase == RolledBack {
				t.Fatalf("%d alerts, phase %s", alerts, w.st.Phase)
			}
		},
		"a for-30s rule does not act on a 10s spike but does on a sustained condition": func(t *testing.T) {
			w := newWorld(t, Step{Weight: 10, Duration: time.Hour})
			w.obs.Plan.Rules = []Rule{{Name: "errors", For: 30 * time.Second, Action: RuleRollback}}
			spikeFrom, spikeTo := time.Time{}, time.Time{}
			w.ruleHits = func(now time.Time) []RuleHit {
				held := !now.Before(spikeFrom) && now.Before(spikeTo)
				return []RuleHit{{Name: "errors", Held: held, Message: "error-rate canary 4%"}}
			}
			w.release("v2")
			w.tick(time.Second, Pass)
			w.tick(time.Second, Pass)
			spikeFrom, spikeTo = w.now.Add(15*time.Second), w.now.Add(25*time.Second)
			for i := 0; i < 12; i++ {
				w.tick(10*time.Second, Pass)
			}
			if w.st.Phase != Progressing {
				t.Fatalf("a 10s spike acted: %s", w.st.Message)
			}
			spikeFrom, spikeTo = w.now, w.now.Add(time.Hour)
			for i := 0; i < 6 && w.st.Phase == Progressing; i++ {
				w.tick(10*time.Second, Pass)
			}
			if w.st.Phase != RolledBack || w.st.DecidedBy != DecidedByRule || !strings.Contains(w.st.Message, "rule errors") {
				t.Fatalf("sustained condition did not roll back: %+v", w.st)
			}
		},
		"a pause rule asks for the pause annotation and the rollout pauses": func(t *testing.T) {
			w := newWorld(t)
			w.obs.Plan.Rules = []Rule{{Name: "slow", Action: RulePause}}
			w.ruleHits = func(time.Time) []RuleHit { return []RuleHit{{Name: "slow", Held: true}} }
			w.release("v2")
			w.tick(time.Second, Pass)
			w.tick(time.Second, Pass)
			w.tick(10*time.Second, Pass)
			w.tick(time.Second, Pass)
			if w.st.Phase != Paused || !w.hasEvent(ReasonRulePaused) {
				t.Fatalf("phase %s", w.st.Phase)
			}
		},
		"a stage that cannot complete is reported stuck once": func(t *testing.T) {
			w := newWorld(t)
			w.obs.Plan.StuckAfter = time.Minute
			w.release("v2")
			for i := 0; i < 60; i++ {
				w.tick(10*time.Second, Inconclusive)
			}
			n := 0
			for _, e := range w.events {
				if e.Reason == ReasonRolloutStuck {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("%d stuck reports", n)
			}
		},
		"a promotion whose stable never settles is reported stuck once, keeping the canary's traffic": func(t *testing.T) {
			w := newWorld(t, Step{Weight: 100, Duration: 10 * time.Second})
			w.release("v2")
			for w.st.Phase != Promoting {
				w.tick(5*time.Second, Pass)
			}
			for i := 0; i < 40; i++ {
				w.obs.Stable.Settled = false // stable's new pods never become available
				w.tick(10*time.Second, "")
			}
			n := 0
			for _, e := range w.events {
				if e.Reason == ReasonRolloutStuck && e.Page {
					n++
				}
			}
			if n != 1 || w.st.Phase != Promoting || w.obs.Weight != 100 {
				t.Fatalf("%d stuck reports, phase %s, weight %d", n, w.st.Phase, w.obs.Weight)
			}
		},
		"an automatic rollback pages and a manual one does not": func(t *testing.T) {
			w := newWorld(t)
			w.release("v2")
			w.tick(time.Second, Pass)
			w.tick(time.Second, Pass)
			w.tick(10*time.Second, Fail)
			dec := w.tick(10*time.Second, Fail)
			if e := dec.Events[len(dec.Events)-1]; e.Reason != ReasonRolledBack || !e.Page {
				t.Fatalf("event %+v", e)
			}
			w2 := newWorld(t)
			w2.release("v2")
			w2.tick(time.Second, Pass)
			w2.tick(time.Second, Pass)
			w2.obs.Commands.Rollback = "by hand"
			dec = w2.tick(time.Second, "")
			if e := dec.Events[len(dec.Events)-1]; e.Reason != ReasonRolledBack || e.Page {
				t.Fatalf("event %+v", e)
			}
		},
		"blue/green as one full stage: green scales to stable's size at 0% before one switch, and a failure switches back": func(t *testing.T) {
			w := newWorld(t, Step{Weight: 100, Duration: time.Hour})
			w.obs.Plan.Gates = []Gate{{Name: "smoke", Type: GatePreRollout}}
			w.release("v2")
			w.tick(time.Second, Pass)
			if w.obs.Canary.Replicas != 10 || w.obs.Weight != 0 {
				t.Fatalf("green %d replicas at weight %d", w.obs.Canary.Replicas, w.obs.Weight)
			}
			w.tick(time.Second, Pass)
			w.tick(time.Second, Pass)
			if got := dedupe(w.writes); !equalInts(got, []int{100}) {
				t.Fatalf("weights written %v, want one switch to 100", got)
			}
			w.tick(10*time.Second, Fail)
			w.tick(10*time.Second, Fail)
			if w.st.Phase != RolledBack || w.obs.Weight != 0 || w.obs.Stable.Available != 10 {
				t.Fatalf("did not switch back to a full stable: %s weight %d", w.st.Phase, w.obs.Weight)
			}
		},
		"a rollback in a long bake stage at 100% is one weight write to a stable that is still fully up": func(t *testing.T) {
			w := newWorld(t, Step{Weight: 10, Duration: 10 * time.Second}, Step{Weight: 100, Duration: 24 * time.Hour})
			w.release("v2")
			for w.obs.Weight != 100 {
				w.tick(5*time.Second, Pass)
			}
			w.tick(6*time.Hour, Pass)
			w.obs.Commands.Rollback = "regression after promotion"
			dec := w.tick(time.Second, "")
			if dec.SetWeight == nil || *dec.SetWeight != 0 || dec.ScaleCanary != nil || w.obs.Stable.Available != 10 {
				t.Fatalf("decision %+v", dec)
			}
		},
	}
	for name, fn := range tests {
		t.Run(name, fn)
	}
}
