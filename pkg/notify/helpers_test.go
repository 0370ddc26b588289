package notify

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/meshcanary/meshcanary/pkg/stages"
)

func ptr(f float64) *float64 { return &f }

// rollback is an automatic rollback with everything a person needs to act.
func rollback() Message {
	return Message{
		Kind:         KindRolledBack,
		Namespace:    "payments",
		Deployment:   "payment-service",
		Revision:     "7d9f8c6b5",
		Images:       []string{"registry.example.com/payment:v2", "registry.example.com/sidecar:1.4"},
		Stage:        "2/4",
		CanaryWeight: 10,
		Reason:       stages.ReasonRolledBack,
		Text:         "error-rate 2.1% > max 1% for 2 intervals",
		Checks: []Check{
			{Metric: "error-rate", Canary: ptr(0.021), Stable: ptr(0.003), Bound: "max", Threshold: "1%", Verdict: "Fail"},
			{Metric: "latency-p99", Canary: ptr(0.312), Stable: ptr(0.25), Bound: "maxIncrease", Threshold: "100ms", Verdict: "Pass"},
		},
		DecidedBy: stages.DecidedByAnalysis,
		Page:      true,
		At:        time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC),
	}
}

// request is one request a test server received.
type request struct {
	Path   string
	Header http.Header
	Body   []byte
}

// recorder is a loopback HTTP server that records requests and answers
// with handler (200 "ok" when nil).
type recorder struct {
	*httptest.Server
	reqs chan request
	mu   sync.Mutex
	hits int
}

func newRecorder(t *testing.T, handler http.HandlerFunc) *recorder {
	t.Helper()
	r := &recorder{reqs: make(chan request, 100)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.hits++
		r.mu.Unlock()
		r.reqs <- request{Path: req.URL.Path, Header: req.Header.Clone(), Body: body}
		if handler != nil {
			req.Body = io.NopCloser(bytesReader(body))
			handler(w, req)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits
}

// next returns the next request or fails after a while.
func (r *recorder) next(t *testing.T) request {
	t.Helper()
	select {
	case req := <-r.reqs:
		return req
	case <-time.After(5 * time.Second):
		t.Fatal("no request arrived")
		return request{}
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// metricValue reads one series from reg; 0 when absent.
func metricValue(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			return value(m)
		}
	}
	return 0
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}

// eventually polls cond until it holds or fails the test.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
