package notify

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/meshcanary/meshcanary/pkg/policy"
)

// fakeChannel records messages and answers with fail (nil: success). A
// non-nil block holds every Send until it is closed.
type fakeChannel struct {
	name  string
	fail  func(attempt int) error
	block chan struct{}

	mu       sync.Mutex
	received []Message
	attempts int
}

func (f *fakeChannel) Name() string { return f.name }

func (f *fakeChannel) Send(ctx context.Context, m Message) error {
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if f.fail != nil {
		if err := f.fail(f.attempts); err != nil {
			return err
		}
	}
	f.received = append(f.received, m)
	return nil
}

func (f *fakeChannel) kinds() []Kind {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Kind
	for _, m := range f.received {
		out = append(out, m.Kind)
	}
	return out
}

func (f *fakeChannel) tries() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts
}

// pagingChannel is a fake that, like PagerDuty, wants pages and
// resolutions only.
type pagingChannel struct{ *fakeChannel }

func (p pagingChannel) Wants(m Message) bool { return m.Page || m.Resolve }

// start runs d until the test ends.
func start(t *testing.T, d *Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func fastOptions(reg prometheus.Registerer) Options {
	return Options{MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Timeout: 200 * time.Millisecond, Metrics: reg}
}

func TestRoutesSendEachEventToTheChannelsThatAskForIt(t *testing.T) {
	routes := []policy.NotifyRoute{
		{On: []string{policy.NotifyRolledBack, policy.NotifyStuck}, To: "pagerduty"},
		{On: []string{policy.NotifyAll}, To: "slack"},
	}
	tests := []struct {
		name string
		kind Kind
		want []string
	}{
		{name: "a rollback goes to PagerDuty and Slack", kind: KindRolledBack, want: []string{"pagerduty", "slack"}},
		{name: "a stuck rollout goes to PagerDuty and Slack", kind: KindStuck, want: []string{"pagerduty", "slack"}},
		{name: "a stage advance goes only to Slack", kind: KindStageAdvanced, want: []string{"slack"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Route(routes, tt.kind); !slices.Equal(got, tt.want) {
				t.Errorf("Route = %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("a channel named by two matching routes gets the event once", func(t *testing.T) {
		twice := append(slices.Clone(routes), policy.NotifyRoute{On: []string{policy.NotifyRolledBack}, To: "slack"})
		if got := Route(twice, KindRolledBack); !slices.Equal(got, []string{"pagerduty", "slack"}) {
			t.Errorf("Route = %v", got)
		}
	})
}

func TestDispatcherDeliversARollbackToBothAndAStageAdvanceOnlyToSlack(t *testing.T) {
	routes := []policy.NotifyRoute{
		{On: []string{policy.NotifyRolledBack, policy.NotifyStuck}, To: "pagerduty"},
		{On: []string{policy.NotifyAll}, To: "slack"},
	}
	pd := pagingChannel{&fakeChannel{name: "pagerduty"}}
	slack := &fakeChannel{name: "slack"}
	reg := prometheus.NewPedanticRegistry()
	d, err := NewDispatcher([]Channel{slack, pd}, fastOptions(reg))
	if err != nil {
		t.Fatal(err)
	}
	start(t, d)
	advance := rollback()
	advance.Kind, advance.Page = KindStageAdvanced, false
	d.Notify(routes, rollback())
	d.Notify(routes, advance)
	eventually(t, "slack to get both", func() bool { return len(slack.kinds()) == 2 })
	eventually(t, "pagerduty to get the rollback", func() bool { return len(pd.kinds()) == 1 })
	if got := slack.kinds(); !slices.Equal(got, []Kind{KindRolledBack, KindStageAdvanced}) {
		t.Errorf("slack got %v", got)
	}
	if got := pd.kinds(); !slices.Equal(got, []Kind{KindRolledBack}) {
		t.Errorf("pagerduty got %v", got)
	}
	if v := metricValue(t, reg, "meshcanary_notifications_sent_total", map[string]string{"channel": "slack"}); v != 2 {
		t.Errorf("slack sent = %v, want 2", v)
	}
	if v := metricValue(t, reg, "meshcanary_notifications_sent_total", map[string]string{"channel": "pagerduty"}); v != 1 {
		t.Errorf("pagerduty sent = %v, want 1", v)
	}
	if got := d.Channels(); !slices.Equal(got, []string{"pagerduty", "slack"}) {
		t.Errorf("Channels = %v", got)
	}
}

func TestAFailingEndpointDelaysNeitherNotifyNorOtherChannels(t *testing.T) {
	tests := []struct {
		name       string
		handler    http.HandlerFunc // nil: nothing listens
		wantReason string
	}{
		{name: "slack answers 500 every time", handler: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) }, wantReason: Reason5xx},
		{name: "slack hangs past the timeout", handler: func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, wantReason: ReasonTimeout},
		{name: "slack refuses connections", wantReason: ReasonNetwork},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var slackURL string
			var failing *recorder
			if tt.handler != nil {
				failing = newRecorder(t, tt.handler)
				slackURL = failing.URL + "/services/T/B/secret"
			} else {
				slackURL = "http://" + closedAddr(t) + "/services/T/B/secret"
			}
			good := newRecorder(t, nil)
			reg := prometheus.NewPedanticRegistry()
			opts := fastOptions(reg)
			d, err := NewDispatcher([]Channel{
				NewSlack("slack", slackURL, "", nil),
				NewWebhook("webhook", good.URL, nil, nil),
			}, opts)
			if err != nil {
				t.Fatal(err)
			}
			start(t, d)
			routes := []policy.NotifyRoute{{On: []string{"all"}, To: "slack"}, {On: []string{"all"}, To: "webhook"}}

			began := time.Now()
			d.Notify(routes, rollback())
			// The webhook gets it before Slack's first attempt can even
			// time out.
			select {
			case <-good.reqs:
				if waited := time.Since(began); waited >= opts.Timeout {
					t.Errorf("webhook waited %s, as long as Slack's timeout", waited)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("webhook never got the notification")
			}

			labels := map[string]string{"channel": "slack", "reason": tt.wantReason}
			eventually(t, "slack to be counted as failed", func() bool {
				return metricValue(t, reg, "meshcanary_notifications_failed_total", labels) == 1
			})
			if failing != nil {
				if n := failing.count(); n != opts.MaxAttempts {
					t.Errorf("slack got %d attempts, want %d", n, opts.MaxAttempts)
				}
			}
			if v := metricValue(t, reg, "meshcanary_notifications_sent_total", map[string]string{"channel": "webhook"}); v != 1 {
				t.Errorf("webhook sent = %v, want 1", v)
			}
			if v := metricValue(t, reg, "meshcanary_notifications_sent_total", map[string]string{"channel": "slack"}); v != 0 {
				t.Errorf("slack sent = %v, want 0", v)
			}
		})
	}
}

func TestOnlyFailuresThatMayPassAreRetried(t *testing.T) {
	tests := []struct {
		name         string
		err          error
		wantAttempts int
		wantReason   string
	}{
		{name: "a 400 is tried once", err: statusError("ch", 400, 0), wantAttempts: 1, wantReason: Reason4xx},
		{name: "a 404 is tried once", err: statusError("ch", 404, 0), wantAttempts: 1, wantReason: Reason4xx},
		{name: "a 429 is retried", err: statusError("ch", 429, 0), wantAttempts: 3, wantReason: Reason4xx},
		{name: "a 503 is retried", err: statusError("ch", 503, 0), wantAttempts: 3, wantReason: Reason5xx},
		{name: "an error of another kind is retried", err: errors.New("boom"), wantAttempts: 3, wantReason: ReasonOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := &fakeChannel{name: "ch", fail: func(int) error { return tt.err }}
			reg := prometheus.NewPedanticRegistry()
			d, err := NewDispatcher([]Channel{ch}, fastOptions(reg))
			if err != nil {
				t.Fatal(err)
			}
			start(t, d)
			d.Notify([]policy.NotifyRoute{{On: []string{"all"}, To: "ch"}}, rollback())
			eventually(t, "the failure to be counted", func() bool {
				return metricValue(t, reg, "meshcanary_notifications_failed_total", map[string]string{"channel": "ch", "reason": tt.wantReason}) == 1
			})
			if n := ch.tries(); n != tt.wantAttempts {
				t.Errorf("attempts = %d, want %d", n, tt.wantAttempts)
			}
		})
	}
}

