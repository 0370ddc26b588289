package notify

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// dispatchMetrics are the Dispatcher's Prometheus metrics, registered on
// the caller's registry, never a global one.
type dispatchMetrics struct {
	sent   *prometheus.CounterVec
	failed *prometheus.CounterVec
	depth  *prometheus.GaugeVec
}

func newDispatchMetrics(reg prometheus.Registerer, channels []string) (*dispatchMetrics, error) {
	m := &dispatchMetrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshcanary_notifications_sent_total",
			Help: "Notifications delivered, by channel.",
		}, []string{"channel"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshcanary_notifications_failed_total",
			Help: "Notifications not delivered, by channel and reason (3xx, 4xx, 5xx, timeout, network, invalid, error, dropped, unconfigured); retried ones count once, after their last attempt.",
		}, []string{"channel", "reason"}),
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshcanary_notification_queue_depth",
			Help: "Notifications waiting to be sent, by channel.",
		}, []string{"channel"}),
	}
	// Zero series from the start, so that rate() and alerts see a channel
	// before its first notification.
	for _, ch := range channels {
		m.sent.WithLabelValues(ch)
		m.depth.WithLabelValues(ch)
	}
	if reg == nil {
		return m, nil
	}
	collectors := []prometheus.Collector{m.sent, m.failed, m.depth}
	for i, c := range collectors {
		if err := reg.Register(c); err != nil {
			// Leave the registry as it was, so a retry can register.
			for _, done := range collectors[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("registering notification metrics: %w", err)
		}
	}
	return m, nil
}
