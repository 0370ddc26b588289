package stages

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// world is a deterministic stand-in for the cluster around the core: it
// applies each Decision's actions the way the controller shell would, and
// makes scaled canaries available at once unless told otherwise.
type world struct {
	t       *testing.T
	now     time.Time
	st      State
	obs     Observation
	slow    bool // canary pods do not become available
	events  []Event
	writes  []int // weights written, in order
	last    Decision
	persist bool // round-trip State through JSON, as the annotation does
	// shape, when set, fills in the analysis an analysis tick hands over.
	shape func(*Analysis)
	// gate answers a gate run at once; nil passes every gate.
	gate func(name string, attempt int) GateResult
	// ruleHits says which rules hold when an analysis runs.
	ruleHits func(now time.Time) []RuleHit
	runs     []GateRun
}

func newWorld(t *testing.T, steps ...Step) *world {
	t.Helper()
	if len(steps) == 0 {
		steps = []Step{{Weight: 1, Duration: time.Minute}, {Weight: 10, Duration: time.Minute}, {Weight: 50, Duration: time.Minute}, {Weight: 100, Duration: time.Minute}}
	}
	return &world{
		t:   t,
		now: time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC),
		obs: Observation{
			Plan:   Plan{Steps: steps, Interval: 10 * time.Second, FailureLimit: 2, OutageLimit: 3, ProgressDeadline: 5 * time.Minute},
			Stable: Workload{Revision: "v1", Replicas: 10, Available: 10, Settled: true},
			Canary: Workload{Revision: "v1", Replicas: 0, Available: 0, Settled: true},
		},
		persist: true,
	}
}

// release changes the canary's template, as `kubectl set image` would.
func (w *world) release(rev string) {
	w.obs.Canary.Revision = rev
	w.obs.Canary.Settled = w.obs.Canary.Replicas == 0
}

// tick advances the clock and runs one decision, analysing with verdict v
// when the core says an analysis is due.
func (w *world) tick(d time.Duration, v Verdict) Decision {
	w.t.Helper()
	w.now = w.now.Add(d)
	w.obs.Analysis = nil
	w.obs.Rules = nil
	if due, _ := AnalysisDue(w.st, w.obs.Plan, w.now); due && v != "" {
		w.obs.Analysis = &Analysis{Verdict: v, Message: "verdict " + string(v), Confident: v == Pass}
		if w.shape != nil {
			w.shape(w.obs.Analysis)
		}
		if w.ruleHits != nil {
			w.obs.Rules = w.ruleHits(w.now)
		}
	}
	dec := Decide(w.obs, w.st, w.now)
	w.apply(dec)
	w.watchEvent(dec)
	return dec
}

// watchEvent decides once more at the same moment after a weight write,
// as the route's watch event makes the controller do: the core sees its
// write land (and starts a stage's clock) right away, not a tick later.
func (w *world) watchEvent(dec Decision) {
	w.t.Helper()
	if dec.SetWeight == nil || !w.st.WeightPending {
		return
	}
	w.obs.Analysis, w.obs.Rules = nil, nil
	w.apply(Decide(w.obs, w.st, w.now))
}

