package gates

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"k8s.io/utils/clock"
)

// Options tune a Runner. Zero values take the defaults.
type Options struct {
	// HTTPClient sends the requests; nil means a client of the package's
	// own, never http.DefaultClient. Whatever client is given, redirects
	// are not followed: the Runner uses a copy with its own CheckRedirect.
	HTTPClient *http.Client
	// MaxConcurrent bounds the runs in flight at once. Default 8.
	MaxConcurrent int
	// Done is called, from a worker and without any lock held, each time
	// a run gets its result, with the run's Request.Rollout, so the shell
	// can enqueue the rollout. It must not block (a workqueue Add is the
	// intended use). nil calls nothing.
	Done func(rolloutKey string)
	// Metrics registers the runner's metrics; nil registers nothing.
	Metrics prometheus.Registerer
	// Log receives run outcomes; the zero Logger discards.
	Log zerolog.Logger
	// Clock times the backoff between attempts and stamps
	// Result.Finished; nil is the real clock. The per-attempt timeout is
	// a context deadline and runs on real time.
	Clock clock.Clock
	// InitialBackoff is the wait after the first failed attempt; it
	// doubles per attempt up to MaxBackoff. Defaults 1s and 30s.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
}

func (o Options) withDefaults() Options {
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = 8
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.InitialBackoff <= 0 {
		o.InitialBackoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	o.MaxBackoff = max(o.MaxBackoff, o.InitialBackoff)
	return o
}

// Runner runs webhook gates in the background for the controller's shell.
// Ensure is what a reconcile calls: it starts a run or reports on it and
// never waits for the network. A fixed pool of workers started by Run
// does the HTTP; each finished run calls Options.Done so the rollout is
// reconciled again through the controller's one workqueue.
type Runner struct {
	opts    Options
	client  *http.Client
	log     zerolog.Logger
	metrics *runMetrics
	running atomic.Bool

	mu sync.Mutex
	// cond wakes idle workers when a run is queued or Run's ctx ends.
	cond *sync.Cond
	// runs holds every run by Key until Forget drops it: queued, in flight
	// and finished. A finished result must stay, or the next reconcile's
	// Ensure would run the gate again.
	runs map[string]*run
	// queue is the FIFO of runs waiting for a worker. It is unbounded on
	// purpose: a gate must never fail because the controller is busy; the
	// backlog is bounded by the number of live rollouts' gates anyway.
	queue []*run
}

// run is one Request and what is known about it. Fields other than req
// are guarded by Runner.mu.
type run struct {
	req    Request
	result Result
	// cancel aborts the run while a worker has it; nil while queued.
	cancel context.CancelFunc
}

// NewRunner returns a Runner and registers its metrics (registering twice
// on one registry panics, as for the controller's metrics). Nothing is
// sent until Run.
func NewRunner(opts Options) *Runner {
	opts = opts.withDefaults()
	var client http.Client
	if opts.HTTPClient != nil {
		client = *opts.HTTPClient
	}
	// A redirect would carry the request, and one day its headers, to a
	// host nobody configured; the 3xx is reported instead.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	r := &Runner{
		opts:    opts,
		client:  &client,
		log:     opts.Log.With().Str("component", "gates").Logger(),
		metrics: newRunMetrics(opts.Metrics),
		runs:    make(map[string]*run),
	}
	r.cond = sync.NewCond(&r.mu)
	return r
}

// Ensure starts the run req.Key names if it was never started (or was
// forgotten) and returns its current Result: Running while queued or in
// flight, then Passed or Failed for as long as the Key is remembered. A
// Key already known returns its Result whatever else req says. Ensure
// only takes a mutex that no one holds across network I/O, so it never
// blocks a reconcile worker.
func (r *Runner) Ensure(req Request) Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ru, ok := r.runs[req.Key]; ok {
		return ru.result
	}
	req.Body.Version = BodyVersion
	if req.Body.Images == nil {
		req.Body.Images = []string{} // receivers need not tell null from empty
	}
	if req.Timeout <= 0 {
		req.Timeout = DefaultTimeout
	}
	req.Retries = max(req.Retries, 0)
	ru := &run{req: req, result: Result{Status: Running, Message: "queued: waiting for a free gate worker"}}
	r.runs[req.Key] = ru
	r.queue = append(r.queue, ru)
	r.cond.Signal()
	return ru.result
}

// Forget drops every run whose Key starts with prefix, so that memory
// stays bounded: the shell calls it when a release ends, with a prefix
// ending in "/" (the rollout key plus "/"), so that "ns/app" does not
// also drop "ns/app-v2". Queued runs are dropped; in-flight runs are
// cancelled. A dropped run calls no Done and counts in no metric. A later
// Ensure of a forgotten Key runs the gate again.
func (r *Runner) Forget(prefix string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, ru := range r.runs {
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		delete(r.runs, key)
		if ru.cancel != nil {
			ru.cancel()
		}
	}
	r.queue = slices.DeleteFunc(r.queue, func(ru *run) bool { return strings.HasPrefix(ru.req.Key, prefix) })
}

