package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/tools/record/util"
	"k8s.io/client-go/tools/reference"
	"k8s.io/utils/clock"
)

// Reasons of meshcanary_events_dropped_total: why an Event was never
// written.
const (
	// DropSpamFiltered: the object had already had its burst of Events of
	// this type and no token has come back yet (EventOptions.SpamBurst).
	DropSpamFiltered = "spam-filtered"
	// DropQueueFull: the queue between the workers and the API server was
	// full, so Events are produced faster than the Events client writes.
	DropQueueFull = "queue-full"
	// DropRateLimited: the API server answered 429 Too Many Requests even
	// after the client's own retries.
	DropRateLimited = "rate-limited"
	// DropRejected: the API server refused the Event (other than as a
	// duplicate), or the request could not be built; never retried.
	DropRejected = "rejected"
	// DropWriteFailed: every attempt failed (connection errors, timeouts)
	// and client-go gave up.
	DropWriteFailed = "write-failed"
	// DropInvalid: the Event names an object without a registered kind, or
	// a type other than Normal and Warning; client-go refuses to build it.
	DropInvalid = "invalid"
)

func allDropReasons() []string {
	return []string{DropSpamFiltered, DropQueueFull, DropRateLimited, DropRejected, DropWriteFailed, DropInvalid}
}

// Defaults of EventOptions.
const (
	// defaultEventSpamBurst and defaultEventSpamQPS bound the Events of one
	// type about one object. A release emits one Event per analysis
	// interval plus a few per stage (about 30 for four stages at a 1m
	// interval); a burst of 50 takes a whole release, and one Event per
	// 10s afterwards keeps up with any interval of 10s or more while a
	// Deployment stuck in a loop writes at most 6 a minute. client-go's
	// defaults (25, then one per 5 minutes) silently cut releases short.
	defaultEventSpamBurst = 50
	defaultEventSpamQPS   = 0.1
	// maxEventQueue is client-go's queue between the recorder and the
	// sink (maxQueuedEvents in tools/record, unexported). Its broadcaster
	// drops what does not fit without a word, so the recorder keeps at
	// most this many Events in flight and counts the rest as queue-full.
	// TestEventsBeyondTheQueueAreCountedAndTheRestWritten pins the value.
	maxEventQueue = 1000
	// maxEventTries is how often client-go tries to write one Event before
	// it gives up (maxTriesPerEvent, unexported); the same test pins it.
	maxEventTries = 12
	// eventCacheSize is the entries of the correlator's and the spam
	// filter's LRU caches: one per object and type, and per object and
	// reason, for 2,000 rollouts with room to spare. client-go's 4,096
	// would forget counts and aggregations at that scale.
	eventCacheSize = 16384
	// defaultDropLogEvery: the first drop of each reason is logged, then
	// every 100th; the counter has them all.
	defaultDropLogEvery = 100
)

// EventOptions configure NewEventRecorder. Zero values take the defaults.
type EventOptions struct {
	// Sink writes the Events, e.g. typedcorev1.EventSinkImpl on a client
	// whose rate limiter is not the one that moves traffic. Required.
	Sink record.EventSink
	// Metrics receives the drop counter. Required.
	Metrics *Metrics
	Log     zerolog.Logger
	// Scheme resolves the kinds of the objects Events are about; default
	// client-go's scheme.Scheme.
	Scheme *runtime.Scheme
	// Source names the reporter; default component "meshcanary".
	Source corev1.EventSource
	// SpamBurst and SpamQPS bound the Events of one type about one object.
	SpamBurst int
	SpamQPS   float32
	// QueueLength bounds the Events waiting to be written, at most (and by
	// default) client-go's 1,000.
	QueueLength int
	// RetryInterval is the pause between attempts to write one Event;
	// default client-go's 10s.
	RetryInterval time.Duration
	// DropLogEvery: log the first drop of each reason and every Nth.
	DropLogEvery int
	// Clock drives the spam filter and the correlator; default real time.
	Clock clock.PassiveClock
}

