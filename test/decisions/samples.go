package decisions

import (
	"github.com/meshcanary/meshcanary/pkg/metrics"
	"github.com/meshcanary/meshcanary/pkg/policy"
)

// latencyQuantile is the quantile a builtin latency metric names.
func latencyQuantile(metric string) (float64, bool) {
	switch metric {
	case policy.MetricLatencyP50:
		return 0.5, true
	case policy.MetricLatencyP95:
		return 0.95, true
	case policy.MetricLatencyP99:
		return 0.99, true
	}
	return 0, false
}

// histogram is counts' latency buckets as Prometheus answers them: bounds
// in seconds, counts cumulative, the last bound +Inf.
func histogram(c Counts) []metrics.Bucket {
	out := make([]metrics.Bucket, numBuckets)
	cum := 0.0
	for i, b := range istioBucketsMs() {
		cum += c.Buckets[i]
		out[i] = metrics.Bucket{UpperBound: b / 1000, Count: cum}
	}
	return out
}

// sample is what Analyzer.Analyze would read back for one version: counts,
// the histogram when a latency check asks for it, and each latency check's
// point quantile computed from it.
func sample(c Counts, checks []policy.Check) metrics.Sample {
	s := metrics.Sample{Requests: c.Requests, Errors: c.Errors, Values: map[string]float64{}}
	for _, ch := range checks {
		q, ok := latencyQuantile(ch.Metric)
		if !ok {
			continue
		}
		if s.Latency == nil {
			s.Latency = histogram(c)
		}
		s.Values[ch.Metric] = metrics.Quantile(s.Latency, q)
	}
	return s
}
