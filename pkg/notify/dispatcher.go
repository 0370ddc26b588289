package notify

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"k8s.io/utils/clock"

	"github.com/meshcanary/meshcanary/pkg/policy"
)

// Channel delivers notifications to one destination.
type Channel interface {
	// Name is what routes name in `to`.
	Name() string
	// Send delivers m once, within ctx. Its error should be a *SendError
	// so the Dispatcher can tell what to retry; other errors are retried
	// and have any URL in a *url.Error cut out before they are logged.
	Send(ctx context.Context, m Message) error
}

// Filter is implemented by channels that take only some messages (the
// PagerDuty channel takes pages and resolutions). The Dispatcher does not
// queue the others, so they neither use queue space nor count as sent.
type Filter interface {
	Wants(m Message) bool
}

// Options tune a Dispatcher. Zero values take the defaults.
type Options struct {
	// QueueSize bounds the notifications waiting per channel; more are
	// dropped and counted. Default 256.
	QueueSize int
	// MaxAttempts bounds the sends of one notification. Default 5.
	MaxAttempts int
	// InitialBackoff is the wait after the first failed attempt; it
	// doubles per attempt up to MaxBackoff. Defaults 1s and 30s.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// Timeout bounds one attempt. Default 10s.
	Timeout time.Duration
	// Metrics registers the dispatcher's metrics; nil registers nothing.
	Metrics prometheus.Registerer
	// Log receives delivery failures and drops; the zero Logger discards.
	Log zerolog.Logger
	// Clock times the backoff; nil is the real clock. Attempt timeouts use
	// the context's real deadline.
	Clock clock.Clock
}

