package controller

import (
	"context"
	"testing"
	"time"

	"github.com/meshcanary/meshcanary/pkg/stages"
)

// poolRig is an analysis pool whose analyses report each run and can be
// held until the test lets them finish.
type poolRig struct {
	p     *analysisPool
	runs  chan []analysisJob
	woken chan string
	hold  chan struct{}
}

func newPoolRig(t *testing.T, hold bool) *poolRig {
	t.Helper()
	r := &poolRig{runs: make(chan []analysisJob, 4), woken: make(chan string, 8)}
	if hold {
		r.hold = make(chan struct{})
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r.p = newAnalysisPool(func(_ context.Context, jobs []analysisJob) []analysisOutcome {
		r.runs <- jobs
		if r.hold != nil {
			<-r.hold
		}
		out := make([]analysisOutcome, len(jobs))
		for i, j := range jobs {
			if j.key == "ns/panics" {
				panic("boom")
			}
			out[i] = analysisOutcome{from: j.from, at: j.at, analysis: stages.Analysis{Verdict: stages.Pass, At: j.at}}
		}
		return out
	}, func(k string) { r.woken <- k }, time.Second, 8)
	r.p.start(ctx, 1)
	return r
}

func TestAnalysisPool(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	job := analysisJob{key: "ns/app", from: t0, at: t0.Add(10 * time.Second)}
	tests := map[string]struct {
		hold bool
		run  func(t *testing.T, r *poolRig)
	}{
		"a result is taken for the window it was asked for, ending when it was asked for, until it is recorded": {run: func(t *testing.T, r *poolRig) {
			r.p.ask(job)
			<-r.runs
			if got := <-r.woken; got != job.key {
				t.Fatalf("woke %q", got)
			}
			out, ok := r.p.take(job.key, job.from, t0)
			if !ok || out.analysis.Verdict != stages.Pass || !out.analysis.At.Equal(job.at) {
				t.Fatalf("took %+v, %v", out, ok)
			}
			if _, again := r.p.take(job.key, job.from, t0); !again {
				t.Fatal("a result whose record failed could not be taken again")
			}
			if _, again := r.p.take(job.key, job.from, job.at); again {
				t.Fatal("a result already recorded was taken again")
			}
		}},
		"a result for a window that moved on is dropped": {run: func(t *testing.T, r *poolRig) {
			r.p.ask(job)
			<-r.woken
			if _, ok := r.p.take(job.key, job.from.Add(time.Second), t0); ok {
				t.Fatal("a stale result was used")
			}
		}},
		"a rollout with an analysis in flight is not asked twice": {hold: true, run: func(t *testing.T, r *poolRig) {
			r.p.ask(job)
			<-r.runs
			r.p.ask(job)
			close(r.hold)
			<-r.woken
			if n := len(r.runs); n != 0 {
				t.Fatalf("%d more runs of an analysis already in flight", n)
			}
		}},
		"analyses that wait while a batch runs are answered together in the next": {hold: true, run: func(t *testing.T, r *poolRig) {
			r.p.ask(job)
			<-r.runs
			for _, k := range []string{"ns/b", "ns/c"} {
				r.p.ask(analysisJob{key: k, from: t0, at: job.at})
			}
			close(r.hold)
			if next := <-r.runs; len(next) != 2 {
				t.Fatalf("next batch held %d analyses, want both that waited", len(next))
			}
			for range 3 {
				<-r.woken
			}
		}},
		"a panic in a batch is an outage of each of its analyses, and the pool goes on": {hold: true, run: func(t *testing.T, r *poolRig) {
			r.p.ask(job)
			<-r.runs
			r.p.ask(analysisJob{key: "ns/panics", from: t0, at: job.at})
			r.p.ask(analysisJob{key: "ns/b", from: t0, at: job.at})
			close(r.hold)
			<-r.runs
			for range 3 {
				<-r.woken
			}
			out, ok := r.p.take("ns/b", t0, t0)
			if !ok || out.analysis.Verdict != stages.Outage {
				t.Fatalf("the panicking batch's other analysis: %+v, %v; want an outage", out, ok)
			}
			r.p.ask(analysisJob{key: "ns/d", from: t0, at: job.at})
			<-r.runs
			if got := <-r.woken; got != "ns/d" {
				t.Fatalf("woke %q after the panic", got)
			}
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) { tc.run(t, newPoolRig(t, tc.hold)) })
	}
}
