package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/meshcanary/meshcanary/pkg/policy"
)

// atUnix is the caller's clock in these tests; the fake checks that Analyze
// passes it on as the evaluation time.
const atUnix = 1767225600 // 2026-01-01T00:00:00Z

// answer is how the fake Prometheus replies to one query.
type answer struct {
	status int    // HTTP status; 200 when zero
	body   string // the whole JSON body
}

// fakeProm serves /api/v1/query from answers keyed by the query text, and
// fails the test on a query it was not told about, so that each test also
// pins exactly which queries Analyze sends.
type fakeProm struct {
	t       *testing.T
	answers map[string]answer
	mu      sync.Mutex
	queries []string
}

func (f *fakeProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/query" {
		f.t.Errorf("unexpected path %s", r.URL.Path)
		http.NotFound(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		f.t.Errorf("parsing form: %v", err)
	}
	q := r.Form.Get("query")
	if got, want := r.Form.Get("time"), fmt.Sprint(atUnix); got != want {
		f.t.Errorf("query time = %q, want %q", got, want)
	}
	f.mu.Lock()
	f.queries = append(f.queries, q)
	f.mu.Unlock()
	a, ok := f.answers[q]
	if !ok {
		f.t.Errorf("unexpected query %s", q)
		a = badData("unexpected query")
	}
	w.Header().Set("Content-Type", "application/json")
	if a.status != 0 {
		w.WriteHeader(a.status)
	}
	_, _ = w.Write([]byte(a.body))
}

// series is one sample of an instant vector.
type series struct {
	labels map[string]string
	value  string
}

func workload(name, value string) series {
	return series{labels: map[string]string{namespaceLabel: "shop", workloadLabel: name}, value: value}
}

// bucketSeries is the answer's part for one version that served requests
// taking latenciesMs: one sample per Istio default bucket, labelled with
// its le in milliseconds as Istio reports it.
func bucketSeries(name string, latenciesMs ...[]float64) []series {
	return bucketSeriesIn("shop", name, latenciesMs...)
}

func bucketSeriesIn(namespace, name string, latenciesMs ...[]float64) []series {
	counts := istioCounts(slices.Concat(latenciesMs...))
	out := make([]series, len(counts))
	for i, c := range counts {
		le := strconv.FormatFloat(istioBucketsMs[i], 'f', -1, 64)
		if math.IsInf(istioBucketsMs[i], 1) {
			le = "+Inf"
		}
		out[i] = series{
			labels: map[string]string{namespaceLabel: namespace, workloadLabel: name, "le": le},
			value:  strconv.FormatFloat(c, 'f', -1, 64),
		}
	}
	return out
}

func vector(ss ...series) answer {
	result := make([]map[string]any, 0, len(ss))
	for _, s := range ss {
		result = append(result, map[string]any{"metric": s.labels, "value": []any{atUnix, s.value}})
	}
	return success(map[string]any{"resultType": "vector", "result": result})
}

func scalar(value string) answer {
	return success(map[string]any{"resultType": "scalar", "result": []any{atUnix, value}})
}

func success(data any) answer {
	b, err := json.Marshal(map[string]any{"status": "success", "data": data})
	if err != nil {
		panic(err)
	}
	return answer{body: string(b)}
}

// annotated is a with the given top-level field of the response set, as
// Prometheus sends "warnings" (a partial response among them) and "infos"
// next to "data"; client_golang hands them back apart from the value.
func annotated(a answer, field string, notes ...string) answer {
	var body map[string]any
	if err := json.Unmarshal([]byte(a.body), &body); err != nil {
		panic(err)
	}
	body[field] = notes
	b, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	return answer{status: a.status, body: string(b)}
}

func badData(msg string) answer {
	return answer{status: http.StatusBadRequest, body: fmt.Sprintf(`{"status":"error","errorType":"bad_data","error":%q}`, msg)}
}

