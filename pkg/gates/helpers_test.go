package gates

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// waitDeadline bounds every poll: generous for -race on two shared cores.
const waitDeadline = 15 * time.Second

// Secrets the test URLs carry; no Message may show them.
const (
	secretUser  = "gate-user"
	secretPass  = "hunter2"
	secretToken = "s3cret-token"
)

// gateServer is a loopback gate endpoint that records what it receives.
type gateServer struct {
	*httptest.Server
	hits        atomic.Int32
	inFlight    atomic.Int32
	maxInFlight atomic.Int32

	mu       sync.Mutex
	bodies   [][]byte
	requests []*http.Request
}

// newGateServer serves respond(w, r, n), n being the 1-based number of the
// request. Its Close runs after the runner's cleanup, which cancels any
// request still in flight.
func newGateServer(t *testing.T, respond func(w http.ResponseWriter, r *http.Request, n int)) *gateServer {
	t.Helper()
	s := &gateServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(s.hits.Add(1))
		cur := s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		for {
			m := s.maxInFlight.Load()
			if cur <= m || s.maxInFlight.CompareAndSwap(m, cur) {
				break
			}
		}
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies = append(s.bodies, body)
		s.requests = append(s.requests, r)
		s.mu.Unlock()
		respond(w, r, n)
	}))
	t.Cleanup(s.Close)
	return s
}

// secretURL is the server's URL with userinfo and a query token, as a
// gate URL carrying credentials would be.
func (s *gateServer) secretURL(path string) string {
	return strings.Replace(s.URL, "http://", "http://"+secretUser+":"+secretPass+"@", 1) + path + "?token=" + secretToken
}

// shownURL is what a Message may show of secretURL(path).
func (s *gateServer) shownURL(path string) string { return s.URL + path + "?[redacted]" }

func (s *gateServer) paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.requests {
		out = append(out, r.URL.Path)
	}
	return out
}

// script answers the n-th request with codes[n-1], repeating the last.
func script(body string, codes ...int) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, _ *http.Request, n int) {
		w.WriteHeader(codes[min(n, len(codes))-1])
		_, _ = io.WriteString(w, body)
	}
}

// hang answers only when the request is cancelled; cancelled is closed
// then (once).
func hang(cancelled chan struct{}) func(http.ResponseWriter, *http.Request, int) {
	var once sync.Once
	return func(_ http.ResponseWriter, r *http.Request, _ int) {
		<-r.Context().Done()
		if cancelled != nil {
			once.Do(func() { close(cancelled) })
		}
	}
}

// doneRecorder is an Options.Done that remembers its calls in order.
type doneRecorder struct {
	mu    sync.Mutex
	calls []string
}

func (d *doneRecorder) done(rollout string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, rollout)
}

func (d *doneRecorder) get() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.calls)
}

func (d *doneRecorder) count(rollout string) int {
	n := 0
	for _, c := range d.get() {
		if c == rollout {
			n++
		}
	}
	return n
}

// fastOptions are Options with backoffs short enough for tests.
func fastOptions(done *doneRecorder, reg prometheus.Registerer) Options {
	o := Options{InitialBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, Metrics: reg}
	if done != nil {
		o.Done = done.done
	}
	return o
}

// startRunner runs r until the test ends.
func startRunner(t *testing.T, r *Runner) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		r.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-stopped:
		case <-time.After(waitDeadline):
			t.Errorf("Run did not return within %s of its context ending", waitDeadline)
		}
	})
}

// request is a gate Request for rollout payments/<app>.
func request(key, app, url string) Request {
	return Request{
		Key:     key,
		Rollout: "payments/" + app,
		URL:     url,
		Timeout: 5 * time.Second,
		Body: Body{
			Gate: "smoke", Type: "pre-rollout", Namespace: "payments", Deployment: app,
			Canary: app + "-canary", Revision: "3f2a", Stages: 4, Attempt: 1,
		},
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitDeadline, what)
		}
		time.Sleep(5 * time.Millisecond) // poll interval, not a wait for an outcome
	}
}

// finished waits for the run of req to have a result, Done to have been
// called for it (so metrics are counted) and returns the result.
func finished(t *testing.T, r *Runner, req Request, done *doneRecorder, doneCalls int) Result {
	t.Helper()
	eventually(t, "Done for "+req.Key, func() bool { return done.count(req.Rollout) >= doneCalls })
	res := r.Ensure(req)
	if res.Status == Running {
		t.Fatalf("Done was called but %s is still Running: %+v", req.Key, res)
	}
	return res
}

// metricValue reads a counter's value (with the label result=label) or a
// histogram's sample count (label "") from reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "result" && lp.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("metric %s{result=%q} not found", name, label)
	return 0
}
