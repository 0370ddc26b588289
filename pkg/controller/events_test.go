package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
)

// fakeSink stands in for the API server's Events endpoint.
type fakeSink struct {
	// fail decides the answer to each write, given how many times this
	// object's Events were tried before; nil accepts everything.
	fail func(e *corev1.Event, attempt int) error
	// release, when set, holds every write until it is closed; entered
	// gets a token whenever a write starts.
	release chan struct{}
	entered chan struct{}

	mu       sync.Mutex
	attempts map[string]int // by object name
	written  []string       // object names, in order
}

func newFakeSink(fail func(e *corev1.Event, attempt int) error) *fakeSink {
	return &fakeSink{fail: fail, attempts: map[string]int{}}
}

func (s *fakeSink) write(e *corev1.Event) (*corev1.Event, error) {
	if s.entered != nil {
		select {
		case s.entered <- struct{}{}:
		default:
		}
	}
	if s.release != nil {
		<-s.release
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts[e.InvolvedObject.Name]++
	if s.fail != nil {
		if err := s.fail(e, s.attempts[e.InvolvedObject.Name]); err != nil {
			return nil, err
		}
	}
	s.written = append(s.written, e.InvolvedObject.Name)
	out := e.DeepCopy()
	out.ResourceVersion = fmt.Sprint(len(s.written))
	return out, nil
}

func (s *fakeSink) Create(e *corev1.Event) (*corev1.Event, error)          { return s.write(e) }
func (s *fakeSink) Update(e *corev1.Event) (*corev1.Event, error)          { return s.write(e) }
func (s *fakeSink) Patch(e *corev1.Event, _ []byte) (*corev1.Event, error) { return s.write(e) }

func (s *fakeSink) writtenFor(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, w := range s.written {
		if w == name {
			n++
		}
	}
	return n
}

func (s *fakeSink) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.written)
}

func (s *fakeSink) attemptsFor(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts[name]
}

func pod(name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "payments", Name: name, UID: types.UID("uid-" + name)}}
}

// eventually polls cond until it holds or ten seconds have passed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 2*time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

type eventRig struct {
	rec  record.EventRecorder
	m    *Metrics
	sink *fakeSink
	log  *syncBuffer
}

func newEventRig(t *testing.T, sink *fakeSink, o EventOptions) *eventRig {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	m := NewMetrics(prometheus.NewRegistry())
	buf := &syncBuffer{}
	o.Sink, o.Metrics, o.Log = sink, m, zerolog.New(buf)
	if o.RetryInterval == 0 {
		o.RetryInterval = time.Millisecond
	}
	rec, err := NewEventRecorder(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	return &eventRig{rec: rec, m: m, sink: sink, log: buf}
}

func (r *eventRig) dropped() map[string]float64 {
	out := map[string]float64{}
	for _, reason := range allDropReasons() {
		var d dto.Metric
		if err := r.m.EventsDropped.WithLabelValues(reason).Write(&d); err != nil {
			panic(err)
		}
		if v := d.GetCounter().GetValue(); v != 0 {
			out[reason] = v
		}
	}
	return out
}

// settle emits an Event the sink accepts and waits until it is written:
// the sink takes Events one at a time in order, so everything emitted
// before it has been dealt with.
func (r *eventRig) settle(t *testing.T) {
	t.Helper()
	before := r.sink.writtenFor("sentinel")
	r.rec.Event(pod("sentinel"), corev1.EventTypeNormal, "Sentinel", fmt.Sprintf("sentinel %d", before))
	eventually(t, "the sentinel Event to be written", func() bool { return r.sink.writtenFor("sentinel") > before })
}

func TestFailedEventWritesAreCountedByReason(t *testing.T) {
	cases := map[string]struct {
		err          error
		failOnce     bool
		wantDropped  map[string]float64
		wantAttempts int
		wantWritten  int
	}{
		"a write the API server refuses is counted as rejected and not retried": {
			err: apierrors.NewBadRequest("no"), wantDropped: map[string]float64{DropRejected: 1}, wantAttempts: 1},
		"a 429 left after the client's own retries is counted as rate-limited": {
			err: apierrors.NewTooManyRequests("slow down", 1), wantDropped: map[string]float64{DropRateLimited: 1}, wantAttempts: 1},
		"a request that cannot be built is counted as rejected": {
			err: &restclient.RequestConstructionError{Err: errors.New("bad body")}, wantDropped: map[string]float64{DropRejected: 1}, wantAttempts: 1},
		"a write that keeps failing is counted once, when client-go gives up": {
			err: errors.New("connection refused"), wantDropped: map[string]float64{DropWriteFailed: 1}, wantAttempts: maxEventTries},
		"a write that fails once and then gets through is no drop": {
			err: errors.New("connection reset"), failOnce: true, wantDropped: map[string]float64{}, wantAttempts: 2, wantWritten: 1},
		"an Event the API server already has is no drop": {
			err:         apierrors.NewAlreadyExists(schema.GroupResource{Resource: "events"}, "pay.1"),
			wantDropped: map[string]float64{}, wantAttempts: 1},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			sink := newFakeSink(func(e *corev1.Event, attempt int) error {
				if e.InvolvedObject.Name != "pay" || c.failOnce && attempt > 1 {
					return nil
				}
				return c.err
			})
			r := newEventRig(t, sink, EventOptions{})
			r.rec.Event(pod("pay"), corev1.EventTypeNormal, stagesReasonForTest, "stage 1/4 started")
			r.settle(t)
			if got := r.dropped(); fmt.Sprint(got) != fmt.Sprint(c.wantDropped) {
				t.Errorf("dropped %v, want %v", got, c.wantDropped)
			}
			if got := sink.attemptsFor("pay"); got != c.wantAttempts {
				t.Errorf("%d attempts to write, want %d", got, c.wantAttempts)
			}
			if got := sink.writtenFor("pay"); got != c.wantWritten {
				t.Errorf("%d written, want %d", got, c.wantWritten)
			}
		})
	}
}