// NewEventRecorder builds the controller's Event pipeline on client-go's
// broadcaster and correlator, so that no Event is lost without being
// counted in meshcanary_events_dropped_total and logged:
//
//	Event ─► spam filter ─► queue ─► client-go correlator ─► sink ─► API server
//	         spam-filtered  queue-full  (aggregates, dedups)  rate-limited, rejected, write-failed
//
// client-go's broadcaster drops Events silently when its queue is full and
// its spam filter skips them silently, so the recorder does both itself,
// in front of it: its filter is client-go's EventSourceObjectSpamFilter,
// and it keeps no more Events in flight than client-go's queue holds.
// The correlator's own filter is set loose enough never to fire on what
// passed this one. The broadcaster stops when ctx ends.
func NewEventRecorder(ctx context.Context, o EventOptions) (record.EventRecorder, error) {
	if o.Sink == nil || o.Metrics == nil {
		return nil, errors.New("events: Sink and Metrics are required")
	}
	if o.QueueLength > maxEventQueue {
		return nil, fmt.Errorf("events: queue length %d: client-go's broadcaster holds at most %d", o.QueueLength, maxEventQueue)
	}
	if o.Scheme == nil {
		o.Scheme = scheme.Scheme
	}
	if o.Source.Component == "" {
		o.Source.Component = "meshcanary"
	}
	if o.SpamBurst <= 0 {
		o.SpamBurst = defaultEventSpamBurst
	}
	if o.SpamQPS <= 0 {
		o.SpamQPS = defaultEventSpamQPS
	}
	if o.QueueLength <= 0 {
		o.QueueLength = maxEventQueue
	}
	if o.DropLogEvery <= 0 {
		o.DropLogEvery = defaultDropLogEvery
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	drops := &dropCounter{metric: o.Metrics.EventsDropped, log: o.Log, every: o.DropLogEvery, counts: map[string]int{}}
	p := &eventPipeline{
		scheme:   o.Scheme,
		source:   o.Source,
		spam:     record.NewEventSourceObjectSpamFilter(eventCacheSize, o.SpamBurst, o.SpamQPS, o.Clock, spamKey),
		queueLen: int64(o.QueueLength),
		drops:    drops,
	}
	opts := []record.BroadcasterOption{
		record.WithContext(ctx),
		record.WithCorrelatorOptions(record.CorrelatorOptions{
			LRUCacheSize: eventCacheSize,
			// The same key and rate as the recorder's filter, with the
			// burst raised by the queue: Events that passed it arrive here
			// later, bunched by at most the queue's length, so this filter
			// never skips one and every skip is the recorder's, counted.
			SpamKeyFunc: spamKey,
			QPS:         o.SpamQPS,
			BurstSize:   o.SpamBurst + o.QueueLength,
			// client-go's aggregation, spelled out: more than 10 Events
			// with the same reason about one object within 10 minutes
			// become one Event whose count goes up. Nothing is lost.
			MaxEvents:            10,
			MaxIntervalInSeconds: 600,
			MessageFunc:          record.EventAggregatorByReasonMessageFunc,
			// The aggregator looks at each Event exactly once, as the
			// sink's goroutine takes it from the queue: the Event has left
			// the queue.
			KeyFunc: func(e *corev1.Event) (string, string) {
				p.inFlight.Add(-1)
				return record.EventAggregatorByReasonFunc(e)
			},
			Clock: o.Clock,
		}),
	}
	if o.RetryInterval > 0 {
		opts = append(opts, record.WithSleepDuration(o.RetryInterval))
	}
	b := record.NewBroadcaster(opts...)
	b.StartRecordingToSink(&countingSink{next: o.Sink, drops: drops})
	p.next = b.NewRecorder(o.Scheme, o.Source)
	return p, nil
}

// spamKey is client-go's spam key (getSpamKey, unexported): Events are
// limited per reporter, object and type.
func spamKey(e *corev1.Event) string {
	return strings.Join([]string{
		e.Source.Component, e.Source.Host,
		e.InvolvedObject.Kind, e.InvolvedObject.Namespace, e.InvolvedObject.Name,
		string(e.InvolvedObject.UID), e.InvolvedObject.APIVersion, e.Type,
	}, "")
}

// eventPipeline is the record.EventRecorder in front of client-go's: it
// decides, and counts, what is dropped before the broadcaster could drop
// it without a word.
type eventPipeline struct {
	next     record.EventRecorder
	scheme   *runtime.Scheme
	source   corev1.EventSource
	queueLen int64
	// inFlight is the Events handed to the broadcaster that its sink
	// goroutine has not taken yet.
	inFlight atomic.Int64
	drops    *dropCounter

	// spamMu makes the filter's look-up and update one step.
	spamMu sync.Mutex
	spam   *record.EventSourceObjectSpamFilter
}

var _ record.EventRecorder = (*eventPipeline)(nil)

func (p *eventPipeline) Event(obj runtime.Object, eventtype, reason, message string) {
	if p.admit(obj, eventtype, reason) {
		p.next.Event(obj, eventtype, reason, message)
	}
}

func (p *eventPipeline) Eventf(obj runtime.Object, eventtype, reason, messageFmt string, args ...any) {
	p.Event(obj, eventtype, reason, fmt.Sprintf(messageFmt, args...))
}

func (p *eventPipeline) AnnotatedEventf(obj runtime.Object, annotations map[string]string, eventtype, reason, messageFmt string, args ...any) {
	if p.admit(obj, eventtype, reason) {
		p.next.AnnotatedEventf(obj, annotations, eventtype, reason, messageFmt, args...)
	}
}

// admit reports whether an Event goes on to client-go's recorder, and
// counts it when not.
func (p *eventPipeline) admit(obj runtime.Object, eventtype, reason string) bool {
	// The checks client-go's recorder makes before queueing: what fails
	// them never reaches the queue, so it must not count as in flight.
	ref, err := reference.GetReference(p.scheme, obj)
	if err != nil {
		p.drops.drop(DropInvalid, nil, reason, err)
		return false
	}
	if !util.ValidateEventType(eventtype) {
		p.drops.drop(DropInvalid, ref, reason, fmt.Errorf("event type %q is neither Normal nor Warning", eventtype))
		return false
	}
	p.spamMu.Lock()
	filtered := p.spam.Filter(&corev1.Event{InvolvedObject: *ref, Type: eventtype, Source: p.source})
	p.spamMu.Unlock()
	if filtered {
		p.drops.drop(DropSpamFiltered, ref, reason, nil)
		return false
	}
	if p.inFlight.Add(1) > p.queueLen {
		p.inFlight.Add(-1)
		p.drops.drop(DropQueueFull, ref, reason, nil)
		return false
	}
	return true
}

// countingSink counts the writes client-go gives up on. It classifies
// errors as client-go's recordEvent does: a status error or a request that
// cannot be built is final, anything else is tried again, up to
// maxEventTries times.
type countingSink struct {
	next  record.EventSink
	drops *dropCounter

	mu sync.Mutex
	// current is the Event being retried; client-go passes the same
	// pointer on every attempt.
	current  *corev1.Event
	failures int
}

var _ record.EventSink = (*countingSink)(nil)

func (s *countingSink) Create(e *corev1.Event) (*corev1.Event, error) {
	out, err := s.next.Create(e)
	s.observe(e, err, false)
	return out, err
}

func (s *countingSink) Update(e *corev1.Event) (*corev1.Event, error) {
	out, err := s.next.Update(e)
	s.observe(e, err, false)
	return out, err
}

func (s *countingSink) Patch(e *corev1.Event, data []byte) (*corev1.Event, error) {
	out, err := s.next.Patch(e, data)
	s.observe(e, err, true)
	return out, err
}

func (s *countingSink) observe(e *corev1.Event, err error, patch bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.current, s.failures = nil, 0
		return
	}
	if patch && util.IsKeyNotFoundError(err) {
		// The Event to count up is gone: client-go creates it anew in the
		// same attempt.
		return
	}
	reason := ""
	var construct *restclient.RequestConstructionError
	var status *apierrors.StatusError
	switch {
	case errors.As(err, &construct):
		reason = DropRejected
	case errors.As(err, &status):
		switch {
		case apierrors.IsAlreadyExists(err):
			// Written already (an earlier attempt got through).
		case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
			// The object's namespace is being deleted: nobody will read
			// an Event about it.
		case apierrors.IsTooManyRequests(err):
			reason = DropRateLimited
		default:
			reason = DropRejected
		}
	default:
		if s.current != e {
			s.current, s.failures = e, 0
		}
		s.failures++
		if s.failures >= maxEventTries {
			reason = DropWriteFailed
			s.current, s.failures = nil, 0
		}
	}
	if reason != "" {
		s.drops.drop(reason, &e.InvolvedObject, e.Reason, err)
	}
}

// dropCounter counts and logs dropped Events: every drop in the metric,
// the first of each reason and every Nth after it in the log.
type dropCounter struct {
	metric *prometheus.CounterVec
	log    zerolog.Logger
	every  int

	mu     sync.Mutex
	counts map[string]int
}

func (d *dropCounter) drop(reason string, obj *corev1.ObjectReference, eventReason string, err error) {
	d.metric.WithLabelValues(reason).Inc()
	d.mu.Lock()
	d.counts[reason]++
	n := d.counts[reason]
	d.mu.Unlock()
	if (n-1)%d.every != 0 {
		return
	}
	l := d.log.Warn().Str("dropReason", reason).Int("dropped", n).Str("eventReason", eventReason)
	if obj != nil {
		l = l.Str("object", obj.Kind+" "+obj.Namespace+"/"+obj.Name)
	}
	if err != nil {
		l = l.Err(err)
	}
	l.Msgf("Kubernetes Event dropped; logged once per %d drops of a reason, all counted in meshcanary_events_dropped_total", d.every)
}
