package controller

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshcanary/meshcanary/pkg/release"
	"github.com/meshcanary/meshcanary/pkg/stages"
)

// admissionRig is a controller reduced to its release slots, with the
// rollouts the slots woke.
type admissionRig struct {
	c   *Controller
	m   *Metrics
	now time.Time

	mu    sync.Mutex
	woken []string
}

func newAdmissionRig(limit int) *admissionRig {
	r := &admissionRig{m: NewMetrics(prometheus.NewRegistry()), now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	r.c = &Controller{admit: newAdmission(limit, r.wake, r.m)}
	return r
}

func (r *admissionRig) wake(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.woken = append(r.woken, key)
}

// takeWoken returns the rollouts woken since the last call.
func (r *admissionRig) takeWoken() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.woken
	r.woken = nil
	return w
}

// wanted is what gather observes of a rollout whose canary runs a new
// revision, ready to release.
func wanted() stages.Observation {
	return stages.Observation{
		Plan:   stages.Plan{Steps: []stages.Step{{Weight: 10, Duration: time.Minute}}, Interval: 10 * time.Second},
		Stable: stages.Workload{Revision: "v1", Replicas: 2, Available: 2, Settled: true},
		Canary: stages.Workload{Revision: "v2", Settled: true},
	}
}

// idle is the recorded state of a rollout between releases.
func idle() stages.State { return stages.State{Phase: stages.Idle, StableRevision: "v1"} }

// ask decides for key from st with a release wanted, as a reconcile does.
func (r *admissionRig) ask(key string, st stages.State) stages.State {
	r.now = r.now.Add(time.Second)
	return r.c.decide(key, wanted(), st, r.now).State
}

// end finishes key's release: its decision leaves it promoted.
func (r *admissionRig) end(key string, st stages.State) {
	done := st
	done.Phase, done.Finished = stages.Succeeded, r.now
	if !r.c.admit.commit(key, st, done) {
		panic("an ending release was refused")
	}
}

func (r *admissionRig) gauges() (inFlight, queued float64) {
	value := func(g prometheus.Gauge) float64 {
		var m dto.Metric
		if err := g.Write(&m); err != nil {
			panic(err)
		}
		return m.GetGauge().GetValue()
	}
	return value(r.m.ReleasesInFlight), value(r.m.ReleasesQueued)
}