func newAnalyzer(t *testing.T, answers map[string]answer) (*Analyzer, *fakeProm) {
	t.Helper()
	f := &fakeProm{t: t, answers: answers}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := api.NewClient(api.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return NewAnalyzer(promv1.NewAPI(c), Options{}), f
}

const (
	qRequests    = `sum by (destination_workload_namespace, destination_workload) (increase(istio_requests_total{reporter="destination",destination_workload_namespace="shop",destination_workload=~"checkout|checkout-canary"}[60s]))`
	qErrors      = `sum by (destination_workload_namespace, destination_workload) (increase(istio_requests_total{reporter="destination",destination_workload_namespace="shop",destination_workload=~"checkout|checkout-canary",response_code=~"5.."}[60s]))`
	qBuckets     = `sum by (le, destination_workload_namespace, destination_workload) (increase(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace="shop",destination_workload=~"checkout|checkout-canary"}[60s]))`
	qApdexStable = `sum(rate(apdex_good{app="checkout"}[60s])) / sum(rate(apdex_total{app="checkout"}[60s]))`
	qApdexCanary = `sum(rate(apdex_good{app="checkout-canary"}[60s])) / sum(rate(apdex_total{app="checkout-canary"}[60s]))`
)

func request(checks ...policy.Check) Request {
	return Request{
		Namespace: "shop",
		Stable:    "checkout",
		Canary:    "checkout-canary",
		Window:    time.Minute,
		At:        time.Unix(atUnix, 0),
		Checks:    checks,
		Metrics: map[string]policy.MetricQuery{
			"apdex":  {Query: `sum(rate(apdex_good{app="{{.Workload}}"}[{{.Window}}])) / sum(rate(apdex_total{app="{{.Workload}}"}[{{.Window}}]))`},
			"pods":   {Query: `count by (pod) (up{app="{{.Workload}}"})`},
			"broken": {Query: `up{job="{{.Job}}"}`},
		},
		MinRequests: 50,
	}
}

func TestAnalyzeReadsBothVersionsFromOneAnswer(t *testing.T) {
	a, f := newAnalyzer(t, map[string]answer{
		qRequests: vector(
			workload("checkout", "6000"),
			workload("checkout-canary", "600"),
			// Another rollout sharing the query must not leak in.
			series{labels: map[string]string{namespaceLabel: "other", workloadLabel: "checkout"}, value: "5"},
		),
		qErrors: vector(workload("checkout", "6"), workload("checkout-canary", "30")),
		// Stable: 5400 up to 50ms, 5700 up to 100ms, so p95 = 100ms.
		// Canary: half at 70ms, half at 200ms, so p95 = 100 + 150 ×
		// 270/300 = 235ms, and 600 − (300 + 300 × 20/150) = 260 of 600
		// (from 36.22%) slower than 1.2 × 100ms, against stable's 260 of
		// 6000 (up to 5.43%). The other namespace's slow histogram, if it
		// leaked into stable's, would move stable's p95.
		qBuckets: vector(slices.Concat(
			bucketSeries("checkout", repeat(5400, 30), repeat(300, 70), repeat(300, 150)),
			bucketSeries("checkout-canary", repeat(300, 70), repeat(300, 200)),
			bucketSeriesIn("other", "checkout", repeat(5, 5000)),
		)...),
	})
	got, err := a.Analyze(context.Background(), request(
		policy.Check{Metric: MetricErrorRate, Max: pct("1%", 0.01)},
		policy.Check{Metric: MetricLatencyP95, MaxRatio: ratio(1.2)},
		policy.Check{Metric: MetricRequestRate, Min: num("1", 1)},
	))
	if err != nil {
		t.Fatalf("Analyze: %v", err)
	}
	if len(f.queries) != 3 {
		t.Errorf("sent %d queries, want 3: %q", len(f.queries), f.queries)
	}
	if got.Verdict != VerdictFail {
		t.Errorf("verdict = %s, want Fail", got.Verdict)
	}
	const msg = "error-rate canary 5% (30/600, 80% interval 2.67%–8.33%) > max 1% (stable 0.1% (6/6000, 80% interval 0.02%–0.32%)); " +
		"latency-p95 canary 235ms (260/600 slower than 120ms, 80% interval 37.02%–49.8%) > maxRatio 1.2x × stable 100ms = 120ms: " +
		"43.33% of canary requests slower vs 4.33% of stable's (stable 100ms)"
	if got.Message != msg {
		t.Errorf("message:\n got %q\nwant %q", got.Message, msg)
	}
	if got.CanaryRequests != 600 || got.StableRequests != 6000 || got.Window != time.Minute {
		t.Errorf("requests %v/%v window %v, want 600/6000 1m", got.CanaryRequests, got.StableRequests, got.Window)
	}
	if c := got.Checks[2]; c.Canary != 10 || c.Stable != 100 || c.Verdict != VerdictPass {
		t.Errorf("request-rate check = %+v, want canary 10/s, stable 100/s, Pass", c)
	}
}

func TestAnalyzeWithoutDataIsInconclusiveNotAnError(t *testing.T) {
	a, _ := newAnalyzer(t, map[string]answer{
		qRequests: vector(),
		qErrors:   vector(),
		qBuckets:  vector(),
	})
	got, err := a.Analyze(context.Background(), request(
		policy.Check{Metric: MetricErrorRate, Max: pct("1%", 0.01)},
		policy.Check{Metric: MetricLatencyP95, Max: secs("300ms", 0.3)},
	))
	if err != nil {
		t.Fatalf("Analyze: %v", err)
	}
	const msg = "inconclusive: canary served 0 requests < minRequests 50; error-rate canary served no requests; latency-p95 canary has no data (stable no data)"
	if got.Verdict != VerdictInconclusive || got.Message != msg || !got.LowTraffic {
		t.Errorf("got %s %q LowTraffic=%v, want Inconclusive %q for lack of canary requests", got.Verdict, got.Message, got.LowTraffic, msg)
	}
}

func TestAnalyzeWithoutStableSeries(t *testing.T) {
	// Stable's series are absent; the canary is clean and fast. 5400 up
	// to 50ms, 5900 up to 100ms: p95 = 50 + 50 × 300/500 = 80ms.
	answers := map[string]answer{
		qRequests: vector(workload("checkout-canary", "6000")),
		qErrors:   vector(),
		qBuckets:  vector(bucketSeries("checkout-canary", repeat(5400, 30), repeat(500, 70), repeat(100, 150))...),
	}
	checks := []policy.Check{
		{Metric: MetricErrorRate, Max: pct("1%", 0.01), MaxIncrease: pct("0.5%", 0.005)},
		{Metric: MetricLatencyP95, MaxRatio: ratio(1.2)},
	}
	tests := []struct {
		name    string
		weight  int
		verdict Verdict
		message string
		missing bool
	}{
		{
			// 0 of 6000 reach up to 0.13%, within max 1%.
			name:    "a canary at 100% of traffic passes on its absolute bounds",
			weight:  100,
			verdict: VerdictPass,
			message: "all 2 checks passed: error-rate canary 0% (0/6000, 80% interval 0%–0.11%) within max 1% (stable served no requests), " +
				"latency-p95 canary 80ms within its absolute bounds (none; relative bounds dropped) (stable served no requests)",
		},
		{
			name:    "a canary at 50% of traffic lacks stable's data and cannot pass",
			weight:  50,
			verdict: VerdictInconclusive,
			message: "inconclusive: error-rate canary 0% (0/6000, 80% interval 0%–0.11%): maxIncrease not judged, stable has no requests while the canary has 50% of traffic; " +
				"latency-p95 canary 80ms: maxRatio not judged, stable has no requests while the canary has 50% of traffic",
			missing: true,
		},
		{
			name:    "a request without a canary weight is not taken for 100%",
			verdict: VerdictInconclusive,
			message: "inconclusive: error-rate canary 0% (0/6000, 80% interval 0%–0.11%): maxIncrease not judged, stable has no requests while the canary has 0% of traffic; " +
				"latency-p95 canary 80ms: maxRatio not judged, stable has no requests while the canary has 0% of traffic",
			missing: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := newAnalyzer(t, answers)
			req := request(checks...)
			req.CanaryWeight = tt.weight
			got, err := a.Analyze(context.Background(), req)
			if err != nil {
				t.Fatalf("Analyze: %v", err)
			}
			if got.Verdict != tt.verdict || got.Message != tt.message {
				t.Errorf("got %s %q\nwant %s %q", got.Verdict, got.Message, tt.verdict, tt.message)
			}
			if got.Evidence != (tt.verdict == VerdictPass) || got.LowTraffic {
				t.Errorf("Evidence = %v, LowTraffic = %v: want evidence exactly when passing, and never low traffic on 6000 requests", got.Evidence, got.LowTraffic)
			}
			for _, c := range got.Checks {
				if c.Missing != tt.missing {
					t.Errorf("%s Missing = %v, want %v", c.Metric, c.Missing, tt.missing)
				}
			}
		})
	}
}