func TestARetryThatSucceedsCountsAsSent(t *testing.T) {
	ch := &fakeChannel{name: "ch", fail: func(n int) error {
		if n < 3 {
			return statusError("ch", 502, 0)
		}
		return nil
	}}
	reg := prometheus.NewPedanticRegistry()
	opts := fastOptions(reg)
	opts.MaxAttempts = 5
	d, err := NewDispatcher([]Channel{ch}, opts)
	if err != nil {
		t.Fatal(err)
	}
	start(t, d)
	d.Notify([]policy.NotifyRoute{{On: []string{"all"}, To: "ch"}}, rollback())
	eventually(t, "delivery", func() bool {
		return metricValue(t, reg, "meshcanary_notifications_sent_total", map[string]string{"channel": "ch"}) == 1
	})
	if v := metricValue(t, reg, "meshcanary_notifications_failed_total", map[string]string{"channel": "ch"}); v != 0 {
		t.Errorf("failed = %v, want 0", v)
	}
}

func TestAFullQueueDropsAndCountsWithoutBlocking(t *testing.T) {
	stuck := &fakeChannel{name: "stuck", block: make(chan struct{})}
	other := &fakeChannel{name: "other"}
	reg := prometheus.NewPedanticRegistry()
	opts := fastOptions(reg)
	opts.QueueSize = 2
	d, err := NewDispatcher([]Channel{stuck, other}, opts)
	if err != nil {
		t.Fatal(err)
	}
	routes := []policy.NotifyRoute{{On: []string{"all"}, To: "stuck"}, {On: []string{"all"}, To: "other"}}
	// Not running yet: nothing leaves the queues, so what fits is exact.
	began := time.Now()
	for range 5 {
		d.Notify(routes, rollback())
	}
	if took := time.Since(began); took > 50*time.Millisecond {
		t.Errorf("5 Notify calls took %s", took)
	}
	for _, name := range []string{"stuck", "other"} {
		if v := metricValue(t, reg, "meshcanary_notifications_failed_total", map[string]string{"channel": name, "reason": ReasonDropped}); v != 3 {
			t.Errorf("%s dropped = %v, want 3", name, v)
		}
		if v := metricValue(t, reg, "meshcanary_notification_queue_depth", map[string]string{"channel": name}); v != 2 {
			t.Errorf("%s queue depth = %v, want 2", name, v)
		}
	}
	start(t, d)
	eventually(t, "the other channel to drain its queue", func() bool { return len(other.kinds()) == 2 })
	eventually(t, "the queue depth to fall", func() bool {
		return metricValue(t, reg, "meshcanary_notification_queue_depth", map[string]string{"channel": "other"}) == 0
	})
	close(stuck.block)
	eventually(t, "the stuck channel to catch up", func() bool { return len(stuck.kinds()) == 2 })
}

