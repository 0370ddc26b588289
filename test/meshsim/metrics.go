package meshsim

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	reporterSource      = "source"
	reporterDestination = "destination"
)

// istioLabels are the label names of Istio's standard metrics, in the order
// observe passes their values.
func istioLabels() []string {
	return []string{
		"reporter",
		"source_workload",
		"source_workload_namespace",
		"destination_workload",
		"destination_workload_namespace",
		"destination_service",
		"destination_service_name",
		"destination_version",
		"destination_canonical_service",
		"destination_canonical_revision",
		"request_protocol",
		"response_code",
		"response_flags",
	}
}

// istioBuckets are the default buckets of istio_request_duration_milliseconds,
// so histogram_quantile over the simulator interpolates as it would in a mesh.
func istioBuckets() []float64 {
	return []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}
}

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	sent     *prometheus.CounterVec
	failed   *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	truthLabels := []string{"namespace", "service", "workload"}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "istio_requests_total",
			Help: "Requests handled by the simulated Istio proxies.",
		}, istioLabels()),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "istio_request_duration_milliseconds",
			Help:    "Request duration seen by the simulated Istio proxies.",
			Buckets: istioBuckets(),
		}, istioLabels()),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshsim_requests_sent_total",
			Help: "Ground truth: requests the simulator sent, by destination workload.",
		}, truthLabels),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshsim_requests_failed_total",
			Help: "Ground truth: requests that got a 5xx, by destination workload.",
		}, truthLabels),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.sent, m.failed} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("meshsim: registering metrics: %w", err)
		}
	}
	return m, nil
}

// observe reports one request as Istio's proxies would: the source proxy
// always, the destination proxy only when a pod was reached.
func (m *metrics) observe(cfg Config, o outcome) {
	workload, wlNamespace := unknown, unknown
	version, canonicalService, canonicalRevision := unknown, unknown, unknown
	if o.pod != nil {
		workload, wlNamespace = o.pod.workload, o.pod.namespace
		version = o.pod.version
		canonicalService, canonicalRevision = o.pod.canonicalService, o.pod.canonicalRevision
	}
	values := []string{
		reporterSource,
		cfg.SourceWorkload,
		cfg.SourceNamespace,
		workload,
		wlNamespace,
		o.dest.fqdn,
		o.dest.name,
		version,
		canonicalService,
		canonicalRevision,
		"http",
		strconv.Itoa(o.code),
		o.flags,
	}
	m.requests.WithLabelValues(values...).Inc()
	m.duration.WithLabelValues(values...).Observe(o.latencyMs)
	if o.pod == nil {
		return
	}
	values[0] = reporterDestination
	m.requests.WithLabelValues(values...).Inc()
	m.duration.WithLabelValues(values...).Observe(o.latencyMs)
}

func (m *metrics) truth(svc Service, workload string, failed bool) {
	m.sent.WithLabelValues(svc.Namespace, svc.Host, workload).Inc()
	f := m.failed.WithLabelValues(svc.Namespace, svc.Host, workload)
	if failed {
		f.Inc()
	}
}
