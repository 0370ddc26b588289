package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/meshcanary/meshcanary/pkg/policy"
)

// familyProm answers every query of a family with the same series, those
// of every rollout: the reader must pick each request's own. It records
// the queries and their evaluation times, and can fail one family.
type familyProm struct {
	t      *testing.T
	series map[string][]series // by family
	fail   string
	mu     sync.Mutex
	sent   []string
	times  []string
}

func (f *familyProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		f.t.Errorf("parsing form: %v", err)
	}
	q := r.Form.Get("query")
	f.mu.Lock()
	f.sent, f.times = append(f.sent, q), append(f.times, r.Form.Get("time"))
	f.mu.Unlock()
	fam := familyOf(q)
	a := vector(f.series[fam]...)
	if fam == f.fail {
		a = answer{status: http.StatusServiceUnavailable, body: `{"status":"error","errorType":"unavailable","error":"storage down"}`}
	}
	w.Header().Set("Content-Type", "application/json")
	if a.status != 0 {
		w.WriteHeader(a.status)
	}
	_, _ = w.Write([]byte(a.body))
}

func familyOf(q string) string {
	switch {
	case strings.Contains(q, "_bucket"):
		return "latency"
	case strings.Contains(q, `response_code=~"5.."`):
		return "errors"
	case strings.Contains(q, "istio_requests_total"):
		return "requests"
	}
	return "custom"
}