func TestBackoffWaitsOnTheClockAndDoublesPerAttempt(t *testing.T) {
	fc := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	ch := &fakeChannel{name: "ch", fail: func(int) error { return statusError("ch", 500, 0) }}
	reg := prometheus.NewPedanticRegistry()
	d, err := NewDispatcher([]Channel{ch}, Options{MaxAttempts: 3, InitialBackoff: time.Second, MaxBackoff: 30 * time.Second, Metrics: reg, Clock: fc})
	if err != nil {
		t.Fatal(err)
	}
	d.jitter = func() float64 { return 1 } // the longest wait: the full backoff
	start(t, d)
	d.Notify([]policy.NotifyRoute{{On: []string{"all"}, To: "ch"}}, rollback())

	for attempt, wait := range []time.Duration{time.Second, 2 * time.Second} {
		eventually(t, "the worker to wait", func() bool { return ch.tries() == attempt+1 && fc.HasWaiters() })
		fc.Step(wait - time.Millisecond)
		time.Sleep(20 * time.Millisecond)
		if n := ch.tries(); n != attempt+1 {
			t.Fatalf("retried after %s, before the %s backoff", wait-time.Millisecond, wait)
		}
		fc.Step(time.Millisecond)
		eventually(t, "the retry", func() bool { return ch.tries() == attempt+2 })
	}
	eventually(t, "the failure to be counted", func() bool {
		return metricValue(t, reg, "meshcanary_notifications_failed_total", map[string]string{"channel": "ch", "reason": Reason5xx}) == 1
	})
	if fc.HasWaiters() {
		t.Error("the worker still waits after the last attempt")
	}
}