func TestReleaseAdmission(t *testing.T) {
	tests := map[string]func(t *testing.T){
		"many workers at once never take more slots than the cap": func(t *testing.T) {
			const limit, workers = 3, 64
			r := newAdmissionRig(limit)
			var wg sync.WaitGroup
			start := make(chan struct{})
			started := make([]bool, workers)
			for i := range workers {
				wg.Go(func() {
					<-start
					st := r.c.decide(fmt.Sprintf("apps/svc-%d", i), wanted(), idle(), r.now)
					started[i] = stages.InFlight(st.State)
				})
			}
			close(start)
			wg.Wait()
			n := 0
			for _, s := range started {
				if s {
					n++
				}
			}
			if inFlight, queued := r.gauges(); n != limit || inFlight != limit || queued != workers-limit {
				t.Fatalf("%d releases started (gauges: %v in flight, %v queued), want exactly %d started and %d queued", n, inFlight, queued, limit, workers-limit)
			}
		},
		"of two workers that both counted the last slot free, the second to take it is refused and queues": func(t *testing.T) {
			r := newAdmissionRig(1)
			a := r.c.admit
			// Both workers count before either decision is committed.
			sa, sb := a.slots("apps/a"), a.slots("apps/b")
			obsA, obsB := wanted(), wanted()
			obsA.Slots, obsB.Slots = sa, sb
			decA, decB := stages.Decide(obsA, idle(), r.now), stages.Decide(obsB, idle(), r.now)
			if !stages.InFlight(decA.State) || !stages.InFlight(decB.State) {
				t.Fatalf("setup: both decisions should start on a free count (%s, %s)", decA.State.Phase, decB.State.Phase)
			}
			if !a.commit("apps/a", idle(), decA.State) {
				t.Fatal("the first worker's slot was refused")
			}
			if a.commit("apps/b", idle(), decB.State) {
				t.Fatal("the second worker took the same last slot: two releases in flight with a cap of 1")
			}
			if st := r.ask("apps/b", idle()); !stages.Queued(st) {
				t.Fatalf("decided again, b is %s: %s", st.Phase, st.Message)
			}
		},
		"a release in flight on record is admitted over the cap": func(t *testing.T) {
			r := newAdmissionRig(1)
			a := r.ask("apps/a", idle())
			running := stages.State{Phase: stages.Progressing, Revision: "v2", StableRevision: "v1", Stage: 0, Steps: wanted().Plan.Steps}
			b := r.ask("apps/b", running)
			if !stages.InFlight(a) || !stages.InFlight(b) {
				t.Fatalf("a %s, b %s: a running release was stopped by the cap", a.Phase, b.Phase)
			}
			if inFlight, _ := r.gauges(); inFlight != 2 {
				t.Fatalf("%v in flight, want both counted", inFlight)
			}
		},
		"a freed slot wakes the release first in line, and it starts; the next keeps waiting": func(t *testing.T) {
			r := newAdmissionRig(1)
			a := r.ask("apps/a", idle())
			b := r.ask("apps/b", idle())
			c := r.ask("apps/c", idle())
			if !stages.Queued(b) || !stages.Queued(c) {
				t.Fatalf("b %v, c %v: want both queued behind a", stages.Queued(b), stages.Queued(c))
			}
			if w := r.takeWoken(); len(w) != 0 {
				t.Fatalf("woken %v before any slot freed", w)
			}
			// c happens to reconcile first after a's end: it is not first
			// in line and must not take b's slot.
			r.end("apps/a", a)
			if w := r.takeWoken(); !slices.Equal(w, []string{"apps/b"}) {
				t.Fatalf("woken %v, want only apps/b", w)
			}
			if c = r.ask("apps/c", c); !stages.Queued(c) {
				t.Fatalf("c %s: jumped the queue", c.Phase)
			}
			if b = r.ask("apps/b", b); !stages.InFlight(b) {
				t.Fatalf("b %s after its wake-up: %s", b.Phase, b.Message)
			}
			if inFlight, queued := r.gauges(); inFlight != 1 || queued != 1 {
				t.Fatalf("gauges %v in flight, %v queued; want 1 and 1", inFlight, queued)
			}
		},
		"a queued rollout that is deleted gives its place to the next": func(t *testing.T) {
			r := newAdmissionRig(1)
			a := r.ask("apps/a", idle())
			r.ask("apps/b", idle())
			c := r.ask("apps/c", idle())
			r.c.forgetRelease("apps/b")
			r.end("apps/a", a)
			if w := r.takeWoken(); !slices.Equal(w, []string{"apps/c"}) {
				t.Fatalf("woken %v, want apps/c", w)
			}
			if c = r.ask("apps/c", c); !stages.InFlight(c) {
				t.Fatalf("c %s: %s", c.Phase, c.Message)
			}
		},
		"a queue decided on a count that freed meanwhile is decided again, and starts": func(t *testing.T) {
			r := newAdmissionRig(1)
			queued := idle()
			queued.QueuedAt = r.now
			if r.c.admit.commit("apps/a", idle(), queued) {
				t.Fatal("a release was queued while a slot was free: nothing would ever wake it")
			}
			if st := r.ask("apps/a", idle()); !stages.InFlight(st) {
				t.Fatalf("phase %s with a free slot", st.Phase)
			}
		},
		"no cap starts everything and still counts what is in flight": func(t *testing.T) {
			r := newAdmissionRig(0)
			for i := range 5 {
				if st := r.ask(fmt.Sprintf("apps/svc-%d", i), idle()); !stages.InFlight(st) {
					t.Fatalf("release %d: phase %s", i, st.Phase)
				}
			}
			if inFlight, queued := r.gauges(); inFlight != 5 || queued != 0 {
				t.Fatalf("gauges %v in flight, %v queued", inFlight, queued)
			}
		},
		"a restart rebuilds the slots and the line from the recorded states": func(t *testing.T) {
			r := newAdmissionRig(2)
			t0 := r.now
			objs := []any{
				canaryRelease(t, "apps", "running", stages.State{Phase: stages.Paused, Revision: "v2"}),
				canaryRelease(t, "apps", "second", stages.State{Phase: stages.Succeeded, QueuedAt: t0.Add(time.Minute)}),
				canaryRelease(t, "apps", "first", stages.State{Phase: stages.Idle, QueuedAt: t0}),
				canaryRelease(t, "apps", "invalid", stages.State{Phase: stages.Invalid, Interrupted: stages.Progressing, Revision: "v3"}),
				canaryRelease(t, "apps", "done", stages.State{Phase: stages.RolledBack}),
				canaryRelease(t, "apps", "other-shard", stages.State{Phase: stages.Progressing, Revision: "v4"}),
			}
			r.c.admit.rebuild(objs, func(key string) bool { return key != "apps/other-shard" })
			if s := r.c.admit.slots("apps/new"); s != (stages.Slots{Limit: 2, InFlight: 2, Ahead: 2}) {
				t.Fatalf("slots for a new release %+v, want 2 in flight (paused and invalid; not another shard's) and 2 queued ahead", s)
			}
			if s := r.c.admit.slots("apps/first"); s.Ahead != 0 {
				t.Fatalf("the release queued first has %d ahead of it", s.Ahead)
			}
			if s := r.c.admit.slots("apps/second"); s.Ahead != 1 {
				t.Fatalf("the release queued second has %d ahead of it", s.Ahead)
			}
		},
	}
	for name, test := range tests {
		t.Run(name, test)
	}
}

// canaryRelease is a CanaryRelease as the informer holds it, recording st.
func canaryRelease(t *testing.T, ns, name string, st stages.State) any {
	t.Helper()
	cr := release.NewForDeployment(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
	raw, err := release.EncodeJSON(st)
	if err != nil {
		t.Fatal(err)
	}
	cr.Status.State = raw
	u, err := release.ToUnstructured(cr)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