// Run starts MaxConcurrent workers and returns once ctx is done and every
// worker has stopped. In-flight runs are cancelled with ctx; they are not
// failures: they go back to the front of the queue, still Running, and
// start over from their first attempt if Run is called again (as after
// regaining leadership). Run is meant for its own goroutine; a call while
// another is running returns at once.
func (r *Runner) Run(ctx context.Context) {
	if !r.running.CompareAndSwap(false, true) {
		r.log.Error().Msg("gate runner is already running")
		return
	}
	defer r.running.Store(false)
	// Wake every idle worker when ctx ends. Taking the lock orders the
	// Broadcast after any worker's check of ctx, so none sleeps through it.
	stop := context.AfterFunc(ctx, func() {
		r.mu.Lock()
		r.cond.Broadcast()
		r.mu.Unlock()
	})
	defer stop()
	var wg sync.WaitGroup
	for range r.opts.MaxConcurrent {
		wg.Go(func() { r.work(ctx) })
	}
	wg.Wait()
}

func (r *Runner) work(ctx context.Context) {
	for {
		ru, runCtx := r.next(ctx)
		if ru == nil {
			return
		}
		r.process(runCtx, ctx, ru)
	}
}

// next waits for a queued run and hands it out with a context Forget can
// cancel; nil once ctx is done.
func (r *Runner) next(ctx context.Context) (*run, context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.queue) == 0 && ctx.Err() == nil {
		r.cond.Wait()
	}
	if ctx.Err() != nil {
		return nil, nil
	}
	ru := r.queue[0]
	r.queue[0] = nil // let a forgotten run be collected
	r.queue = r.queue[1:]
	runCtx, cancel := context.WithCancel(ctx)
	ru.cancel = cancel
	return ru, runCtx
}

// process performs one run and records its outcome, unless it was
// forgotten meanwhile or interrupted by shutdown.
func (r *Runner) process(runCtx, ctx context.Context, ru *run) {
	start := r.opts.Clock.Now()
	res, last, interrupted := r.execute(runCtx, ru)

	r.mu.Lock()
	ru.cancel()
	ru.cancel = nil
	current := r.runs[ru.req.Key] == ru
	switch {
	case !current:
		r.mu.Unlock()
		r.event(r.log.Debug(), ru.req).Msg("gate run forgotten while it ran; result dropped")
		return
	case interrupted:
		// Shutdown is not the gate's failure: keep it Running and first in
		// line for the next Run.
		ru.result = Result{Status: Running, Message: "interrupted by shutdown: waiting to run again"}
		r.queue = slices.Insert(r.queue, 0, ru)
		r.mu.Unlock()
		r.event(r.log.Info(), ru.req).Err(ctx.Err()).Msg("gate run interrupted by shutdown; it will run again")
		return
	}
	res.Finished = r.opts.Clock.Now()
	ru.result = res
	r.mu.Unlock()

	r.metrics.observe(res.Status, r.opts.Clock.Since(start))
	e := r.log.Info()
	if res.Status != Passed {
		e = r.log.Warn()
	}
	r.event(e, ru.req).Str("status", string(res.Status)).Int("attempts", res.Attempts).
		Str("outcome", last.head).Str("detail", last.detail).Msg("gate run finished")
	if r.opts.Done != nil {
		r.opts.Done(ru.req.Rollout)
	}
}

// progress updates a run's Result while it runs, if it is still the run
// its Key names.
func (r *Runner) progress(ru *run, attempts int, message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.runs[ru.req.Key] == ru {
		ru.result.Attempts = attempts
		ru.result.Message = message
	}
}

// backoff is the wait after the failures-th failed attempt:
// InitialBackoff doubled per failure, capped at MaxBackoff. There is no
// jitter: gates are few and not synchronised across rollouts.
func (r *Runner) backoff(failures int) time.Duration {
	b := r.opts.InitialBackoff
	for i := 1; i < failures && b < r.opts.MaxBackoff; i++ {
		b *= 2
	}
	return min(b, r.opts.MaxBackoff)
}

// sleep waits on the Runner's clock; false means ctx ended first.
func (r *Runner) sleep(ctx context.Context, d time.Duration) bool {
	t := r.opts.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

// event starts a log line naming the rollout and the gate, never the URL.
func (r *Runner) event(e *zerolog.Event, req Request) *zerolog.Event {
	return e.Str("rollout", req.Rollout).Str("gate", req.Body.Gate).Str("type", req.Body.Type).
		Str("revision", req.Body.Revision).Int("gateAttempt", req.Body.Attempt).Str("key", req.Key)
}
