package stages

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// failAt names the first action of a Decision whose write fails. The
// caller records the State first, so every failure after that leaves the
// decision on record and its remaining effects undone.
type failAt int

const (
	failNone failAt = iota
	failPersist
	failWeight
	failScale
	failPromote
)

// tickFailing is tick with one write failing.
func (w *world) tickFailing(d time.Duration, v Verdict, f failAt) Decision {
	w.t.Helper()
	w.now = w.now.Add(d)
	w.obs.Analysis = nil
	w.obs.Rules = nil
	if due, _ := AnalysisDue(w.st, EffectivePlan(w.st, w.obs.Plan), w.now); due && v != "" {
		w.obs.Analysis = &Analysis{Verdict: v, Message: "verdict " + string(v), Confident: v == Pass}
	}
	dec := Decide(w.obs, w.st, w.now)
	w.applyFailing(dec, f)
	if f == failNone {
		w.watchEvent(dec)
	}
	return dec
}

func (w *world) applyFailing(dec Decision, f failAt) {
	w.t.Helper()
	switch f {
	case failPersist:
		return
	case failWeight:
		dec.SetWeight, dec.ScaleCanary, dec.Promote, dec.RestoreStable = nil, nil, false, false
	case failScale:
		dec.ScaleCanary, dec.Promote, dec.RestoreStable = nil, false, false
	case failPromote:
		dec.Promote, dec.RestoreStable = false, false
	}
	w.apply(dec)
}

// rawState puts hand-written JSON in place of the recorded state.
func (w *world) rawState(raw string) {
	w.t.Helper()
	var st State
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		w.t.Fatal(err)
	}
	w.st = st
}

// atStage runs a healthy release of v2 until its weight is at least pct.
func (w *world) atStage(pct int) {
	w.t.Helper()
	w.release("v2")
	for i := 0; i < 400 && w.obs.Weight < pct; i++ {
		w.tick(5*time.Second, Pass)
	}
	if w.obs.Weight < pct {
		w.t.Fatalf("weight %d never reached %d (%s)", w.obs.Weight, pct, w.st.Message)
	}
}