func TestAnalyzeDecidesAllLatencyChecksOnOneBucketQuery(t *testing.T) {
	// The rollback this replaces: a canary at 1% of traffic whose 20
	// requests put p95 at 200ms inside the 100–250ms bucket, against
	// stable's 132ms (see TestEvaluateLatencyOnHistograms).
	a, f := newAnalyzer(t, map[string]answer{
		qRequests: vector(workload("checkout", "2000"), workload("checkout-canary", "20")),
		qBuckets: vector(slices.Concat(
			bucketSeries("checkout", logNormal(2000, 40, 0.6)),
			bucketSeries("checkout-canary", logNormal(18, 40, 0.6), []float64{140, 180}),
		)...),
	})
	req := request(
		policy.Check{Metric: MetricLatencyP50, MaxRatio: ratio(1.5)},
		policy.Check{Metric: MetricLatencyP95, MaxRatio: ratio(1.5)},
	)
	req.MinRequests = 20
	got, err := a.Analyze(context.Background(), req)
	if err != nil {
		t.Fatalf("Analyze: %v", err)
	}
	if want := []string{qRequests, qBuckets}; !slices.Equal(f.queries, want) {
		t.Errorf("queries:\n got %q\nwant %q", f.queries, want)
	}
	// Canary p50: 4 up to 25ms, 12 up to 50ms, 25 + 25 × 6/8 = 43.75ms;
	// slower than 1.5 × 41.54ms: 20 − (12 + 5 × 12.31/50) = 6.77 of 20,
	// from 9.02%, not above stable's 50%. Neither check fails, but the one
	// slow request puts p95's estimate past its bound: the window waits.
	const msg = "inconclusive: latency-p50 canary 44ms (6/20 slower than 62ms, 80% interval 11.75%–62.45%) not yet decided against maxRatio 1.5x (stable 42ms); " +
		"latency-p95 canary 200ms (1/20 slower than 199ms, 80% interval 0.07%–27.51%) past maxRatio 1.5x by its estimate, not yet decided (stable 132ms)"
	if got.Verdict != VerdictInconclusive || got.Message != msg || !got.AwaitingEvidence {
		t.Errorf("got %s %q, want Inconclusive awaiting evidence %q", got.Verdict, got.Message, msg)
	}
	want := []struct{ canary, stable float64 }{
		{0.04375, 0.025 + 0.025*567/857},
		{0.2, 0.1324},
	}
	for i, w := range want {
		c := got.Checks[i]
		if math.Abs(c.Canary-w.canary) > 1e-12 || math.Abs(c.Stable-w.stable) > 1e-12 {
			t.Errorf("%s = %v/%v, want %v/%v in seconds", c.Metric, c.Canary, c.Stable, w.canary, w.stable)
		}
	}
}