func (w *world) apply(dec Decision) {
	w.t.Helper()
	w.last = dec
	w.events = append(w.events, dec.Events...)
	if dec.SetWeight != nil {
		if *dec.SetWeight < 0 || *dec.SetWeight > 100 {
			w.t.Fatalf("weight out of range: %d", *dec.SetWeight)
		}
		w.obs.Weight = *dec.SetWeight
		w.writes = append(w.writes, *dec.SetWeight)
		if w.obs.Weight > 0 && w.obs.Canary.Available == 0 {
			w.t.Fatalf("weight %d written while the canary has no available pods", w.obs.Weight)
		}
	}
	if dec.ScaleCanary != nil {
		n := *dec.ScaleCanary
		w.obs.Canary.Replicas = n
		if !w.slow || n == 0 {
			w.obs.Canary.Available, w.obs.Canary.Settled = n, true
		} else {
			w.obs.Canary.Settled = false
		}
	}
	if dec.RestoreStable {
		w.obs.Stable.Revision = dec.State.StableRevision
		w.obs.Stable.Settled = false
	} else if dec.Promote {
		w.obs.Stable.Revision = w.obs.Canary.Revision
		w.obs.Stable.Settled = false
	} else if w.obs.Stable.Revision == w.st.Revision {
		w.obs.Stable.Settled = true // the stable rollout completes by the next look
	}
	if dec.Consumed.Rollback {
		w.obs.Commands.Rollback = ""
	}
	if dec.Consumed.Promote {
		w.obs.Commands.Promote = false
	}
	if dec.Consumed.Pause {
		w.obs.Commands.Pause = false
	}
	if dec.Consumed.Approve {
		w.obs.Commands.Approve = ""
	}
	if dec.Consumed.Retry {
		w.obs.Commands.Retry = false
	}
	if dec.SetPause {
		w.obs.Commands.Pause = true
	}
	for _, r := range dec.RunGates {
		w.runs = append(w.runs, r)
		res := GateResult{Status: GatePassed, Message: "200 OK"}
		if w.gate != nil {
			res = w.gate(r.Name, r.Attempt)
		}
		if w.obs.Gates == nil {
			w.obs.Gates = map[string]GateResult{}
		}
		w.obs.Gates[r.Name] = res
	}
	w.st = dec.State
	if w.persist {
		b, err := json.Marshal(w.st)
		if err != nil {
			w.t.Fatal(err)
		}
		var back State
		if err := json.Unmarshal(b, &back); err != nil {
			w.t.Fatal(err)
		}
		w.st = back
	}
}

// runUntil ticks every step until the phase is reached or the budget ends.
func (w *world) runUntil(p Phase, step time.Duration, v Verdict, budget int) {
	w.t.Helper()
	for i := 0; i < budget; i++ {
		if w.st.Phase == p {
			return
		}
		w.tick(step, v)
	}
	if w.st.Phase != p {
		w.t.Fatalf("phase %s not reached after %d ticks: %s (%s)", p, budget, w.st.Phase, w.st.Message)
	}
}

func (w *world) hasEvent(reason string) bool {
	for _, e := range w.events {
		if e.Reason == reason {
			return true
		}
	}
	return false
}

