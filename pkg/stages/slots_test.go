package stages

import (
	"strings"
	"testing"
	"time"
)

// full is a cap whose every slot is taken by other releases.
var full = Slots{Limit: 2, InFlight: 2}

// queued releases v2 with every slot taken and checks that it waits.
func (w *world) queued(slots Slots) {
	w.t.Helper()
	w.obs.Slots = slots
	w.release("v2")
	w.tick(time.Second, Pass)
	if !Queued(w.st) || w.st.Phase.Active() {
		w.t.Fatalf("release not queued: phase %s, queued at %v: %s", w.st.Phase, w.st.QueuedAt, w.st.Message)
	}
}

// noCanaryTraffic fails when any weight but 0 was written or the canary
// was scaled up.
func (w *world) noCanaryTraffic() {
	w.t.Helper()
	for _, wt := range w.writes {
		if wt != 0 {
			w.t.Fatalf("canary weight %d written for a release that never started (writes %v)", wt, w.writes)
		}
	}
	if w.obs.Weight != 0 || w.obs.Canary.Replicas != 0 {
		w.t.Fatalf("route at canary %d%%, canary at %d replicas: a queued release touched traffic", w.obs.Weight, w.obs.Canary.Replicas)
	}
}

func TestReleaseSlots(t *testing.T) {
	tests := map[string]func(t *testing.T){
		"a queued release keeps weight 0 and an unscaled canary, and says why once": func(t *testing.T) {
			w := newWorld(t)
			w.queued(full)
			for range 20 {
				w.tick(10*time.Second, Pass)
			}
			w.noCanaryTraffic()
			if w.st.Phase != Idle || w.hasEvent(ReasonRolloutStarted) {
				t.Fatalf("phase %s, events %v: a queued release started", w.st.Phase, w.events)
			}
			if n := countReason(w.events, ReasonQueued); n != 1 {
				t.Fatalf("%d Queued Events over 21 decisions, want exactly 1", n)
			}
			want := "waiting for a release slot: 2 of 2 releases in flight (--max-concurrent-releases)"
			if !strings.Contains(w.st.Message, want) || !strings.Contains(w.events[0].Message, want) {
				t.Fatalf("message %q, Event %q; want both to say %q", w.st.Message, w.events[0].Message, want)
			}
			if w.last.RequeueAfter != 0 {
				t.Fatalf("a queued release asked to be woken after %s: the freed slot wakes it, not a timer", w.last.RequeueAfter)
			}
		},
		"an admitted release starts while a slot is free": func(t *testing.T) {
			w := newWorld(t)
			w.obs.Slots = Slots{Limit: 2, InFlight: 1}
			w.release("v2")
			w.tick(time.Second, Pass)
			if w.st.Phase != Progressing || !w.hasEvent(ReasonRolloutStarted) || Queued(w.st) {
				t.Fatalf("phase %s, queued %v: %s", w.st.Phase, Queued(w.st), w.st.Message)
			}
		},
		"no cap at all starts every release": func(t *testing.T) {
			w := newWorld(t)
			w.obs.Slots = Slots{InFlight: 10000}
			w.release("v2")
			w.tick(time.Second, Pass)
			if w.st.Phase != Progressing {
				t.Fatalf("phase %s: %s", w.st.Phase, w.st.Message)
			}
		},
		"a queued release starts from its first stage once a slot frees, and forgets its wait": func(t *testing.T) {
			w := newWorld(t)
			w.queued(full)
			w.obs.Slots = Slots{Limit: 2, InFlight: 1}
			w.runUntil(Succeeded, 5*time.Second, Pass, 400)
			if !w.hasEvent(ReasonRolloutStarted) || !w.st.QueuedAt.IsZero() || w.st.Held != "" {
				t.Fatalf("queued at %v, held %q after the release: its wait was not forgotten", w.st.QueuedAt, w.st.Held)
			}
			if got := dedupe(w.writes); !equalInts(got, []int{1, 10, 50, 100, 0}) {
				t.Fatalf("weights %v, want every stage from the first", got)
			}
		},
		"a release queued behind others waits for them even with a slot free": func(t *testing.T) {
			w := newWorld(t)
			w.queued(Slots{Limit: 2, InFlight: 1, Ahead: 1})
			if !strings.Contains(w.st.Message, "1 of 2 releases in flight (--max-concurrent-releases), 1 queued ahead") {
				t.Fatalf("message %q does not say what it waits for", w.st.Message)
			}
			w.obs.Slots.Ahead = 0 // the one ahead started
			w.tick(time.Second, Pass)
			if w.st.Phase != Progressing {
				t.Fatalf("phase %s once first in line with a free slot: %s", w.st.Phase, w.st.Message)
			}
		},
		"a running release is never held by the cap, even far over it": func(t *testing.T) {
			w := newWorld(t)
			w.atStage(10)
			w.obs.Slots = Slots{Limit: 1, InFlight: 50, Ahead: 10}
			w.runUntil(Succeeded, 5*time.Second, Pass, 400)
			if w.hasEvent(ReasonQueued) {
				t.Fatalf("a release in flight was queued: %v", w.events)
			}
		},
		"a release restarted by a new canary mid-flight keeps its slot": func(t *testing.T) {
			w := newWorld(t)
			w.atStage(10)
			w.obs.Slots = full
			w.release("v3")
			w.tick(time.Second, Pass)
			if w.st.Phase != Progressing || w.st.Revision != "v3" || Queued(w.st) {
				t.Fatalf("phase %s, revision %s, queued %v: %s", w.st.Phase, w.st.Revision, Queued(w.st), w.st.Message)
			}
		},
		"a rollback of a queued release cancels it without touching traffic, and it is not released later": func(t *testing.T) {
			w := newWorld(t)
			w.queued(full)
			w.obs.Commands.Rollback = "bad base image"
			dec := w.tick(time.Second, Pass)
			if w.st.Phase != RolledBack || w.st.Result != ResultManualRollback || w.st.DecidedBy != DecidedByAnnotation || !dec.Consumed.Rollback {
				t.Fatalf("phase %s, result %s, decided by %s, consumed %+v", w.st.Phase, w.st.Result, w.st.DecidedBy, dec.Consumed)
			}
			if !strings.Contains(w.st.Message, "bad base image") || Queued(w.st) || w.st.Finished.IsZero() {
				t.Fatalf("message %q, queued %v, finished %v", w.st.Message, Queued(w.st), w.st.Finished)
			}
			w.obs.Slots = Slots{}
			for range 5 {
				w.tick(time.Second, Pass)
			}
			w.noCanaryTraffic()
			if w.st.Phase != RolledBack || w.hasEvent(ReasonRolloutStarted) {
				t.Fatalf("phase %s: the rolled-back revision was released once a slot freed", w.st.Phase)
			}
		},
		"a retry waits in the queue with its release and is consumed when it starts": func(t *testing.T) {
			w := newWorld(t)
			w.queued(full)
			w.obs.Commands.Rollback = "not now"
			w.tick(time.Second, Pass)
			w.obs.Commands.Retry = true
			dec := w.tick(time.Second, Pass)
			if dec.Consumed.Retry || !Queued(w.st) || w.hasEvent(ReasonCommandIgnored) {
				t.Fatalf("consumed %+v, queued %v, events %v: the retry did not wait for a slot", dec.Consumed, Queued(w.st), w.events)
			}
			w.obs.Slots = Slots{Limit: 2, InFlight: 1}
			dec = w.tick(time.Second, Pass)
			if !dec.Consumed.Retry || w.st.Phase != Progressing || !w.hasEvent(ReasonRetried) {
				t.Fatalf("consumed %+v, phase %s: the retry did not start once a slot freed", dec.Consumed, w.st.Phase)
			}
		},
		"a queued release whose canary returns to stable's template leaves the queue": func(t *testing.T) {
			w := newWorld(t)
			w.queued(full)
			w.release("v1")
			w.tick(time.Second, Pass)
			if Queued(w.st) || w.st.Held != "" || !strings.Contains(w.st.Message, "no longer wanted") {
				t.Fatalf("queued %v, held %q: %s", Queued(w.st), w.st.Held, w.st.Message)
			}
		},
		"a queued release parked by an invalid configuration holds no place in the queue, and queues again once fixed": func(t *testing.T) {
			w := newWorld(t)
			w.queued(full)
			since := w.st.QueuedAt
			w.obs.Invalid = "annotation meshcanary.io/stages: 50,10: weights must increase"
			w.tick(time.Second, Pass)
			if Queued(w.st) || w.st.Phase != Invalid {
				t.Fatalf("phase %s, queued %v", w.st.Phase, Queued(w.st))
			}
			w.obs.Invalid = ""
			w.tick(time.Second, Pass)
			if !Queued(w.st) || !w.st.QueuedAt.Equal(since) {
				t.Fatalf("queued %v at %v, want its place from %v back", Queued(w.st), w.st.QueuedAt, since)
			}
			w.noCanaryTraffic()
		},
		"other commands to a queued release are ignored and removed": func(t *testing.T) {
			w := newWorld(t)
			w.queued(full)
			w.obs.Commands.Promote = true
			dec := w.tick(time.Second, Pass)
			if !dec.Consumed.Promote || !w.hasEvent(ReasonCommandIgnored) || !Queued(w.st) || w.st.Phase.Active() {
				t.Fatalf("consumed %+v, phase %s: a promote reached a release that never started", dec.Consumed, w.st.Phase)
			}
			w.noCanaryTraffic()
		},
	}
	for name, test := range tests {
		t.Run(name, test)
	}
}