func newFamilyAnalyzer(t *testing.T, f *familyProm) *Analyzer {
	t.Helper()
	f.t = t
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := api.NewClient(api.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return NewAnalyzer(promv1.NewAPI(c), Options{})
}

// shop is the traffic of three rollouts in namespace shop: a healthy one,
// one whose canary fails 5% of requests, and one with no canary traffic.
func shop() map[string][]series {
	return map[string][]series{
		"requests": {workload("a", "6000"), workload("a-canary", "600"), workload("b", "6000"),
			workload("b-canary", "600"), workload("c", "6000")},
		"errors": {workload("a", "6"), workload("a-canary", "1"), workload("b", "6"), workload("b-canary", "30")},
		"latency": slices.Concat(bucketSeries("a", repeat(6000, 30)), bucketSeries("a-canary", repeat(600, 30)),
			bucketSeries("b", repeat(6000, 30)), bucketSeries("b-canary", repeat(600, 30)), bucketSeries("c", repeat(6000, 30))),
	}
}

func shopRequest(name string, at time.Time) Request {
	req := request(policy.Check{Metric: MetricErrorRate, Max: pct("1%", 0.01)},
		policy.Check{Metric: MetricLatencyP95, MaxRatio: ratio(1.5)})
	req.Stable, req.Canary, req.At = name, name+"-canary", at
	return req
}

func TestAnalyzeAll(t *testing.T) {
	t0 := time.Unix(atUnix, 0)
	tests := map[string]struct {
		reqs      []Request
		fail      string
		wantSent  int
		wantTimes []string
		check     func(t *testing.T, got, alone []Answer, sent []string)
	}{
		"three rollouts are answered with one query per family, each as if alone": {
			reqs:      []Request{shopRequest("a", t0), shopRequest("b", t0.Add(-2*time.Second)), shopRequest("c", t0.Add(-time.Second))},
			wantSent:  3,
			wantTimes: []string{"1767225600", "1767225600", "1767225600"},
			check: func(t *testing.T, got, alone []Answer, sent []string) {
				for _, q := range sent {
					if strings.Count(q, " @ ") != 3 || strings.Count(q, ") or (") != 2 {
						t.Errorf("query does not join three pinned windows: %s", q)
					}
				}
				if !strings.Contains(sent[0], "[60s] @ 1767225598.000") {
					t.Errorf("b's window is not pinned to its own end: %s", sent[0])
				}
				if got[1].Result.Verdict != VerdictFail || got[0].Result.Verdict == VerdictFail {
					t.Errorf("verdicts %s, %s: want only b failing", got[0].Result.Verdict, got[1].Result.Verdict)
				}
			},
		},
		"two rollouts sharing a workload go in separate rounds": {
			reqs:     []Request{shopRequest("a", t0), func() Request { r := shopRequest("a-canary", t0); r.Canary = "b"; return r }()},
			wantSent: 6,
		},
		"a failed family query fails every request that needed it, naming the request's own part": {
			reqs:     []Request{shopRequest("a", t0), shopRequest("b", t0)},
			fail:     "errors",
			wantSent: 2, // requests, then errors fails; latency is not asked for
			check: func(t *testing.T, got, _ []Answer, _ []string) {
				for i, a := range got {
					var qe *QueryError
					if !errors.As(a.Err, &qe) || qe.UserError || strings.Contains(qe.Query, " or ") || !strings.Contains(qe.Query, `"`+[]string{"a", "b"}[i]+`|`) {
						t.Errorf("request %d: error %v, want an outage naming its own query", i, a.Err)
					}
				}
			},
		},
		"a request without workloads fails alone": {
			reqs:     []Request{shopRequest("a", t0), func() Request { r := shopRequest("b", t0); r.Canary = ""; return r }()},
			wantSent: 3,
			check: func(t *testing.T, got, _ []Answer, _ []string) {
				if got[0].Err != nil || got[1].Err == nil {
					t.Errorf("errors %v, %v: want only the second", got[0].Err, got[1].Err)
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := &familyProm{series: shop(), fail: tc.fail}
			a := newFamilyAnalyzer(t, f)
			got := a.AnalyzeAll(context.Background(), tc.reqs)
			sent, times := slices.Clone(f.sent), slices.Clone(f.times)
			if len(sent) != tc.wantSent {
				t.Errorf("sent %d queries, want %d: %q", len(sent), tc.wantSent, sent)
			}
			if tc.wantTimes != nil && !reflect.DeepEqual(times, tc.wantTimes) {
				t.Errorf("evaluation times %q, want the latest end %q", times, tc.wantTimes)
			}
			alone := make([]Answer, len(tc.reqs))
			for i, req := range tc.reqs {
				alone[i].Result, alone[i].Err = a.Analyze(context.Background(), req)
				if (alone[i].Err == nil) != (got[i].Err == nil) || summary(alone[i].Result) != summary(got[i].Result) {
					t.Errorf("request %d: batched %+v (%v), alone %+v (%v)", i, got[i].Result, got[i].Err, alone[i].Result, alone[i].Err)
				}
			}
			if tc.check != nil {
				tc.check(t, got, alone, sent)
			}
		})
	}
}

func TestAnalyzeAllOfOneIsAnalyze(t *testing.T) {
	f := &familyProm{series: shop()}
	a := newFamilyAnalyzer(t, f)
	a.AnalyzeAll(context.Background(), []Request{shopRequest("a", time.Unix(atUnix, 0))})
	for _, q := range f.sent {
		if strings.Contains(q, " @ ") || strings.Contains(q, " or ") {
			t.Errorf("a lone analysis sent a batched query: %s", q)
		}
	}
}

func TestJoinOrIsBalanced(t *testing.T) {
	parts := make([]string, 1000)
	for i := range parts {
		parts[i] = "x"
	}
	q := joinOr(parts)
	depth, deepest := 0, 0
	for _, r := range q {
		switch r {
		case '(':
			depth++
			deepest = max(deepest, depth)
		case ')':
			depth--
		}
	}
	if strings.Count(q, " or ") != 999 || deepest > 10 {
		t.Errorf("%d ors nested %d deep; want 999 nested at most 10 deep", strings.Count(q, " or "), deepest)
	}
}

// summary is what a verdict says, NaNs and all (reflect.DeepEqual holds a
// NaN unequal to itself).
func summary(r Result) string {
	s := fmt.Sprintf("%s|%s|%v|%v|%v", r.Verdict, r.Message, r.CanaryRequests, r.StableRequests, r.Confident)
	for _, c := range r.Checks {
		s += fmt.Sprintf("|%s %s %v %v", c.Metric, c.Message, c.Canary, c.Stable)
	}
	return s
}
