package metrics

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/meshcanary/meshcanary/pkg/policy"
)

// Builtin metric names, as the policy file spells them.
const (
	MetricErrorRate   = policy.MetricErrorRate
	MetricSuccessRate = policy.MetricSuccessRate
	MetricRequestRate = policy.MetricRequestRate
	MetricLatencyP50  = policy.MetricLatencyP50
	MetricLatencyP95  = policy.MetricLatencyP95
	MetricLatencyP99  = policy.MetricLatencyP99
)

// requestsMetric names the request count in a QueryError; it is not a
// metric a check can use, which is why it is not exported with the others.
const requestsMetric = "requests"

const (
	groupBy        = "destination_workload_namespace, destination_workload"
	workloadLabel  = "destination_workload"
	namespaceLabel = "destination_workload_namespace"
)

// queryKind says how an answer is read back into Samples.
type queryKind int

const (
	kindRequests queryKind = iota
	kindErrors
	kindLatency
	kindCustom
)

// family names what a query of this kind reads, for QueryStat.
func (k queryKind) family() string {
	switch k {
	case kindRequests:
		return "requests"
	case kindErrors:
		return "errors"
	case kindLatency:
		return "latency"
	}
	return "custom"
}

// plannedQuery is one query Analyze runs. A plannedQuery with err set could
// not be built (a user's mistake); Analyze reports it, Queries leaves it out.
type plannedQuery struct {
	kind   queryKind
	metric string
	// canary is set for custom queries, which are rendered per version.
	canary bool
	promql string
	err    *QueryError
}

// latencyQuantile maps the builtin latency metrics to their quantile.
func latencyQuantile(metric string) (float64, bool) {
	switch metric {
	case MetricLatencyP50:
		return 0.5, true
	case MetricLatencyP95:
		return 0.95, true
	case MetricLatencyP99:
		return 0.99, true
	}
	return 0, false
}

func isBuiltin(metric string) bool {
	switch metric {
	case MetricErrorRate, MetricSuccessRate, MetricRequestRate:
		return true
	}
	_, ok := latencyQuantile(metric)
	return ok
}

// Queries returns the PromQL that Analyze would run for req, in the order it
// runs them. Custom metrics whose template cannot be rendered and unknown
// metrics are left out; Analyze reports them as user errors.
func Queries(req Request) []string {
	var out []string
	for _, q := range plan(req, false) {
		if q.err == nil {
			out = append(out, q.promql)
		}
	}
	return out
}

// plan lists the queries the checks of req need: the request count always,
// the 5xx count only for shares, one bucket query shared by every latency
// check and each custom metric once per version. pinned evaluates the
// builtin ones at req.At whatever the query's own time (PromQL's @), so
// that one query can join the windows of several requests.
func plan(req Request, pinned bool) []plannedQuery {
	window := "[" + promDuration(req.Window) + "]"
	if pinned {
		window += " @ " + strconv.FormatFloat(float64(req.At.UnixMilli())/1000, 'f', 3, 64)
	}
	sel := selector(req.Namespace, req.Stable, req.Canary)
	qs := []plannedQuery{{
		kind:   kindRequests,
		metric: requestsMetric,
		promql: countQuery(sel, window),
	}}
	seen := map[string]bool{}
	for _, c := range req.planned() {
		m := c.Metric
		key := m
		if m == MetricSuccessRate {
			key = MetricErrorRate // both read the same 5xx count
		}
		if _, ok := latencyQuantile(m); ok {
			// Every latency check reads the same histogram. The key is a
			// builtin name so that no custom metric (say, one named
			// "latency") can share it.
			key = MetricLatencyP50
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		switch {
		case m == MetricErrorRate || m == MetricSuccessRate:
			qs = append(qs, plannedQuery{
				kind:   kindErrors,
				metric: m,
				promql: countQuery(sel+`,response_code=~"5.."`, window),
			})
		case m == MetricRequestRate:
			// Derived from the request count, which is always queried.
		case isBuiltin(m):
			qs = append(qs, plannedQuery{
				kind:   kindLatency,
				metric: m,
				promql: bucketQuery(sel, window),
			})
		default:
			qs = append(qs, customQueries(req, m, customWindow(req))...)
		}
	}
	return qs
}

// customWindow is the window custom metrics are rendered with.
func customWindow(req Request) string {
	if req.CustomWindow > 0 {
		return promDuration(req.CustomWindow)
	}
	return promDuration(req.Window)
}

// countQuery counts requests over rng, a range ("[30s]", perhaps pinned
// with "@").
func countQuery(sel, rng string) string {
	return "sum by (" + groupBy + ") (increase(istio_requests_total{" + sel + "}" + rng + "))"
}

// bucketQuery reads both versions' latency histograms: the quantiles and
// the sample-size-aware latency decisions are computed from the buckets.
func bucketQuery(sel, rng string) string {
	return "sum by (le, " + groupBy + ") (increase(istio_request_duration_milliseconds_bucket{" +
		sel + "}" + rng + "))"
}

// selector matches both versions, so one answer serves both and a later
// multi-rollout query only needs a longer alternation.
func selector(namespace, stable, canary string) string {
	workloads := regexp.QuoteMeta(stable)
	if canary != stable {
		workloads += "|" + regexp.QuoteMeta(canary)
	}
	return `reporter="destination",` + namespaceLabel + "=" + promString(namespace) +
		"," + workloadLabel + "=~" + promString(workloads)
}

// promString quotes s as a PromQL string literal. PromQL unquotes with Go's
// rules, so the backslashes of regexp.QuoteMeta must be doubled.
func promString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// windowSeconds is the window as Prometheus sees it: whole seconds, at least
// one. request-rate divides by the same number so that it matches the
// increase() it is derived from.
func windowSeconds(w time.Duration) int64 {
	s := int64(w.Round(time.Second) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

func promDuration(w time.Duration) string {
	return strconv.FormatInt(windowSeconds(w), 10) + "s"
}

// customData is what a custom metric's template sees.
type customData struct {
	Namespace string
	Workload  string
	Window    string
}

func customQueries(req Request, metric, window string) []plannedQuery {
	mq, ok := req.Metrics[metric]
	if !ok {
		return []plannedQuery{{kind: kindCustom, metric: metric, err: &QueryError{
			Metric:    metric,
			UserError: true,
			Err:       errors.New("unknown metric: neither builtin nor defined under metrics"),
		}}}
	}
	tmpl, err := template.New(metric).Option("missingkey=error").Parse(mq.Query)
	if err != nil {
		return []plannedQuery{{kind: kindCustom, metric: metric, err: &QueryError{
			Metric:    metric,
			Query:     mq.Query,
			UserError: true,
			Err:       fmt.Errorf("parsing query template: %w", err),
		}}}
	}
	var qs []plannedQuery
	for _, v := range []struct {
		workload string
		canary   bool
	}{{req.Stable, false}, {req.Canary, true}} {
		var b strings.Builder
		err := tmpl.Execute(&b, customData{Namespace: req.Namespace, Workload: v.workload, Window: window})
		q := plannedQuery{kind: kindCustom, metric: metric, canary: v.canary, promql: strings.TrimSpace(b.String())}
		switch {
		case err != nil:
			q.err = &QueryError{Metric: metric, Query: mq.Query, UserError: true, Err: fmt.Errorf("executing query template: %w", err)}
		case q.promql == "":
			q.err = &QueryError{Metric: metric, Query: mq.Query, UserError: true, Err: errors.New("query template renders to an empty query")}
		}
		qs = append(qs, q)
	}
	return qs
}
