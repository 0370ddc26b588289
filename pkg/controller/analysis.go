package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/meshcanary/meshcanary/pkg/metrics"
	"github.com/meshcanary/meshcanary/pkg/stages"
)

// analysisJob is one due analysis: a rollout's window [from, at].
type analysisJob struct {
	key      string
	from, at time.Time
	t        *target
	st       stages.State
}

// analysisOutcome is what an analysis found over [from, at], kept until
// the rollout's next reconcile takes it.
type analysisOutcome struct {
	from, at time.Time
	analysis stages.Analysis
	res      *metrics.Result
	invalid  string
}

// maxBatch bounds the analyses one batch of queries answers: the joined
// query grows by about 250 bytes per analysis.
const maxBatch = 1000

// analysisPool answers due analyses off the reconcile path: a reconcile
// that finds an analysis due asks for it and goes on deciding without
// it; a bounded set of workers queries Prometheus, each batch under a
// timeout, and each result wakes its rollout through the workqueue. So a
// reconcile never waits for Prometheus, and a rollback is acted on from
// its watch event however slow Prometheus is. A worker takes every
// analysis waiting when it is free and answers them together (one query
// per metric family), so Prometheus's load follows the metrics in use,
// not the number of rollouts.
type analysisPool struct {
	mu       sync.Mutex
	inflight map[string]bool
	done     map[string]analysisOutcome
	jobs     chan analysisJob
	run      func(context.Context, []analysisJob) []analysisOutcome
	wake     func(key string)
	timeout  time.Duration
}

func newAnalysisPool(run func(context.Context, []analysisJob) []analysisOutcome, wake func(string), timeout time.Duration, queue int) *analysisPool {
	return &analysisPool{
		inflight: map[string]bool{}, done: map[string]analysisOutcome{},
		jobs: make(chan analysisJob, queue), run: run, wake: wake, timeout: timeout,
	}
}

// start runs n workers until ctx ends.
func (p *analysisPool) start(ctx context.Context, n int) {
	for range n {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case job := <-p.jobs:
					batch := p.drain(job)
					p.finish(batch, p.runBatch(ctx, batch))
				}
			}
		}()
	}
}

// drain adds to first every job already waiting, up to maxBatch, without
// waiting for more: a lone analysis goes out at once.
func (p *analysisPool) drain(first analysisJob) []analysisJob {
	batch := []analysisJob{first}
	for len(batch) < maxBatch {
		select {
		case job := <-p.jobs:
			batch = append(batch, job)
		default:
			return batch
		}
	}
	return batch
}

// runBatch runs one batch under the timeout; a panic is an Outage of
// every job in it, not of the process.
func (p *analysisPool) runBatch(ctx context.Context, batch []analysisJob) (out []analysisOutcome) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			out = make([]analysisOutcome, len(batch))
			for i, job := range batch {
				out[i] = analysisOutcome{from: job.from, at: job.at,
					analysis: stages.Analysis{Verdict: stages.Outage, Message: fmt.Sprintf("analysis failed: %v", r), At: job.at}}
			}
		}
	}()
	return p.run(ctx, batch)
}

func (p *analysisPool) finish(batch []analysisJob, out []analysisOutcome) {
	p.mu.Lock()
	for i, job := range batch {
		delete(p.inflight, job.key)
		p.done[job.key] = out[i]
	}
	p.mu.Unlock()
	for _, job := range batch {
		p.wake(job.key)
	}
}

// take returns the finished analysis of key's window starting at from,
// if it looked past recorded (the end of the last verdict on record). It
// is kept until a newer analysis is asked for: a reconcile whose record
// failed (a conflict with its own previous write, say) takes it again
// instead of paying for the queries twice. A result for another window
// (the stage moved on meanwhile) or already recorded is not used.
func (p *analysisPool) take(key string, from, recorded time.Time) (analysisOutcome, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out, ok := p.done[key]
	return out, ok && out.from.Equal(from) && out.at.After(recorded)
}

// ask queues job unless an analysis of that rollout is already running.
// A full queue drops it: the rollout asks again at its next wake-up.
func (p *analysisPool) ask(job analysisJob) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inflight[job.key] {
		return
	}
	select {
	case p.jobs <- job:
		p.inflight[job.key] = true
		delete(p.done, job.key)
	default:
	}
}

// forget drops what is kept for a rollout no longer managed.
func (p *analysisPool) forget(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.done, key)
}