func TestAnalyzeReadsExtrapolatedBucketCounts(t *testing.T) {
	// increase() extrapolates each bucket on its own: fractional counts,
	// and a +Inf bucket a little below the 250ms one. le may come in any
	// order and spelling.
	bucket := func(le, v string) series {
		return series{labels: map[string]string{namespaceLabel: "shop", workloadLabel: "checkout-canary", "le": le}, value: v}
	}
	a, _ := newAnalyzer(t, map[string]answer{
		qRequests: vector(workload("checkout", "0"), workload("checkout-canary", "600")),
		qBuckets: vector(
			bucket("+Inf", "599.5"),
			bucket("250", "600.3"),
			bucket("1e+02", "300.15"),
			bucket("50", "0"),
		),
	})
	got, err := a.Analyze(context.Background(), request(policy.Check{Metric: MetricLatencyP95, Max: secs("300ms", 0.3)}))
	if err != nil {
		t.Fatalf("Analyze: %v", err)
	}
	// Total 600.3 (raised from 599.5), rank 570.285: 100 + 150 ×
	// 270.135/300.15 = 235ms.
	c := got.Checks[0]
	if math.Abs(c.Canary-0.235) > 1e-9 || c.Verdict != VerdictPass {
		t.Errorf("got %v %s (%s), want p95 235ms and Pass", c.Canary, c.Verdict, c.Message)
	}
}