func (o Options) withDefaults() Options {
	if o.QueueSize <= 0 {
		o.QueueSize = 256
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.InitialBackoff <= 0 {
		o.InitialBackoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.MaxBackoff < o.InitialBackoff {
		o.MaxBackoff = o.InitialBackoff
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	return o
}

// Dispatcher delivers notifications in the background: one queue and one
// worker per channel, so a slow or failing channel delays only itself,
// and a channel's notifications arrive in order (a PagerDuty resolve never
// overtakes its trigger). Sending never blocks or fails the caller.
type Dispatcher struct {
	opts    Options
	log     zerolog.Logger
	queues  map[string]*queue
	names   []string
	metrics *dispatchMetrics
	running atomic.Bool
	// jitter returns a number in [0, 1); replaced in tests.
	jitter func() float64
}

type queue struct {
	channel Channel
	msgs    chan Message
}

// NewDispatcher prepares delivery to channels and registers the metrics.
// Channel names must be unique and non-empty. Nothing is sent until Run.
func NewDispatcher(channels []Channel, opts Options) (*Dispatcher, error) {
	opts = opts.withDefaults()
	d := &Dispatcher{
		opts:   opts,
		log:    opts.Log.With().Str("component", "notify").Logger(),
		queues: make(map[string]*queue, len(channels)),
		jitter: rand.Float64,
	}
	for i, ch := range channels {
		if ch == nil {
			return nil, fmt.Errorf("notification channel %d is nil", i)
		}
		name := ch.Name()
		if name == "" {
			return nil, fmt.Errorf("notification channel %d has no name", i)
		}
		if _, dup := d.queues[name]; dup {
			return nil, fmt.Errorf("notification channel %q is defined twice", name)
		}
		d.queues[name] = &queue{channel: ch, msgs: make(chan Message, opts.QueueSize)}
		d.names = append(d.names, name)
	}
	slices.Sort(d.names)
	m, err := newDispatchMetrics(opts.Metrics, d.names)
	if err != nil {
		return nil, err
	}
	d.metrics = m
	return d, nil
}

// Channels lists the configured channel names, sorted, for
// policy.ValidateNotifyChannels.
func (d *Dispatcher) Channels() []string {
	if d == nil {
		return nil
	}
	return slices.Clone(d.names)
}

// Run delivers until ctx is done, then counts what is still queued as
// dropped and returns once every worker has stopped. It is meant to run in
// its own goroutine; a second call returns at once.
func (d *Dispatcher) Run(ctx context.Context) {
	if !d.running.CompareAndSwap(false, true) {
		d.log.Error().Msg("notification dispatcher is already running")
		return
	}
	var wg sync.WaitGroup
	for _, name := range d.names {
		q := d.queues[name]
		wg.Go(func() { d.work(ctx, q) })
	}
	wg.Wait()
}

// Notify queues m for every channel a route sends its kind to, and returns
// at once: a channel whose queue is full drops m and counts it. A nil
// Dispatcher (notifications not configured) does nothing.
func (d *Dispatcher) Notify(routes []policy.NotifyRoute, m Message) {
	if d == nil {
		return
	}
	if m.At.IsZero() {
		m.At = d.opts.Clock.Now()
	}
	targets := Route(routes, m.Kind)
	if m.Resolve {
		// An incident opened for this rollout must close even when the
		// event that ends it (a promotion) is not routed to the paging
		// channel: every paging channel the policy routes to hears it.
		for _, r := range routes {
			if q, ok := d.queues[r.To]; ok && !slices.Contains(targets, r.To) {
				if p, ok := q.channel.(Pager); ok && p.Pages() {
					targets = append(targets, r.To)
				}
			}
		}
	}
	for _, name := range targets {
		q, ok := d.queues[name]
		if !ok {
			// Validation should have caught it; the policy and the
			// Secret can still change independently.
			d.metrics.failed.WithLabelValues(name, ReasonUnconfigured).Inc()
			d.event(d.log.Warn(), name, m).Msg("notification route names a channel that is not configured")
			continue
		}
		if f, ok := q.channel.(Filter); ok && !f.Wants(m) {
			continue
		}
		select {
		case q.msgs <- m:
			d.metrics.depth.WithLabelValues(name).Inc()
		default:
			d.metrics.failed.WithLabelValues(name, ReasonDropped).Inc()
			d.event(d.log.Warn(), name, m).Int("queueSize", d.opts.QueueSize).Msg("notification dropped: queue full")
		}
	}
}

// Pager marks channels that open and close incidents (PagerDuty): they
// receive resolves for every rollout the policy routes to them.
type Pager interface {
	Pages() bool
}

// Route lists, in order and once each, the channels routes send kind to.
func Route(routes []policy.NotifyRoute, kind Kind) []string {
	var out []string
	for _, r := range routes {
		if slices.Contains(out, r.To) {
			continue
		}
		for _, on := range r.On {
			if on == policy.NotifyAll || on == string(kind) {
				out = append(out, r.To)
				break
			}
		}
	}
	return out
}

func (d *Dispatcher) work(ctx context.Context, q *queue) {
	name := q.channel.Name()
	for {
		select {
		case <-ctx.Done():
			d.drain(q)
			return
		case m := <-q.msgs:
			d.metrics.depth.WithLabelValues(name).Dec()
			d.deliver(ctx, q.channel, m)
		}
	}
}

// drain counts what shutdown leaves undelivered, so the metric tells.
func (d *Dispatcher) drain(q *queue) {
	name := q.channel.Name()
	n := 0
	for {
		select {
		case <-q.msgs:
			d.metrics.depth.WithLabelValues(name).Dec()
			d.metrics.failed.WithLabelValues(name, ReasonDropped).Inc()
			n++
		default:
			if n > 0 {
				d.log.Warn().Str("channel", name).Int("count", n).Msg("notifications not delivered: shutting down")
			}
			return
		}
	}
}

// deliver sends m with bounded retries. Every outcome is counted once:
// sent, or failed with the last attempt's reason.
func (d *Dispatcher) deliver(ctx context.Context, ch Channel, m Message) {
	name := ch.Name()
	for attempt := 1; ; attempt++ {
		sendCtx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
		err := ch.Send(sendCtx, m)
		timedOut := errors.Is(sendCtx.Err(), context.DeadlineExceeded)
		cancel()
		if err == nil {
			d.metrics.sent.WithLabelValues(name).Inc()
			d.event(d.log.Debug(), name, m).Int("attempt", attempt).Msg("notification sent")
			return
		}
		err = safeError(err)
		if ctx.Err() != nil {
			d.metrics.failed.WithLabelValues(name, ReasonDropped).Inc()
			d.event(d.log.Warn(), name, m).Err(err).Msg("notification not delivered: shutting down")
			return
		}
		reason, retry, after := classify(err, timedOut)
		if !retry || attempt >= d.opts.MaxAttempts {
			d.metrics.failed.WithLabelValues(name, reason).Inc()
			d.event(d.log.Warn(), name, m).Err(err).Str("failure", reason).Int("attempts", attempt).Msg("notification failed")
			return
		}
		wait := max(d.backoff(attempt), min(after, d.opts.MaxBackoff))
		d.event(d.log.Debug(), name, m).Err(err).Int("attempt", attempt).Dur("retryIn", wait).Msg("notification attempt failed")
		if !d.sleep(ctx, wait) {
			d.metrics.failed.WithLabelValues(name, ReasonDropped).Inc()
			d.event(d.log.Warn(), name, m).Err(err).Msg("notification not delivered: shutting down")
			return
		}
	}
}

// classify says how an attempt failed, whether to try again, and how long
// the endpoint asked to be left alone.
func classify(err error, timedOut bool) (reason string, retry bool, after time.Duration) {
	var se *SendError
	if errors.As(err, &se) {
		reason = se.Reason()
		if timedOut && se.StatusCode == 0 {
			reason = ReasonTimeout
		}
		return reason, se.Retryable(), se.RetryAfter
	}
	if timedOut || errors.Is(err, context.DeadlineExceeded) {
		return ReasonTimeout, true, 0
	}
	return ReasonOther, true, 0
}

// backoff is the wait after the attempt-th failure: InitialBackoff doubled
// per attempt, capped at MaxBackoff, then jittered down by up to half so
// that channels failing together do not retry in lockstep. It never
// exceeds MaxBackoff.
func (d *Dispatcher) backoff(attempt int) time.Duration {
	b := d.opts.InitialBackoff
	for i := 1; i < attempt && b < d.opts.MaxBackoff; i++ {
		b *= 2
	}
	b = min(b, d.opts.MaxBackoff)
	return b/2 + time.Duration(d.jitter()*float64(b/2))
}

// sleep waits on the Dispatcher's clock; false means ctx ended first.
func (d *Dispatcher) sleep(ctx context.Context, wait time.Duration) bool {
	t := d.opts.Clock.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

// event starts a log line naming the channel and the rollout, never the
// endpoint.
func (d *Dispatcher) event(e *zerolog.Event, channel string, m Message) *zerolog.Event {
	return e.Str("channel", channel).Str("namespace", m.Namespace).Str("deployment", m.Deployment).
		Str("revision", m.Revision).Str("kind", string(m.Kind))
}