func TestHumanActionsAndLostState(t *testing.T) {
	tests := map[string]func(t *testing.T){
		"a hand-edited stage of -1 neither panics nor trusts the weight: traffic returns to stable and the release starts again": func(t *testing.T) {
			w := newWorld(t)
			w.atStage(50)
			w.rawState(`{"phase":"Progressing","revision":"v2","stage":-1,"weight":50}`)
			dec := w.tick(time.Second, "")
			if dec.SetWeight == nil || *dec.SetWeight != 0 || !w.hasEvent(ReasonStateLost) {
				t.Fatalf("decision %+v", dec)
			}
			if dec.ScaleCanary != nil {
				t.Fatalf("canary resized to %d while the route still sent it traffic", *dec.ScaleCanary)
			}
			if w.st.Phase != Progressing || w.st.Stage != 0 || w.st.Revision != "v2" {
				t.Fatalf("state %+v", w.st)
			}
		},
		"a release restarted from a lost state at its first stage moves all traffic to stable before the stage starts again": func(t *testing.T) {
			w := newWorld(t)
			w.atStage(1)
			w.st = State{}
			w.obs.StateLost = "CanaryRelease deleted"
			dec := w.tick(time.Second, "")
			w.obs.StateLost = ""
			if dec.SetWeight == nil || *dec.SetWeight != 0 {
				t.Fatalf("decision %+v", dec)
			}
			w.runUntil(Progressing, time.Second, "", 1)
			for i := 0; i < 3; i++ {
				w.tick(time.Second, "")
			}
			if got := w.writes[len(w.writes)-2:]; !equalInts(got, []int{0, 1}) {
				t.Fatalf("weights %v", w.writes)
			}
		},
		"a release restarted from a lost state at 50% shrinks the canary only after its traffic is gone": func(t *testing.T) {
			w := newWorld(t)
			w.atStage(50)
			if w.obs.Canary.Replicas != 5 {
				t.Fatalf("canary replicas %d at 50%%", w.obs.Canary.Replicas)
			}
			w.st = State{}
			w.obs.StateLost = "annotation is not valid JSON"
			dec := w.tickFailing(time.Second, "", failWeight)
			w.obs.StateLost = ""
			if dec.ScaleCanary != nil || w.obs.Weight != 50 {
				t.Fatalf("decision %+v with the route at %d", dec, w.obs.Weight)
			}
			dec = w.tick(time.Second, "") // the unfinished weight write is finished first
			if dec.SetWeight == nil || *dec.SetWeight != 0 || dec.ScaleCanary != nil {
				t.Fatalf("decision %+v", dec)
			}
			// Its watch event shows the route at 0: only then is the canary shrunk.
			if w.obs.Canary.Replicas != 1 || w.obs.Weight > 1 {
				t.Fatalf("canary %d replicas with the route at %d", w.obs.Canary.Replicas, w.obs.Weight)
			}
		},
		"a rollback whose weight write fails is finished by the next decision and never restored to the canary": func(t *testing.T) {
			w := newWorld(t)
			w.atStage(10)
			w.obs.Commands.Rollback = "bad build"
			w.tickFailing(time.Second, "", failWeight)
			if w.st.Phase != RolledBack || w.obs.Weight != 10 {
				t.Fatalf("phase %s, route %d", w.st.Phase, w.obs.Weight)
			}
			dec := w.tick(time.Second, Fail)
			if dec.SetWeight == nil || *dec.SetWeight != 0 {
				t.Fatalf("decision %+v", dec)
			}
			if w.hasEvent(ReasonWeightsRestored) {
				t.Fatalf("finishing our own rollback was reported as someone else's edit: %v", w.events)
			}
		},
		"a promotion whose template write fails is retried and never recorded as a rollback": func(t *testing.T) {
			w := newWorld(t)
			w.atStage(10)
			w.obs.Commands.Promote = true
			w.tickFailing(time.Second, "", failPromote)
			if w.st.Phase != Promoting {
				t.Fatalf("phase %s", w.st.Phase)
			}
			dec := w.tick(time.Second, "")
			if !dec.Promote {
				t.Fatalf("promotion not retried: %+v", dec)
			}
			w.runUntil(Succeeded, time.Second, "", 10)
			if w.st.Result != ResultManualPromoted {
				t.Fatalf("result %s", w.st.Result)
			}
		},
		"a plan that shrinks mid-release does not promote early: the release keeps its pinned stages": func(t *testing.T) {
			w := newWorld(t)
			w.atStage(10)
			w.obs.Plan.Steps = []Step{{Weight: 100, Duration: time.Minute}}
			w.tick(time.Second, Pass)
			if w.st.Phase == Promoting || w.st.Phase == Succeeded || !w.hasEvent(ReasonPlanChanged) {
				t.Fatalf("phase %s, events %v", w.st.Phase, w.events)
			}
			w.runUntil(Succeeded, 5*time.Second, Pass, 400)
			if got := dedupe(w.writes); !equalInts(got, []int{1, 10, 50, 100, 0}) {
				t.Fatalf("weights %v", got)
			}
		},
		"stable's template changed during a release aborts it in one weight write and starts nothing": func(t *testing.T) {
			w := newWorld(t)
			w.atStage(50)
			w.obs.Stable.Revision = "v0" // kubectl rollout undo deployment/<stable>
			dec := w.tick(time.Second, "")
			if w.st.Phase != RolledBack || w.st.Result != ResultAborted || w.st.DecidedBy != DecidedByStableChanged {
				t.Fatalf("state %+v", w.st)
			}
			if dec.SetWeight == nil || *dec.SetWeight != 0 || dec.ScaleCanary != nil || dec.Promote {
				t.Fatalf("decision %+v", dec)
			}
			for i := 0; i < 20; i++ {
				if d := w.tick(10*time.Second, Pass); d.Promote || (d.SetWeight != nil && *d.SetWeight > 0) {
					t.Fatalf("after the abort: %+v", d)
				}
			}
			if w.obs.Canary.Replicas != 0 || w.obs.Stable.Revision != "v0" {
				t.Fatalf("canary %d replicas, stable %s", w.obs.Canary.Replicas, w.obs.Stable.Revision)
			}
		},
		"an undo of stable during promotion stops it: traffic to stable and nothing written back": func(t *testing.T) {
			w := newWorld(t)
			w.atStage(10)
			w.obs.Commands.Promote = true
			w.tick(time.Second, "") // Promoting; stable gets v2
			w.obs.Stable.Settled, w.obs.Stable.Available = false, 10
			w.st.PromoteStart = w.now
			w.tick(time.Second, "") // stable seen running v2
			if !w.st.StableUpdated {
				t.Fatalf("state %+v", w.st)
			}
			w.obs.Stable.Revision = "v1" // kubectl rollout undo deployment/<stable>
			dec := w.tick(time.Second, "")
			if dec.Promote || w.st.Phase != RolledBack || w.st.DecidedBy != DecidedByStableChanged || w.obs.Weight != 0 {
				t.Fatalf("decision %+v state %+v", dec, w.st)
			}
		},
		"a rollback during promotion puts stable's template back, retried until it lands": func(t *testing.T) {
			w := newWorld(t)
			w.atStage(10)
			w.obs.Commands.Promote = true
			w.tick(time.Second, "") // Promoting; stable gets v2
			w.obs.Stable.Settled = false
			w.tick(time.Second, "")
			w.obs.Commands.Rollback = "v2 is broken after all"
			dec := w.tickFailing(time.Second, "", failPromote) // the restore write fails
			if !dec.RestoreStable || w.st.Phase != RolledBack || w.obs.Weight != 0 || w.obs.Stable.Revision != "v2" {
				t.Fatalf("decision %+v, stable %s", dec, w.obs.Stable.Revision)
			}
			if dec = w.tick(time.Second, ""); !dec.RestoreStable || w.obs.Stable.Revision != "v1" {
				t.Fatalf("restore not retried: %+v, stable %s", dec, w.obs.Stable.Revision)
			}
			w.tick(time.Second, "")
			if w.st.RestoreStable || w.hasEvent(ReasonStableChanged) || w.st.StableRevision != "v1" {
				t.Fatalf("state %+v", w.st)
			}
		},
		"a person writing all traffic to stable is a manual rollback; any other weight is restored": func(t *testing.T) {
			w := newWorld(t)
			w.atStage(10)
			w.tick(time.Second, "")
			w.obs.Weight = 30
			if dec := w.tick(time.Second, ""); dec.SetWeight == nil || *dec.SetWeight != 10 || !w.hasEvent(ReasonWeightsRestored) {
				t.Fatalf("decision %+v", dec)
			}
			w.obs.Weight = 0
			w.tick(time.Second, "")
			if w.st.Phase != RolledBack || w.st.Result != ResultManualRollback || w.st.DecidedBy != DecidedByVirtualServiceEdit {
				t.Fatalf("state %+v", w.st)
			}
		},
		"a rollback is acted on while the configuration is invalid, as long as the route resolves": func(t *testing.T) {
			w := newWorld(t)
			w.atStage(10)
			w.obs.Invalid = "annotation meshcanary.io/stage-duration: expected a duration"
			w.obs.RouteResolved = true
			w.tick(time.Second, "")
			w.obs.Commands.Rollback = "now"
			dec := w.tick(time.Second, "")
			if dec.SetWeight == nil || *dec.SetWeight != 0 || !dec.Consumed.Rollback {
				t.Fatalf("decision %+v", dec)
			}
			if w.st.Phase != Invalid || w.st.Interrupted != RolledBack {
				t.Fatalf("state %+v", w.st)
			}
			w.obs.Invalid = ""
			for i := 0; i < 5; i++ {
				if d := w.tick(10*time.Second, Pass); d.SetWeight != nil && *d.SetWeight > 0 {
					t.Fatalf("traffic back to a rolled-back canary: %+v", d)
				}
			}
		},
		"an invalid configuration whose route does not resolve keeps the rollback for later and touches nothing": func(t *testing.T) {
			w := newWorld(t)
			w.atStage(10)
			w.obs.Invalid = "VirtualService not found"
			w.obs.Commands.Rollback = "now"
			dec := w.tick(time.Second, "")
			if dec.SetWeight != nil || dec.Consumed.Rollback || w.st.Phase != Invalid {
				t.Fatalf("decision %+v", dec)
			}
		},
		"a stage waiting for evidence past its duration is woken once per interval, not in a loop": func(t *testing.T) {
			w := newWorld(t)
			w.atStage(1)
			decisions := 0
			for end := w.now.Add(time.Hour); w.now.Before(end) && decisions <= 3600; decisions++ {
				dec := w.tick(0, Inconclusive)
				if dec.RequeueAfter <= 0 {
					t.Fatalf("a waiting stage asked for no wake-up: %+v", dec)
				}
				w.now = w.now.Add(dec.RequeueAfter)
			}
			if decisions > 3600/10+10 {
				t.Fatalf("%d decisions in an hour with a 10s interval", decisions)
			}
		},
		"a stage's traffic up to its end is judged before it advances": func(t *testing.T) {
			w := newWorld(t, Step{Weight: 10, Duration: 25 * time.Second}, Step{Weight: 100, Duration: 25 * time.Second})
			w.release("v2")
			w.tick(time.Second, Pass)
			w.tick(time.Second, Pass)
			start := w.st.StageStart
			var windows [][2]time.Time
			for i := 0; i < 100 && w.st.Stage == 0 && w.st.Phase == Progressing; i++ {
				dec := w.tick(0, "")
				w.now = w.now.Add(max(dec.RequeueAfter, time.Millisecond))
				if due, win := AnalysisDue(w.st, w.obs.Plan, w.now); due {
					windows = append(windows, [2]time.Time{w.now.Add(-win), w.now})
				}
				w.tick(0, Pass)
			}
			if len(windows) == 0 {
				t.Fatalf("no analysis in stage started %s", start)
			}
			// Every look judges the stage's traffic from its start, and
			// the looks follow each other by at most an interval, so no
			// traffic goes unjudged and none before the stage counts.
			for i, win := range windows {
				if !win[0].Equal(start) {
					t.Fatalf("window %v does not begin at the stage's start %s", win, start)
				}
				if i > 0 && (!win[1].After(windows[i-1][1]) || win[1].Sub(windows[i-1][1]) > 10*time.Second) {
					t.Fatalf("looks at %s and then %s: a gap or a repeat", windows[i-1][1], win[1])
				}
			}
			end := start.Add(25 * time.Second)
			if last := windows[len(windows)-1][1]; last.Before(end) {
				t.Fatalf("stage advanced with its traffic judged only until %s (ends %s)", last, end)
			}
			// The last window is cut at the stage's end, so judging it does
			// not hold the stage up by most of an interval either.
			if w.st.Stage != 1 || w.now.After(end.Add(time.Second)) {
				t.Fatalf("stage %d at %s, stage ended %s", w.st.Stage, w.now, end)
			}
		},
		"an undo of stable after a promotion is recorded as reverted, pages nobody and starts no release": func(t *testing.T) {
			w := newWorld(t)
			w.release("v2")
			w.runUntil(Succeeded, 5*time.Second, Pass, 400)
			w.tick(time.Second, "")
			w.events = nil
			w.obs.Stable.Revision = "v1"     // kubectl rollout undo deployment/<stable>
			w.obs.Commands.Approve = "alice" // restored from the old ReplicaSet
			dec := w.tick(time.Second, "")
			if dec.Reverted != "v1" || !dec.Consumed.Approve || !w.hasEvent(ReasonStableChanged) {
				t.Fatalf("decision %+v", dec)
			}
			for _, e := range w.events {
				if e.Page || e.Reason == ReasonRolledBack {
					t.Fatalf("event %+v after a person's undo", e)
				}
			}
			for i := 0; i < 10; i++ {
				if d := w.tick(10*time.Second, Pass); d.SetWeight != nil || d.ScaleCanary != nil || w.st.Phase != Succeeded {
					t.Fatalf("after the revert: %+v, phase %s", d, w.st.Phase)
				}
			}
			w.release("v3") // a new canary template is a new release
			w.tick(time.Second, "")
			if w.st.Phase != Progressing || w.st.Approved {
				t.Fatalf("state %+v", w.st)
			}
		},
		"an undo of stable after a rollback does not release the rejected revision again": func(t *testing.T) {
			w := newWorld(t)
			w.atStage(10)
			w.obs.Commands.Rollback = "bad"
			w.tick(time.Second, "")
			w.tick(time.Second, "")
			w.obs.Stable.Revision = "v0"
			w.obs.Commands.Rollback = "bad" // restored from the old ReplicaSet
			for i := 0; i < 10; i++ {
				if d := w.tick(10*time.Second, Pass); d.SetWeight != nil && *d.SetWeight > 0 {
					t.Fatalf("rejected revision released again: %+v", d)
				}
			}
			if w.st.Phase != RolledBack || w.obs.Commands.Rollback != "" {
				t.Fatalf("state %+v, commands %+v", w.st, w.obs.Commands)
			}
		},
		"a rollback seen again after its removal failed is not reported as ignored": func(t *testing.T) {
			w := newWorld(t)
			w.atStage(10)
			w.obs.Commands.Rollback = "bad"
			dec := Decide(w.obs, w.st, w.now)
			w.st = dec.State // recorded, but the annotation stayed
			w.events = nil
			dec = w.tick(time.Second, "")
			if !dec.Consumed.Rollback || w.hasEvent(ReasonCommandIgnored) {
				t.Fatalf("decision %+v", dec)
			}
		},
		"meshcanary.io/retry releases a rolled-back revision again from stage 1; given mid-release it is ignored": func(t *testing.T) {
			w := newWorld(t)
			w.atStage(10)
			w.obs.Commands.Retry = true
			if dec := w.tick(time.Second, ""); !dec.Consumed.Retry || !w.hasEvent(ReasonCommandIgnored) || w.st.Stage != 1 {
				t.Fatalf("decision %+v state %+v", dec, w.st)
			}
			w.obs.Commands.Rollback = "bad"
			w.tick(time.Second, "")
			w.runUntil(RolledBack, time.Second, "", 3)
			for i := 0; i < 3; i++ {
				w.tick(time.Second, "")
			}
			w.writes = nil
			w.obs.Commands.Retry = true
			w.tick(time.Second, "")
			if w.st.Phase != Progressing || w.st.Stage != 0 || w.st.Revision != "v2" || !w.hasEvent(ReasonRetried) {
				t.Fatalf("state %+v", w.st)
			}
			w.runUntil(Succeeded, 5*time.Second, Pass, 400)
			if got := dedupe(w.writes); !equalInts(got, []int{1, 10, 50, 100, 0}) {
				t.Fatalf("weights %v", got)
			}
		},
		"a 100 KB invalid value is never echoed whole into the state or an Event": func(t *testing.T) {
			w := newWorld(t)
			w.obs.Invalid = "annotation meshcanary.io/stages: " + strings.Repeat("9", 100_000)
			w.tick(time.Second, "")
			if len(w.st.Message) > MaxMessage {
				t.Fatalf("message of %d bytes", len(w.st.Message))
			}
			for _, e := range w.events {
				if len(e.Message) > MaxMessage {
					t.Fatalf("event message of %d bytes", len(e.Message))
				}
			}
		},
	}
	for name, tc := range tests {
		t.Run(name, tc)
	}
}