func TestAnalyzeReadsCustomMetricsPerVersion(t *testing.T) {
	a, _ := newAnalyzer(t, map[string]answer{
		qRequests:    vector(workload("checkout", "6000"), workload("checkout-canary", "600")),
		qApdexStable: scalar("0.98"),
		qApdexCanary: vector(series{labels: map[string]string{}, value: "0.85"}),
	})
	got, err := a.Analyze(context.Background(), request(policy.Check{Metric: "apdex", Min: num("0.9", 0.9)}))
	if err != nil {
		t.Fatalf("Analyze: %v", err)
	}
	if got.Verdict != VerdictFail || got.Message != "apdex canary 0.85 < min 0.9 (stable 0.98)" {
		t.Errorf("got %s %q", got.Verdict, got.Message)
	}
}

func TestAnalyzePassesPrometheusWarningsThrough(t *testing.T) {
	// Without annotations this answer fails the canary: 30 of 600 5xx,
	// from 2.43% > max 1%.
	requests := vector(workload("checkout", "6000"), workload("checkout-canary", "600"))
	errs := vector(workload("checkout", "6"), workload("checkout-canary", "30"))
	buckets := vector(slices.Concat(
		bucketSeries("checkout", logNormal(6000, 40, 0.6)),
		bucketSeries("checkout-canary", logNormal(600, 40, 0.6)),
	)...)
	checks := []policy.Check{
		{Metric: MetricErrorRate, Max: pct("1%", 0.01)},
		{Metric: MetricLatencyP95, MaxRatio: ratio(1.5)},
	}
	const failing = "error-rate canary 5% (30/600, 80% interval 2.67%–8.33%) > max 1% (stable 0.1% (6/6000, 80% interval 0.02%–0.32%))"
	tests := []struct {
		name    string
		answers map[string]answer
		verdict Verdict
		message string
		missing bool
	}{
		{
			name:    "without annotations the window is judged",
			answers: map[string]answer{qRequests: requests, qErrors: errs, qBuckets: buckets},
			verdict: VerdictFail,
			message: failing,
		},
		{
			name: "a partial response on one query makes the window inconclusive with the warning in the message",
			answers: map[string]answer{
				qRequests: requests,
				qErrors:   annotated(errs, "warnings", "PromQL warning: partial response, store eu-1 unavailable"),
				qBuckets:  buckets,
			},
			verdict: VerdictInconclusive,
			message: "inconclusive: Prometheus answered with warnings (partial data): PromQL warning: partial response, store eu-1 unavailable",
			missing: true,
		},
		{
			name: "the warnings of every query are in the message, in the order the queries ran",
			answers: map[string]answer{
				qRequests: annotated(requests, "warnings", "first"),
				qErrors:   errs,
				qBuckets:  annotated(buckets, "warnings", "second", "third"),
			},
			verdict: VerdictInconclusive,
			message: "inconclusive: Prometheus answered with warnings (partial data): first; second; third",
			missing: true,
		},
		{
			name: "infos are no warnings and leave the verdict alone",
			answers: map[string]answer{
				qRequests: annotated(requests, "infos", "PromQL info: metric might not be a counter"),
				qErrors:   errs,
				qBuckets:  buckets,
			},
			verdict: VerdictFail,
			message: failing,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, f := newAnalyzer(t, tt.answers)
			got, err := a.Analyze(context.Background(), request(checks...))
			if err != nil {
				t.Fatalf("Analyze: %v", err)
			}
			if want := []string{qRequests, qErrors, qBuckets}; !slices.Equal(f.queries, want) {
				t.Errorf("queries:\n got %q\nwant %q", f.queries, want)
			}
			if got.Verdict != tt.verdict || got.Message != tt.message {
				t.Errorf("got %s %q\nwant %s %q", got.Verdict, got.Message, tt.verdict, tt.message)
			}
			if tt.verdict == VerdictInconclusive && got.Evidence {
				t.Error("a window with warnings claims evidence")
			}
			if len(got.Checks) != len(checks) {
				t.Fatalf("got %d checks, want %d", len(got.Checks), len(checks))
			}
			for _, c := range got.Checks {
				if c.Missing != tt.missing {
					t.Errorf("%s Missing = %v, want %v (%s)", c.Metric, c.Missing, tt.missing, c.Message)
				}
			}
			// The values are still read and reported.
			if c := got.Checks[0]; c.Canary != 0.05 || c.Stable != 0.001 {
				t.Errorf("error-rate values = %v/%v, want 0.05/0.001", c.Canary, c.Stable)
			}
		})
	}
}

