package metrics

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshcanary/meshcanary/pkg/policy"
)

func TestQueriesRendersOneQueryPerSeriesForBothVersions(t *testing.T) {
	req := Request{
		Namespace: "shop",
		Stable:    "checkout",
		Canary:    "checkout-canary",
		Window:    30 * time.Second,
		Checks: []policy.Check{
			{Metric: MetricErrorRate, Max: pct("1%", 0.01)},
			{Metric: MetricLatencyP95, MaxRatio: ratio(1.2)},
			{Metric: MetricRequestRate, Min: num("1", 1)},
			{Metric: "apdex", Min: num("0.9", 0.9)},
		},
		Metrics: map[string]policy.MetricQuery{
			"apdex": {Query: `sum(rate(apdex_good{namespace="{{.Namespace}}",app="{{.Workload}}"}[{{.Window}}])) / sum(rate(apdex_total{namespace="{{.Namespace}}",app="{{.Workload}}"}[{{.Window}}]))`},
		},
	}
	want := []string{
		`sum by (destination_workload_namespace, destination_workload) (increase(istio_requests_total{reporter="destination",destination_workload_namespace="shop",destination_workload=~"checkout|checkout-canary"}[30s]))`,
		`sum by (destination_workload_namespace, destination_workload) (increase(istio_requests_total{reporter="destination",destination_workload_namespace="shop",destination_workload=~"checkout|checkout-canary",response_code=~"5.."}[30s]))`,
		`sum by (le, destination_workload_namespace, destination_workload) (increase(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace="shop",destination_workload=~"checkout|checkout-canary"}[30s]))`,
		`sum(rate(apdex_good{namespace="shop",app="checkout"}[30s])) / sum(rate(apdex_total{namespace="shop",app="checkout"}[30s]))`,
		`sum(rate(apdex_good{namespace="shop",app="checkout-canary"}[30s])) / sum(rate(apdex_total{namespace="shop",app="checkout-canary"}[30s]))`,
	}
	assertQueries(t, Queries(req), want)
}

func TestQueriesRunsOnlyWhatTheChecksNeed(t *testing.T) {
	const (
		requests = `sum by (destination_workload_namespace, destination_workload) (increase(istio_requests_total{reporter="destination",destination_workload_namespace="ns",destination_workload=~"a|b"}[60s]))`
		errors   = `sum by (destination_workload_namespace, destination_workload) (increase(istio_requests_total{reporter="destination",destination_workload_namespace="ns",destination_workload=~"a|b",response_code=~"5.."}[60s]))`
		buckets  = `sum by (le, destination_workload_namespace, destination_workload) (increase(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace="ns",destination_workload=~"a|b"}[60s]))`
	)
	tests := []struct {
		name   string
		checks []policy.Check
		want   []string
	}{
		{
			name: "without checks only the request count is queried, for minRequests",
			want: []string{requests},
		},
		{
			name:   "request-rate is derived from the request count",
			checks: []policy.Check{{Metric: MetricRequestRate, Min: num("1", 1)}},
			want:   []string{requests},
		},
		{
			name: "error-rate and success-rate share one 5xx query",
			checks: []policy.Check{
				{Metric: MetricSuccessRate, Min: pct("99%", 0.99)},
				{Metric: MetricErrorRate, Max: pct("1%", 0.01)},
			},
			want: []string{requests, errors},
		},
		{
			name: "all latency checks, of any quantile and however often, share one bucket query",
			checks: []policy.Check{
				{Metric: MetricLatencyP99, Max: secs("1s", 1)},
				{Metric: MetricLatencyP50, Max: secs("100ms", 0.1)},
				{Metric: MetricLatencyP95, MaxRatio: ratio(1.5)},
				{Metric: MetricLatencyP99, MaxRatio: ratio(1.5)},
			},
			want: []string{requests, buckets},
		},
		{
			name: "the bucket query runs where the first latency check is",
			checks: []policy.Check{
				{Metric: MetricLatencyP95, Max: secs("1s", 1)},
				{Metric: MetricErrorRate, Max: pct("1%", 0.01)},
				{Metric: MetricLatencyP50, Max: secs("100ms", 0.1)},
			},
			want: []string{requests, buckets, errors},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Queries(Request{Namespace: "ns", Stable: "a", Canary: "b", Window: time.Minute, Checks: tt.checks})
			assertQueries(t, got, tt.want)
		})
	}
}