func TestScenarios(t *testing.T) {
	tests := map[string]func(t *testing.T){
		"a healthy release walks every stage with its weights and replicas, promotes, and ends at 100/0 with no canary pods": func(t *testing.T) {
			w := newWorld(t)
			w.release("v2")
			replicasAtWeight := map[int]int32{}
			for i := 0; i < 200 && w.st.Phase != Succeeded; i++ {
				dec := w.tick(5*time.Second, Pass)
				if dec.SetWeight != nil && *dec.SetWeight > 0 {
					replicasAtWeight[*dec.SetWeight] = w.obs.Canary.Replicas
				}
			}
			w.tick(time.Second, "") // the settled weight is observed; the canary scales down
			if w.st.Phase != Succeeded || w.obs.Stable.Revision != "v2" {
				t.Fatalf("phase %s, stable %s", w.st.Phase, w.obs.Stable.Revision)
			}
			if got := dedupe(w.writes); !equalInts(got, []int{1, 10, 50, 100, 0}) {
				t.Errorf("weights written %v", got)
			}
			want := map[int]int32{1: 1, 10: 1, 50: 5, 100: 10}
			for wt, n := range want {
				if replicasAtWeight[wt] != n {
					t.Errorf("at %d%% the canary had %d replicas, want %d", wt, replicasAtWeight[wt], n)
				}
			}
			if w.obs.Canary.Replicas != 0 || w.obs.Weight != 0 {
				t.Errorf("after promotion: canary replicas %d, weight %d", w.obs.Canary.Replicas, w.obs.Weight)
			}
			if w.st.Result != ResultPromoted || !w.hasEvent(ReasonPromoted) {
				t.Errorf("result %s, events %v", w.st.Result, w.events)
			}
		},
		"a stage lasts its whole duration even when every interval passes": func(t *testing.T) {
			w := newWorld(t)
			w.release("v2")
			w.tick(time.Second, Pass) // scale
			w.tick(time.Second, Pass) // weight 1 written
			start := w.now
			for w.obs.Weight == 1 {
				w.tick(time.Second, Pass)
			}
			if got := w.now.Sub(start); got < time.Minute {
				t.Fatalf("stage 1 lasted %s, want at least 1m", got)
			}
		},
		"a failed interval stops advancement at once, even when the stage time is up": func(t *testing.T) {
			w := newWorld(t)
			w.release("v2")
			w.tick(time.Second, Pass)
			w.tick(time.Second, Pass)
			w.tick(50*time.Second, Pass)
			w.tick(15*time.Second, Fail) // the stage's minute is over, but this interval failed
			if w.obs.Weight != 1 || w.st.Stage != 0 {
				t.Fatalf("advanced after a failure: weight %d stage %d", w.obs.Weight, w.st.Stage)
			}
			w.tick(10*time.Second, Pass)
			if w.st.Stage != 1 {
				t.Fatalf("did not advance after a passing interval: stage %d (%s)", w.st.Stage, w.st.Message)
			}
		},
		"consecutive failures up to the limit roll back in one weight write with the numbers in the message": func(t *testing.T) {
			w := newWorld(t)
			w.release("v2")
			w.runUntil(Progressing, time.Second, Pass, 3)
			w.tick(time.Second, Pass)
			w.tick(10*time.Second, Fail)
			if w.st.Phase != Progressing {
				t.Fatalf("rolled back after one failure")
			}
			dec := w.tick(10*time.Second, Fail)
			if w.st.Phase != RolledBack || dec.SetWeight == nil || *dec.SetWeight != 0 {
				t.Fatalf("phase %s, decision %+v", w.st.Phase, dec)
			}
			if dec.ScaleCanary != nil {
				t.Fatalf("canary scaled down before the VirtualService was observed at 0")
			}
			if !strings.Contains(w.st.Message, "verdict Fail") || !strings.Contains(w.st.Message, "stage 1/4 (1%)") {
				t.Errorf("message %q", w.st.Message)
			}
			w.tick(time.Second, "")
			if w.obs.Canary.Replicas != 0 {
				t.Errorf("canary still has %d replicas", w.obs.Canary.Replicas)
			}
		},
		"an interval that is inconclusive between two failures does not reset the count": func(t *testing.T) {
			w := newWorld(t)
			w.release("v2")
			w.tick(time.Second, Pass)
			w.tick(time.Second, Pass)
			w.tick(10*time.Second, Fail)
			w.tick(10*time.Second, Inconclusive)
			w.tick(10*time.Second, Fail)
			if w.st.Phase != RolledBack {
				t.Fatalf("phase %s", w.st.Phase)
			}
		},
		"low traffic is inconclusive forever: it neither fails nor promotes a stage": func(t *testing.T) {
			w := newWorld(t)
			w.release("v2")
			for i := 0; i < 100; i++ {
				w.tick(10*time.Second, Inconclusive)
			}
			if w.st.Phase != Progressing || w.st.Stage != 0 || w.obs.Weight != 1 {
				t.Fatalf("phase %s stage %d weight %d", w.st.Phase, w.st.Stage, w.obs.Weight)
			}
		},
		"the weight is written only once the canary is available, and a canary that never is rolls back at the deadline": func(t *testing.T) {
			w := newWorld(t)
			w.slow = true
			w.release("v2")
			for i := 0; i < 20; i++ {
				w.tick(10*time.Second, Pass)
				if w.obs.Weight != 0 {
					t.Fatalf("weight written before the canary was available")
				}
			}
			w.runUntil(RolledBack, 10*time.Second, Pass, 20)
			if !w.hasEvent(ReasonCanaryNotReady) {
				t.Errorf("no CanaryNotReady event")
			}
		},
		"a manual rollback mid-stage writes stable 100% at once and is consumed": func(t *testing.T) {
			w := newWorld(t)
			w.release("v2")
			w.runUntil(Progressing, time.Second, Pass, 2)
			for w.obs.Weight != 10 {
				w.tick(5*time.Second, Pass)
			}
			w.obs.Commands.Rollback = "p99 spike seen by on-call"
			dec := w.tick(time.Millisecond, "")
			if dec.SetWeight == nil || *dec.SetWeight != 0 || !dec.Consumed.Rollback {
				t.Fatalf("decision %+v", dec)
			}
			if w.st.Phase != RolledBack || w.st.Result != ResultManualRollback || !strings.Contains(w.st.Message, "p99 spike") {
				t.Fatalf("state %+v", w.st)
			}
			w.tick(time.Second, "")
			if w.obs.Canary.Replicas != 0 {
				t.Errorf("canary replicas %d", w.obs.Canary.Replicas)
			}
			// The same revision is not retried.
			for i := 0; i < 5; i++ {
				w.tick(time.Minute, Pass)
			}
			if w.st.Phase != RolledBack || w.obs.Weight != 0 {
				t.Errorf("rolled-back revision was retried: %s", w.st.Phase)
			}
		},
		"pause holds the weight and the stage clock, and resume continues the remaining time": func(t *testing.T) {
			w := newWorld(t)
			w.release("v2")
			w.tick(time.Second, Pass)
			w.tick(time.Second, Pass) // stage 1 starts
			w.tick(30*time.Second, Pass)
			w.obs.Commands.Pause = true
			w.tick(time.Second, Pass)
			if w.st.Phase != Paused {
				t.Fatalf("phase %s", w.st.Phase)
			}
			for i := 0; i < 30; i++ {
				w.tick(10*time.Second, Pass)
			}
			if w.st.Stage != 0 || w.obs.Weight != 1 {
				t.Fatalf("advanced while paused")
			}
			w.obs.Commands.Pause = false
			w.tick(time.Second, Pass)
			if w.st.Phase != Progressing {
				t.Fatalf("phase %s", w.st.Phase)
			}
			if r := StageRemaining(w.st, w.obs.Plan, w.now); r < 27*time.Second || r > 29*time.Second {
				t.Fatalf("remaining %s, want about 28s", r)
			}
			w.tick(20*time.Second, Pass)
			if w.st.Stage != 0 {
				t.Fatalf("stage shortened by the pause")
			}
			w.tick(10*time.Second, Pass)
			if w.st.Stage != 1 {
				t.Fatalf("did not advance once the remaining time passed: %s", w.st.Message)
			}
		},
		"a manual promotion skips the remaining stages and is recorded as manual": func(t *testing.T) {
			w := newWorld(t)
			w.release("v2")
			w.tick(time.Second, Pass)
			w.tick(time.Second, Pass)
			w.obs.Commands.Promote = true
			dec := w.tick(time.Second, "")
			if !dec.Promote || w.st.Phase != Promoting || !dec.Consumed.Promote {
				t.Fatalf("decision %+v", dec)
			}
			if w.obs.Weight != 1 {
				t.Fatalf("canary lost its traffic before stable settled")
			}
			w.runUntil(Succeeded, time.Second, "", 5)
			if w.st.Result != ResultManualPromoted || w.obs.Weight != 0 {
				t.Fatalf("result %s weight %d", w.st.Result, w.obs.Weight)
			}
		},
		"the canary template returning to stable's ends the release like a rollback": func(t *testing.T) {
			w := newWorld(t)
			w.release("v2")
			w.tick(time.Second, Pass)
			w.tick(time.Second, Pass)
			w.release("v1")
			w.tick(time.Second, "")
			if w.st.Phase != RolledBack || w.obs.Weight != 0 || w.st.Result != ResultAborted {
				t.Fatalf("state %+v weight %d", w.st, w.obs.Weight)
			}
		},
		"a new revision mid-release restarts from the first stage with no traffic": func(t *testing.T) {
			w := newWorld(t)
			w.release("v2")
			w.tick(time.Second, Pass)
			w.tick(time.Second, Pass)
			for w.st.Stage < 2 {
				w.tick(10*time.Second, Pass)
			}
			w.slow = true
			w.release("v3")
			dec := w.tick(time.Second, "")
			if dec.SetWeight == nil || *dec.SetWeight != 0 || w.st.Stage != 0 || w.st.Revision != "v3" {
				t.Fatalf("decision %+v state %+v", dec, w.st)
			}
			if !w.hasEvent(ReasonRolloutRestarted) {
				t.Errorf("no RolloutRestarted event")
			}
		},
		"a controller restart mid-stage resumes without skipping or shortening the stage": func(t *testing.T) {
			w := newWorld(t)
			w.release("v2")
			w.tick(time.Second, Pass)
			w.tick(time.Second, Pass)
			w.tick(20*time.Second, Pass)
			// The controller is down for 25 s: no decisions; it restarts with the
			// persisted state only.
			w.now = w.now.Add(25 * time.Second)
			w.tick(time.Second, Pass)
			if w.st.Stage != 0 {
				t.Fatalf("stage skipped after restart")
			}
			w.tick(5*time.Second, Pass)
			if w.st.Stage != 0 {
				t.Fatalf("stage shortened: advanced at %s elapsed", StageElapsed(w.st, w.now))
			}
			w.tick(10*time.Second, Pass)
			if w.st.Stage != 1 {
				t.Fatalf("did not advance after the full minute: %s", w.st.Message)
			}
		},
		"a metrics outage holds the rollout and rolls back after the limit, never promoting": func(t *testing.T) {
			w := newWorld(t, Step{Weight: 50, Duration: 10 * time.Second})
			w.release("v2")
			w.tick(time.Second, Pass)
			w.tick(time.Second, Pass)
			w.tick(10*time.Second, Outage)
			w.tick(10*time.Second, Outage)
			if w.st.Phase != Progressing || w.obs.Weight != 50 {
				t.Fatalf("phase %s weight %d", w.st.Phase, w.obs.Weight)
			}
			w.tick(10*time.Second, Outage)
			if w.st.Phase != RolledBack {
				t.Fatalf("phase %s", w.st.Phase)
			}
			if !strings.Contains(w.st.Message, "metrics unavailable for 3 consecutive intervals") {
				t.Errorf("message %q", w.st.Message)
			}
		},
		"a pass after an outage is needed before the stage can end": func(t *testing.T) {
			w := newWorld(t, Step{Weight: 50, Duration: 10 * time.Second})
			w.release("v2")
			w.tick(time.Second, Pass)
			w.tick(time.Second, Pass)
			w.tick(10*time.Second, Pass)
			if w.st.Phase != Promoting {
				t.Fatalf("phase %s", w.st.Phase)
			}
			w2 := newWorld(t, Step{Weight: 50, Duration: 10 * time.Second}, Step{Weight: 100, Duration: 10 * time.Second})
			w2.release("v2")
			w2.tick(time.Second, Pass)
			w2.tick(time.Second, Pass)
			w2.tick(5*time.Second, "")
			w2.obs.Analysis = nil
			w2.tick(5*time.Second, Outage)
			if w2.st.Stage != 0 {
				t.Fatalf("advanced on an outage")
			}
		},
		"an invalid configuration touches no traffic and the rollout resumes once it is fixed": func(t *testing.T) {
			w := newWorld(t)
			w.release("v2")
			w.tick(time.Second, Pass)
			w.tick(time.Second, Pass)
			w.obs.Invalid = `VirtualService payments/payment-service: spec.http[name="primary"]: route not found`
			dec := w.tick(time.Second, Pass)
			if dec.SetWeight != nil || dec.ScaleCanary != nil || dec.Promote {
				t.Fatalf("an invalid configuration acted: %+v", dec)
			}
			if w.st.Phase != Invalid || len(dec.Events) != 1 || !dec.Events[0].Warning {
				t.Fatalf("state %s events %v", w.st.Phase, dec.Events)
			}
			if dec := w.tick(time.Second, Pass); len(dec.Events) != 0 {
				t.Errorf("the same problem was reported twice")
			}
			w.obs.Invalid = ""
			w.tick(time.Second, Pass)
			if w.st.Phase != Progressing || w.obs.Weight != 1 {
				t.Fatalf("did not resume: %s weight %d", w.st.Phase, w.obs.Weight)
			}
		},
		"a rolled-back revision is retried once the canary template changes again": func(t *testing.T) {
			w := newWorld(t)
			w.release("v2")
			w.tick(time.Second, Pass)
			w.tick(time.Second, Pass)
			w.tick(10*time.Second, Fail)
			w.tick(10*time.Second, Fail)
			w.tick(time.Second, "")
			if w.st.Phase != RolledBack {
				t.Fatalf("phase %s", w.st.Phase)
			}
			w.release("v3")
			w.tick(time.Second, "")
			if w.st.Phase != Progressing || w.st.Revision != "v3" {
				t.Fatalf("new revision did not start: %+v", w.st)
			}
		},
		"weights changed by someone else mid-stage are restored with a warning": func(t *testing.T) {
			w := newWorld(t)
			w.release("v2")
			w.tick(time.Second, Pass)
			w.tick(time.Second, Pass)
			w.obs.Weight = 40
			dec := w.tick(time.Second, "")
			if dec.SetWeight == nil || *dec.SetWeight != 1 || !w.hasEvent(ReasonWeightsRestored) {
				t.Fatalf("decision %+v", dec)
			}
		},
		"commands given when no release is in flight are consumed and change nothing": func(t *testing.T) {
			w := newWorld(t)
			w.obs.Commands = Commands{Rollback: "oops", Promote: true, Pause: true}
			dec := w.tick(time.Second, "")
			if !dec.Consumed.Rollback || !dec.Consumed.Promote || !dec.Consumed.Pause {
				t.Fatalf("consumed %+v", dec.Consumed)
			}
			if dec.SetWeight != nil || dec.ScaleCanary != nil || w.st.Phase != Idle {
				t.Fatalf("decision %+v", dec)
			}
			// A later release is not blocked by them.
			w.release("v2")
			w.tick(time.Second, "")
			w.tick(time.Second, "")
			if w.st.Phase != Progressing || w.obs.Weight != 1 {
				t.Fatalf("release blocked: %s", w.st.Phase)
			}
		},
		"a stable scale change mid-stage rescales the canary without restarting the stage": func(t *testing.T) {
			w := newWorld(t)
			w.release("v2")
			w.runUntil(Progressing, time.Second, Pass, 2)
			for w.obs.Weight != 50 {
				w.tick(5*time.Second, Pass)
			}
			w.tick(0, "") // the stage's weight is seen on the route
			stage := w.st.StageStart
			w.obs.Stable.Replicas = 20
			w.tick(time.Second, "")
			if w.obs.Canary.Replicas != 10 || w.st.StageStart != stage {
				t.Fatalf("canary %d, stage start moved %v", w.obs.Canary.Replicas, w.st.StageStart != stage)
			}
		},
		"an idle opted-in deployment asks for nothing": func(t *testing.T) {
			w := newWorld(t)
			dec := w.tick(time.Hour, "")
			if dec.SetWeight != nil || dec.ScaleCanary != nil || dec.Promote || dec.RequeueAfter != 0 || len(dec.Events) != 0 {
				t.Fatalf("idle decision %+v", dec)
			}
			if due, _ := AnalysisDue(w.st, w.obs.Plan, w.now); due {
				t.Fatalf("analysis due while idle")
			}
		},
		"reverting stable by hand after a promotion does not release the canary again": func(t *testing.T) {
			w := newWorld(t, Step{Weight: 100, Duration: 10 * time.Second})
			w.release("v2")
			w.runUntil(Succeeded, 5*time.Second, Pass, 20)
			w.obs.Stable.Revision = "v1" // kubectl rollout undo deployment/payment-service
			w.tick(time.Minute, Pass)
			if w.st.Phase != Succeeded || w.obs.Weight != 0 {
				t.Fatalf("phase %s weight %d", w.st.Phase, w.obs.Weight)
			}
		},
	}
	for name, fn := range tests {
		t.Run(name, fn)
	}
}