func TestAnalyzeRendersCustomMetricsWithTheCustomWindow(t *testing.T) {
	// The stage's evidence so far is 60s; the custom metric is judged
	// over the last 30s, as its template expects.
	const (
		apdexStable = `sum(rate(apdex_good{app="checkout"}[30s])) / sum(rate(apdex_total{app="checkout"}[30s]))`
		apdexCanary = `sum(rate(apdex_good{app="checkout-canary"}[30s])) / sum(rate(apdex_total{app="checkout-canary"}[30s]))`
	)
	a, f := newAnalyzer(t, map[string]answer{
		qRequests:   vector(workload("checkout", "6000"), workload("checkout-canary", "600")),
		qErrors:     vector(workload("checkout", "0"), workload("checkout-canary", "0")),
		apdexStable: scalar("0.98"),
		apdexCanary: scalar("0.85"),
	})
	req := request(
		policy.Check{Metric: MetricErrorRate, Max: pct("5%", 0.05)},
		policy.Check{Metric: "apdex", Min: num("0.9", 0.9)},
	)
	req.CustomWindow = 30 * time.Second
	got, err := a.Analyze(context.Background(), req)
	if err != nil {
		t.Fatalf("Analyze: %v", err)
	}
	if want := []string{qRequests, qErrors, apdexStable, apdexCanary}; !slices.Equal(f.queries, want) {
		t.Errorf("queries:\n got %q\nwant %q", f.queries, want)
	}
	// request-rate and the result's window stay those of Window.
	if got.Window != time.Minute || got.Verdict != VerdictFail || got.Message != "apdex canary 0.85 < min 0.9 (stable 0.98)" {
		t.Errorf("got window %v %s %q, want 1m Fail on apdex", got.Window, got.Verdict, got.Message)
	}
}