func TestQueriesRenderCustomMetricsWithTheCustomWindow(t *testing.T) {
	const (
		requests = `sum by (destination_workload_namespace, destination_workload) (increase(istio_requests_total{reporter="destination",destination_workload_namespace="ns",destination_workload=~"a|b"}[%s]))`
		errors   = `sum by (destination_workload_namespace, destination_workload) (increase(istio_requests_total{reporter="destination",destination_workload_namespace="ns",destination_workload=~"a|b",response_code=~"5.."}[%s]))`
		buckets  = `sum by (le, destination_workload_namespace, destination_workload) (increase(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace="ns",destination_workload=~"a|b"}[%s]))`
		stable   = `sum(rate(apdex_good{app="a"}[%s])) / sum(rate(apdex_total{app="a"}[%s]))`
		canary   = `sum(rate(apdex_good{app="b"}[%s])) / sum(rate(apdex_total{app="b"}[%s]))`
	)
	tests := []struct {
		name                 string
		window, customWindow time.Duration
		builtin, custom      string
	}{
		{
			name:         "builtin queries count over the stage so far, custom ones over the custom window",
			window:       7 * time.Minute,
			customWindow: time.Minute,
			builtin:      "420s",
			custom:       "60s",
		},
		{
			name:    "a zero custom window means the window",
			window:  7 * time.Minute,
			builtin: "420s",
			custom:  "420s",
		},
		{
			name:         "the custom window is rendered as whole seconds too",
			window:       time.Minute,
			customWindow: 1500 * time.Millisecond,
			builtin:      "60s",
			custom:       "2s",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Queries(Request{
				Namespace: "ns", Stable: "a", Canary: "b", Window: tt.window, CustomWindow: tt.customWindow,
				Checks: []policy.Check{
					{Metric: MetricErrorRate, Max: pct("1%", 0.01)},
					{Metric: "apdex", Min: num("0.9", 0.9)},
					{Metric: MetricLatencyP95, MaxRatio: ratio(1.5)},
				},
				Metrics: map[string]policy.MetricQuery{
					"apdex": {Query: `sum(rate(apdex_good{app="{{.Workload}}"}[{{.Window}}])) / sum(rate(apdex_total{app="{{.Workload}}"}[{{.Window}}]))`},
				},
			})
			want := []string{
				fmt.Sprintf(requests, tt.builtin),
				fmt.Sprintf(errors, tt.builtin),
				fmt.Sprintf(stable, tt.custom, tt.custom),
				fmt.Sprintf(canary, tt.custom, tt.custom),
				fmt.Sprintf(buckets, tt.builtin),
			}
			assertQueries(t, got, want)
		})
	}
}

func TestQueriesKeepACustomMetricNamedLatencyApartFromTheBucketQuery(t *testing.T) {
	const (
		requests = `sum by (destination_workload_namespace, destination_workload) (increase(istio_requests_total{reporter="destination",destination_workload_namespace="ns",destination_workload=~"a|b"}[60s]))`
		buckets  = `sum by (le, destination_workload_namespace, destination_workload) (increase(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace="ns",destination_workload=~"a|b"}[60s]))`
		stable   = `max(app_latency_seconds{namespace="ns",app="a"})`
		canary   = `max(app_latency_seconds{namespace="ns",app="b"})`
	)
	custom := policy.Check{Metric: "latency", Max: num("1", 1)}
	p95 := policy.Check{Metric: MetricLatencyP95, Max: secs("1s", 1)}
	tests := []struct {
		name   string
		checks []policy.Check
		want   []string
	}{
		{"custom first", []policy.Check{custom, p95}, []string{requests, stable, canary, buckets}},
		{"builtin first", []policy.Check{p95, custom}, []string{requests, buckets, stable, canary}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Queries(Request{
				Namespace: "ns", Stable: "a", Canary: "b", Window: time.Minute, Checks: tt.checks,
				Metrics: map[string]policy.MetricQuery{
					"latency": {Query: `max(app_latency_seconds{namespace="{{.Namespace}}",app="{{.Workload}}"})`},
				},
			})
			assertQueries(t, got, tt.want)
		})
	}
}

func TestQueriesQuoteWorkloadNamesAsRegexpsInsidePromQLStrings(t *testing.T) {
	got := Queries(Request{Namespace: `we"ird`, Stable: "web.v1", Canary: "web.v1+canary", Window: 30 * time.Second})
	// regexp.QuoteMeta gives web\.v1, whose backslash PromQL's Go-style
	// string unquoting would eat unless doubled.
	want := []string{
		`sum by (destination_workload_namespace, destination_workload) (increase(istio_requests_total{reporter="destination",destination_workload_namespace="we\"ird",destination_workload=~"web\\.v1|web\\.v1\\+canary"}[30s]))`,
	}
	assertQueries(t, got, want)
}

func TestWindowRendersAsWholeSeconds(t *testing.T) {
	tests := []struct {
		name   string
		window time.Duration
		want   string
	}{
		{"thirty seconds", 30 * time.Second, "30s"},
		{"minutes become seconds", 90 * time.Second, "90s"},
		{"two minutes", 2 * time.Minute, "120s"},
		{"a fraction rounds to the nearest second", 1500 * time.Millisecond, "2s"},
		{"sub-second windows become the one-second minimum", 200 * time.Millisecond, "1s"},
		{"a zero window becomes the one-second minimum", 0, "1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := Queries(Request{Namespace: "ns", Stable: "a", Canary: "b", Window: tt.window})[0]
			if !strings.HasSuffix(q, "["+tt.want+"]))") {
				t.Errorf("query %s does not end in [%s]))", q, tt.want)
			}
			if got := promDuration(tt.window); got != tt.want {
				t.Errorf("promDuration(%v) = %s, want %s", tt.window, got, tt.want)
			}
		})
	}
}

func TestQueriesLeavesOutCustomMetricsThatCannotBeRendered(t *testing.T) {
	req := Request{
		Namespace: "ns", Stable: "a", Canary: "b", Window: 30 * time.Second,
		Checks: []policy.Check{
			{Metric: "broken", Max: num("1", 1)},
			{Metric: "undefined", Max: num("1", 1)},
			{Metric: "ok", Max: num("1", 1)},
		},
		Metrics: map[string]policy.MetricQuery{
			"broken": {Query: `up{job="{{.Job}}"}`},
			"ok":     {Query: `sum(up{namespace="{{.Namespace}}",pod=~"{{.Workload}}-.*"})`},
		},
	}
	want := []string{
		`sum by (destination_workload_namespace, destination_workload) (increase(istio_requests_total{reporter="destination",destination_workload_namespace="ns",destination_workload=~"a|b"}[30s]))`,
		`sum(up{namespace="ns",pod=~"a-.*"})`,
		`sum(up{namespace="ns",pod=~"b-.*"})`,
	}
	assertQueries(t, Queries(req), want)
}

func assertQueries(t *testing.T, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("queries:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}