func TestAnalysisWindowsNeverReachBeforeTheStage(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	plan := Plan{Interval: 10 * time.Second, Steps: []Step{{Weight: 10, Duration: 25 * time.Second}}}
	cases := map[string]struct {
		st     State
		now    time.Time
		due    bool
		window time.Duration
	}{
		"not due before one interval into the stage":                          {State{Phase: Progressing, Revision: "v2", StageStart: start}, start.Add(9 * time.Second), false, 0},
		"due with the stage's own traffic only":                               {State{Phase: Progressing, Revision: "v2", StageStart: start}, start.Add(10 * time.Second), true, 10 * time.Second},
		"a late look covers the whole stage so far":                           {State{Phase: Progressing, Revision: "v2", StageStart: start, LastAnalysis: start.Add(10 * time.Second)}, start.Add(35 * time.Second), true, 35 * time.Second},
		"the stage's last look is due at its end":                             {State{Phase: Progressing, Revision: "v2", Stage: 0, StageStart: start, LastAnalysis: start.Add(20 * time.Second)}, start.Add(25 * time.Second), true, 25 * time.Second},
		"after a failed verdict the evidence begins where that verdict ended": {State{Phase: Progressing, Revision: "v2", StageStart: start, LastAnalysis: start.Add(20 * time.Second), EvidenceStart: start.Add(20 * time.Second), Failures: 1}, start.Add(25 * time.Second), true, 5 * time.Second},
		"a hand-edited stage of -1 is never analysed":                         {State{Phase: Progressing, Revision: "v2", Stage: -1, StageStart: start}, start.Add(time.Hour), false, 0},
		"a stage still scaling is not analysed":                               {State{Phase: Progressing}, start.Add(time.Hour), false, 0},
		"a finished release is not analysed":                                  {State{Phase: Succeeded, StageStart: start}, start.Add(time.Hour), false, 0},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			due, w := AnalysisDue(c.st, plan, c.now)
			if due != c.due || w != c.window {
				t.Fatalf("got %v %s, want %v %s", due, w, c.due, c.window)
			}
		})
	}
}

func TestCanaryReplicas(t *testing.T) {
	cases := map[string]struct {
		step   Step
		stable int32
		want   int32
	}{
		"one percent of ten rounds up to one":    {Step{Weight: 1}, 10, 1},
		"ten percent of ten is one":              {Step{Weight: 10}, 10, 1},
		"fifty percent of ten is five":           {Step{Weight: 50}, 10, 5},
		"a full stage matches stable":            {Step{Weight: 100}, 10, 10},
		"a stable of zero still gets one canary": {Step{Weight: 50}, 0, 1},
		"a fixed count in the stage wins":        {Step{Weight: 10, CanaryReplicas: 3}, 10, 3},
		"eleven percent of ten rounds up to two": {Step{Weight: 11}, 10, 2},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if got := CanaryReplicas(c.step, c.stable); got != c.want {
				t.Fatalf("got %d want %d", got, c.want)
			}
		})
	}
}

func dedupe(xs []int) []int {
	var out []int
	for _, x := range xs {
		if len(out) == 0 || out[len(out)-1] != x {
			out = append(out, x)
		}
	}
	return out
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
