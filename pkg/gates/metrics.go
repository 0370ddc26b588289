package gates

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// runMetrics are the runner's Prometheus metrics, registered on the
// registry the caller passes, never on a global one.
type runMetrics struct {
	runs     *prometheus.CounterVec
	duration prometheus.Histogram
}

func newRunMetrics(reg prometheus.Registerer) *runMetrics {
	m := &runMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshcanary_gate_runs_total", Help: "Finished webhook gate runs by result (passed or failed).",
		}, []string{"result"}),
		// Smoke and load tests take seconds to many minutes.
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meshcanary_gate_duration_seconds",
			Help:    "Time from a webhook gate run's first attempt to its result, retries and backoff included, queueing excluded.",
			Buckets: []float64{.1, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800},
		}),
	}
	// Both series exist from the start, so rate() and alerts see a 0.
	m.runs.WithLabelValues("passed")
	m.runs.WithLabelValues("failed")
	if reg != nil {
		reg.MustRegister(m.runs, m.duration)
	}
	return m
}

// observe counts one finished run.
func (m *runMetrics) observe(s Status, took time.Duration) {
	result := "failed"
	if s == Passed {
		result = "passed"
	}
	m.runs.WithLabelValues(result).Inc()
	m.duration.Observe(took.Seconds())
}