func TestAnalyzeErrors(t *testing.T) {
	unavailable := answer{status: http.StatusServiceUnavailable, body: "upstream connect error"}
	requests := vector(workload("checkout", "6000"), workload("checkout-canary", "600"))
	tests := []struct {
		name      string
		answers   map[string]answer
		check     policy.Check
		userError bool
		metric    string
		contains  string
		// promType, when set, is the Prometheus error type expected in
		// the chain.
		promType promv1.ErrorType
	}{
		{
			name:     "a 503 from Prometheus is an outage, not the user's fault",
			answers:  map[string]answer{qRequests: unavailable},
			check:    policy.Check{Metric: MetricErrorRate, Max: pct("1%", 0.01)},
			metric:   "requests",
			contains: "server error: 503",
			promType: promv1.ErrServer,
		},
		{
			name:      "bad_data for a custom query is the user's broken query",
			answers:   map[string]answer{qRequests: requests, qApdexStable: badData(`parse error: unexpected "}"`)},
			check:     policy.Check{Metric: "apdex", Min: num("0.9", 0.9)},
			userError: true,
			metric:    "apdex",
			contains:  `parse error`,
			promType:  promv1.ErrBadData,
		},
		{
			name:     "bad_data for a builtin query is not blamed on the user",
			answers:  map[string]answer{qRequests: badData("parse error")},
			check:    policy.Check{Metric: MetricErrorRate, Max: pct("1%", 0.01)},
			metric:   "requests",
			promType: promv1.ErrBadData,
		},
		{
			name: "a custom metric returning two series is a user error naming the metric",
			answers: map[string]answer{
				qRequests: requests,
				`count by (pod) (up{app="checkout"})`: vector(
					series{labels: map[string]string{"pod": "checkout-1"}, value: "1"},
					series{labels: map[string]string{"pod": "checkout-2"}, value: "1"},
				),
			},
			check:     policy.Check{Metric: "pods", Min: num("1", 1)},
			userError: true,
			metric:    "pods",
			contains:  "metric pods: query `count by (pod) (up{app=\"checkout\"})`: returned 2 series, want one",
		},
		{
			name: "a bucket bound that is not a number is not blamed on the user",
			answers: map[string]answer{
				qRequests: requests,
				qBuckets: vector(series{
					labels: map[string]string{namespaceLabel: "shop", workloadLabel: "checkout", "le": "fast"},
					value:  "1",
				}),
			},
			check:    policy.Check{Metric: MetricLatencyP95, Max: secs("300ms", 0.3)},
			metric:   MetricLatencyP95,
			contains: `bucket bound "fast"`,
		},
		{
			name:      "a custom template that cannot be executed is a user error and sends no query for it",
			answers:   map[string]answer{qRequests: requests},
			check:     policy.Check{Metric: "broken", Max: num("1", 1)},
			userError: true,
			metric:    "broken",
			contains:  "executing query template",
		},
		{
			name:      "a check on an undefined metric is a user error",
			answers:   map[string]answer{qRequests: requests},
			check:     policy.Check{Metric: "latency-p42", Max: secs("1s", 1)},
			userError: true,
			metric:    "latency-p42",
			contains:  "unknown metric",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := newAnalyzer(t, tt.answers)
			_, err := a.Analyze(context.Background(), request(tt.check))
			if err == nil {
				t.Fatal("Analyze succeeded, want an error")
			}
			if IsUserError(err) != tt.userError {
				t.Errorf("IsUserError = %v, want %v (%v)", !tt.userError, tt.userError, err)
			}
			var qe *QueryError
			if !errors.As(err, &qe) {
				t.Fatalf("error %v is not a *QueryError", err)
			}
			if qe.Metric != tt.metric {
				t.Errorf("Metric = %q, want %q", qe.Metric, tt.metric)
			}
			if !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error %q does not contain %q", err, tt.contains)
			}
			if tt.promType != "" {
				var pe *promv1.Error
				if !errors.As(err, &pe) || pe.Type != tt.promType {
					t.Errorf("error %v does not wrap a Prometheus %s error", err, tt.promType)
				}
			}
		})
	}
}

func TestAnalyzeTimeoutIsAnOutage(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	c, err := api.NewClient(api.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = NewAnalyzer(promv1.NewAPI(c), Options{}).Analyze(ctx, request())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
	}
	if IsUserError(err) {
		t.Errorf("a timeout was blamed on the user: %v", err)
	}
}

func TestIsUserErrorLooksThroughWrapping(t *testing.T) {
	err := fmt.Errorf("window 3: %w", &QueryError{Metric: "apdex", UserError: true, Err: errors.New("boom")})
	if !IsUserError(err) {
		t.Error("IsUserError = false for a wrapped user QueryError")
	}
	if IsUserError(errors.New("connection refused")) {
		t.Error("IsUserError = true for a plain error")
	}
}