func TestBackoffIsCappedAndJittered(t *testing.T) {
	d, err := NewDispatcher(nil, Options{InitialBackoff: time.Second, MaxBackoff: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		attempt  int
		min, max time.Duration
	}{
		{1, 500 * time.Millisecond, time.Second},
		{2, time.Second, 2 * time.Second},
		{3, 2 * time.Second, 4 * time.Second},
		{5, 8 * time.Second, 16 * time.Second},
		{6, 15 * time.Second, 30 * time.Second},
		{60, 15 * time.Second, 30 * time.Second},
	}
	for _, tt := range tests {
		for _, j := range []float64{0, 0.5, 0.999999} {
			d.jitter = func() float64 { return j }
			if got := d.backoff(tt.attempt); got < tt.min || got > tt.max {
				t.Errorf("backoff(%d) with jitter %v = %s, want within [%s, %s]", tt.attempt, j, got, tt.min, tt.max)
			}
		}
	}
}

func TestShutdownCountsWhatWasNotDelivered(t *testing.T) {
	ch := &fakeChannel{name: "ch", block: make(chan struct{})}
	reg := prometheus.NewPedanticRegistry()
	d, err := NewDispatcher([]Channel{ch}, fastOptions(reg))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		d.Notify([]policy.NotifyRoute{{On: []string{"all"}, To: "ch"}}, rollback())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	eventually(t, "the worker to take one", func() bool {
		return metricValue(t, reg, "meshcanary_notification_queue_depth", map[string]string{"channel": "ch"}) == 2
	})
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if v := metricValue(t, reg, "meshcanary_notifications_failed_total", map[string]string{"channel": "ch", "reason": ReasonDropped}); v != 3 {
		t.Errorf("dropped = %v, want 3", v)
	}
	if v := metricValue(t, reg, "meshcanary_notification_queue_depth", map[string]string{"channel": "ch"}); v != 0 {
		t.Errorf("queue depth = %v, want 0", v)
	}
}

func TestARouteToAnUnconfiguredChannelIsCounted(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	d, err := NewDispatcher([]Channel{&fakeChannel{name: "slack"}}, fastOptions(reg))
	if err != nil {
		t.Fatal(err)
	}
	d.Notify([]policy.NotifyRoute{{On: []string{"all"}, To: "teams"}}, rollback())
	if v := metricValue(t, reg, "meshcanary_notifications_failed_total", map[string]string{"channel": "teams", "reason": ReasonUnconfigured}); v != 1 {
		t.Errorf("unconfigured = %v, want 1", v)
	}
}

func TestNewDispatcherRefusesAmbiguousChannels(t *testing.T) {
	tests := []struct {
		name     string
		channels []Channel
	}{
		{name: "two channels with one name", channels: []Channel{&fakeChannel{name: "a"}, &fakeChannel{name: "a"}}},
		{name: "a channel without a name", channels: []Channel{&fakeChannel{}}},
		{name: "a nil channel", channels: []Channel{nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewDispatcher(tt.channels, Options{}); err == nil {
				t.Error("no error")
			}
		})
	}
	t.Run("metrics registered twice", func(t *testing.T) {
		reg := prometheus.NewPedanticRegistry()
		if _, err := NewDispatcher(nil, Options{Metrics: reg}); err != nil {
			t.Fatal(err)
		}
		if _, err := NewDispatcher(nil, Options{Metrics: reg}); err == nil {
			t.Error("no error")
		}
	})
}

func TestANilDispatcherDoesNothing(t *testing.T) {
	var d *Dispatcher
	d.Notify([]policy.NotifyRoute{{On: []string{"all"}, To: "slack"}}, rollback())
	if d.Channels() != nil {
		t.Error("a nil dispatcher has channels")
	}
}
