package policy

import (
	"bytes"
	"fmt"
	"strings"
	"text/template"
)

// Built-in metrics, computed by meshcanary from Istio's standard telemetry
// for each version over one analysis window.
const (
	// MetricErrorRate is the share of requests answered with a 5xx.
	MetricErrorRate = "error-rate"
	// MetricSuccessRate is the share of requests not answered with a 5xx.
	MetricSuccessRate = "success-rate"
	// MetricRequestRate is requests per second.
	MetricRequestRate = "request-rate"
	// MetricLatencyP50 is the median request duration.
	MetricLatencyP50 = "latency-p50"
	// MetricLatencyP95 is the 95th percentile of request duration.
	MetricLatencyP95 = "latency-p95"
	// MetricLatencyP99 is the 99th percentile of request duration.
	MetricLatencyP99 = "latency-p99"
)

// BuiltinMetrics lists the metrics every policy may check without defining
// them. It returns a new slice each time so callers may keep or change it.
func BuiltinMetrics() []string {
	return []string{
		MetricErrorRate,
		MetricSuccessRate,
		MetricRequestRate,
		MetricLatencyP50,
		MetricLatencyP95,
		MetricLatencyP99,
	}
}

// IsBuiltinMetric reports whether name is one of BuiltinMetrics.
func IsBuiltinMetric(name string) bool {
	return metricKindOf(name) != kindCustom
}

// metricKind decides which threshold spellings make sense for a metric:
// a latency bound written as "1%" or "0.2" is a mistake, not a choice.
type metricKind int

const (
	kindCustom metricKind = iota
	kindShare
	kindRate
	kindLatency
)

func metricKindOf(name string) metricKind {
	switch name {
	case MetricErrorRate, MetricSuccessRate:
		return kindShare
	case MetricRequestRate:
		return kindRate
	case MetricLatencyP50, MetricLatencyP95, MetricLatencyP99:
		return kindLatency
	default:
		return kindCustom
	}
}

// QueryVars are the only values a custom metric's query may use. The window
// is a PromQL duration such as "1m", the analysis interval.
type QueryVars struct {
	Namespace string
	Workload  string
	Window    string
}

// Render fills in the query for one version. It fails on anything but the
// three documented variables, so a typo surfaces when the policy loads
// rather than as an empty PromQL result during a release.
func (q MetricQuery) Render(vars QueryVars) (string, error) {
	tmpl, err := template.New("query").Option("missingkey=error").Parse(q.Query)
	if err != nil {
		return "", fmt.Errorf("parsing query template: %w", err)
	}
	out := limitedBuffer{limit: maxQueryBytes}
	if err := tmpl.Execute(&out, vars); err != nil {
		return "", fmt.Errorf("rendering query template: %w", err)
	}
	rendered := strings.TrimSpace(out.buf.String())
	if rendered == "" {
		return "", fmt.Errorf("query template renders to an empty query")
	}
	return rendered, nil
}

// maxQueryBytes bounds a rendered query: Prometheus refuses far shorter
// ones, and a template that loops must not exhaust the controller's memory.
const maxQueryBytes = 64 << 10

type limitedBuffer struct {
	buf   bytes.Buffer
	limit int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.buf.Len()+len(p) > b.limit {
		return 0, fmt.Errorf("query longer than %d bytes", b.limit)
	}
	return b.buf.Write(p)
}