// stagesReasonForTest is a reason as the controller emits them.
const stagesReasonForTest = "StageStarted"

func TestEventsBeyondAnObjectsBurstAreCountedAsSpamFiltered(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC))
	r := newEventRig(t, newFakeSink(nil), EventOptions{SpamBurst: 3, SpamQPS: 1. / 3600, Clock: clk})
	for i := range 5 {
		r.rec.Event(pod("pay"), corev1.EventTypeNormal, stagesReasonForTest, fmt.Sprintf("stage %d", i))
	}
	r.rec.Event(pod("pay"), corev1.EventTypeWarning, "AnalysisFailed", "a Warning has a burst of its own")
	r.rec.Event(pod("ledger"), corev1.EventTypeNormal, stagesReasonForTest, "another object has a burst of its own")
	if got, want := r.dropped(), map[string]float64{DropSpamFiltered: 2}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("dropped %v, want %v", got, want)
	}
	r.settle(t)
	if p, l := r.sink.writtenFor("pay"), r.sink.writtenFor("ledger"); p != 4 || l != 1 {
		t.Errorf("written: %d about pay, %d about ledger; want 4 and 1", p, l)
	}

	clk.SetTime(clk.Now().Add(time.Hour))
	r.rec.Event(pod("pay"), corev1.EventTypeNormal, stagesReasonForTest, "a token came back")
	r.settle(t)
	if got := r.sink.writtenFor("pay"); got != 5 {
		t.Errorf("written about pay after an hour: %d, want 5", got)
	}
}

func TestEventsBeyondTheQueueAreCountedAndTheRestWritten(t *testing.T) {
	sink := newFakeSink(nil)
	sink.release, sink.entered = make(chan struct{}), make(chan struct{}, 1)
	r := newEventRig(t, sink, EventOptions{})
	r.rec.Event(pod("first"), corev1.EventTypeNormal, stagesReasonForTest, "holds the sink")
	select {
	case <-sink.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the sink was never called")
	}
	// The queue is client-go's whole queue: if client-go's were shorter,
	// its broadcaster would drop some of these without a word and fewer
	// than all would be written below.
	const over = 5
	for i := range maxEventQueue + over {
		r.rec.Event(pod(fmt.Sprintf("p-%d", i)), corev1.EventTypeNormal, stagesReasonForTest, "queued")
	}
	if got, want := r.dropped(), map[string]float64{DropQueueFull: over}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("dropped %v, want %v", got, want)
	}
	close(sink.release)
	eventually(t, "every queued Event to be written", func() bool { return sink.total() == 1+maxEventQueue })
	r.settle(t)
	if got := sink.total(); got != 1+maxEventQueue+1 {
		t.Errorf("%d Events written, want %d", got, 1+maxEventQueue+1)
	}
}

func TestEventsClientGoWouldRefuseAreCountedAsInvalid(t *testing.T) {
	cases := map[string]struct {
		obj       runtime.Object
		eventtype string
	}{
		"an object of no registered kind":           {&unstructured.Unstructured{Object: map[string]any{}}, corev1.EventTypeNormal},
		"a type that is neither Normal nor Warning": {pod("pay"), "Info"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r := newEventRig(t, newFakeSink(nil), EventOptions{})
			r.rec.Event(c.obj, c.eventtype, stagesReasonForTest, "x")
			if got, want := r.dropped(), map[string]float64{DropInvalid: 1}; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("dropped %v, want %v", got, want)
			}
			// Nothing of it stays counted as queued: the whole queue is
			// still there for what follows.
			if p := r.rec.(*eventPipeline); p.inFlight.Load() != 0 {
				t.Errorf("%d Events counted as in flight", p.inFlight.Load())
			}
		})
	}
}

func TestDropsAreLoggedOncePerNOfAReason(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC))
	r := newEventRig(t, newFakeSink(nil), EventOptions{SpamBurst: 1, SpamQPS: 1. / 3600, Clock: clk, DropLogEvery: 2})
	for i := range 6 {
		r.rec.Event(pod("pay"), corev1.EventTypeNormal, stagesReasonForTest, fmt.Sprintf("stage %d", i))
	}
	// 5 drops, logged at the 1st, 3rd and 5th.
	if got := strings.Count(r.log.String(), "Kubernetes Event dropped"); got != 3 {
		t.Errorf("%d drops logged, want 3:\n%s", got, r.log.String())
	}
	if !strings.Contains(r.log.String(), `"dropped":5`) || !strings.Contains(r.log.String(), `"dropReason":"spam-filtered"`) {
		t.Errorf("the log does not say how many were dropped and why:\n%s", r.log.String())
	}
}

func TestTheEventQueueCannotBeLongerThanClientGos(t *testing.T) {
	_, err := NewEventRecorder(context.Background(), EventOptions{
		Sink: newFakeSink(nil), Metrics: NewMetrics(prometheus.NewRegistry()), QueueLength: maxEventQueue + 1,
	})
	if err == nil {
		t.Fatal("a queue longer than client-go's was accepted")
	}
}

// syncBuffer is a log destination written from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
