package controller

import (
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/workqueue"

	"github.com/meshcanary/meshcanary/pkg/metrics"
	"github.com/meshcanary/meshcanary/pkg/stages"
)

// Metrics are the controller's own Prometheus metrics. They are registered
// on the registry the caller passes, never on a global one.
//
// A rollout's series are deleted by their exact label values, never by
// DeletePartialMatch, which scans every series of every rollout: the series
// whose other labels vary (analysis values and thresholds, the stage's
// stages label) are RolloutGaugeVecs that remember what they created.
type Metrics struct {
	Phase             *prometheus.GaugeVec
	Weight            *prometheus.GaugeVec
	AnalysisValue     *RolloutGaugeVec
	AnalysisThreshold *RolloutGaugeVec
	Rollouts          *prometheus.CounterVec
	Verdicts          *prometheus.CounterVec
	ReconcileDuration prometheus.Histogram
	ReconcileErrors   prometheus.Counter
	AnalysisErrors    *prometheus.CounterVec
	APIErrors         *prometheus.CounterVec
	Leader            prometheus.Gauge
	PolicyReloads     *prometheus.CounterVec
	StageInfo         *RolloutGaugeVec
	// Shard is 1 for the shard this replica holds (--shards above 1).
	Shard *prometheus.GaugeVec
	// EventsDropped counts Kubernetes Events that were never written, by
	// reason (see NewEventRecorder).
	EventsDropped *prometheus.CounterVec
	// EventsEmitted counts the Events decisions handed to the recorder:
	// with EventsDropped and the Events' counts in the API it shows that
	// none was lost.
	EventsEmitted prometheus.Counter
	// StageLag is how long after its duration each stage ended (advanced
	// or promoted): the cost of the controller's own delays at scale.
	StageLag prometheus.Histogram
	// KubeRequests counts requests sent to the Kubernetes API, by client
	// (traffic, events, election) and HTTP method, so that idle cost and
	// cost per release can be measured (see CountRequests).
	KubeRequests *prometheus.CounterVec
	// ReleasesInFlight and ReleasesQueued count this replica's releases
	// in flight and those waiting for a slot (--max-concurrent-releases).
	ReleasesInFlight prometheus.Gauge
	ReleasesQueued   prometheus.Gauge
	// PromQueries and PromQueryDuration are the controller's own load on
	// Prometheus, by family (requests, errors, latency: one query per
	// batch of analyses; custom: per rollout and version), and
	// AnalysisBatch how many analyses each batch answered.
	PromQueries       *prometheus.CounterVec
	PromQueryDuration *prometheus.HistogramVec
	AnalysisBatch     prometheus.Histogram

	queue *queueMetrics
}

// allPhases lists every phase so meshcanary_rollout_phase can publish a 0
// for the phases a rollout is not in, as kube-state-metrics does.
func allPhases() []stages.Phase {
	return []stages.Phase{stages.Idle, stages.Progressing, stages.Paused, stages.Promoting, stages.Succeeded, stages.RolledBack, stages.Invalid}
}

// NewMetrics creates and registers the metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshcanary_rollout_phase", Help: "1 for the phase the rollout of a Deployment is in, 0 for the others.",
		}, []string{"namespace", "deployment", "phase"}),
		Weight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshcanary_canary_weight", Help: "Canary weight in percent that meshcanary last wrote to the VirtualService.",
		}, []string{"namespace", "deployment"}),
		AnalysisValue: newRolloutGaugeVec(prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshcanary_analysis_value", Help: "Last analysed value of a metric per version (base units: ratios, seconds, requests per second).",
		}, []string{"namespace", "deployment", "metric", "version"})),
		AnalysisThreshold: newRolloutGaugeVec(prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshcanary_analysis_threshold", Help: "Threshold of a check in the current stage (base units; maxRatio as a factor).",
		}, []string{"namespace", "deployment", "metric", "bound"})),
		Rollouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshcanary_rollouts_total", Help: "Finished releases by result.",
		}, []string{"namespace", "deployment", "result"}),
		Verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshcanary_analysis_verdicts_total", Help: "Analysis intervals by verdict.",
		}, []string{"namespace", "deployment", "verdict"}),
		ReconcileDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "meshcanary_reconcile_duration_seconds", Help: "Time to reconcile one Deployment, including analysis queries.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		ReconcileErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshcanary_reconcile_errors_total", Help: "Reconciles that failed and were retried with backoff.",
		}),
		AnalysisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshcanary_prometheus_query_errors_total", Help: "Analyses that got no answer from Prometheus (kind=outage) or hit a broken query (kind=user).",
		}, []string{"kind"}),
		APIErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshcanary_api_errors_total", Help: "Failed writes to the Kubernetes API by kind of write.",
		}, []string{"operation"}),
		Leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshcanary_leader", Help: "1 while this replica leads and reconciles (always 1 without leader election).",
		}),
		Shard: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshcanary_shard", Help: "1 for the shard whose rollouts this replica acts on while it holds that shard's Lease (--shards above 1).",
		}, []string{"shard"}),
		PolicyReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshcanary_policy_reloads_total", Help: "Reloads of the policies file by result (ok or invalid).",
		}, []string{"result"}),
		StageInfo: newRolloutGaugeVec(prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshcanary_rollout_stage", Help: "Current stage (1-based) of the rollout; the total number of stages is in the stages label.",
		}, []string{"namespace", "deployment", "stages"})),
		EventsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshcanary_events_dropped_total", Help: "Kubernetes Events never written, by reason: spam-filtered, queue-full, rate-limited, rejected, write-failed.",
		}, []string{"reason"}),
		StageLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "meshcanary_stage_lag_seconds", Help: "How long after its duration (pauses not counted) each stage ended by advancing or promoting.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		EventsEmitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshcanary_events_emitted_total", Help: "Kubernetes Events the controller's decisions emitted (written, aggregated into another Event's count, or counted in meshcanary_events_dropped_total).",
		}),
		KubeRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshcanary_kube_api_requests_total", Help: "Requests sent to the Kubernetes API, by client (traffic, events, election) and HTTP method.",
		}, []string{"client", "method"}),
		PromQueries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshcanary_prometheus_queries_total", Help: "Queries sent to Prometheus, by family (requests, errors, latency: one per batch of analyses; custom: per rollout and version) and result (ok, error).",
		}, []string{"family", "result"}),
		PromQueryDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "meshcanary_prometheus_query_duration_seconds", Help: "How long Prometheus took to answer each query, by family.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"family"}),
		AnalysisBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "meshcanary_analysis_batch_size", Help: "Analyses answered together by one batch of Prometheus queries.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000},
		}),
		ReleasesInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshcanary_releases_in_flight", Help: "Releases in flight on this replica: started and not yet promoted, rolled back or aborted.",
		}),
		ReleasesQueued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshcanary_releases_queued", Help: "Releases waiting for a release slot (--max-concurrent-releases); they have no traffic yet.",
		}),
		queue: newQueueMetrics(),
	}
	// Every reason exists from the start, at 0, so that rate() and alerts
	// see the first drop instead of a series appearing.
	for _, r := range allDropReasons() {
		m.EventsDropped.WithLabelValues(r)
	}
	reg.MustRegister(m.Phase, m.Weight, m.AnalysisValue, m.AnalysisThreshold, m.Rollouts, m.Verdicts,
		m.ReconcileDuration, m.ReconcileErrors, m.AnalysisErrors, m.APIErrors, m.Leader, m.Shard, m.PolicyReloads, m.StageInfo,
		m.EventsDropped, m.EventsEmitted, m.KubeRequests, m.StageLag, m.ReleasesInFlight, m.ReleasesQueued, m.PromQueries, m.PromQueryDuration, m.AnalysisBatch)
	m.queue.register(reg)
	return m
}

// ObserveQuery counts one Prometheus query; pass it as
// metrics.Options.OnQuery.
func (m *Metrics) ObserveQuery(q metrics.QueryStat) {
	result := "ok"
	if q.Err != nil {
		result = "error"
	}
	m.PromQueries.WithLabelValues(q.Family, result).Inc()
	m.PromQueryDuration.WithLabelValues(q.Family).Observe(q.Duration.Seconds())
}

// QueueMetrics is the workqueue metrics provider backed by this registry.
func (m *Metrics) QueueMetrics() workqueue.MetricsProvider { return m.queue }

func (m *Metrics) setPhase(ns, name string, p stages.Phase) {
	for _, q := range allPhases() {
		v := 0.0
		if q == p {
			v = 1
		}
		m.Phase.WithLabelValues(ns, name, string(q)).Set(v)
	}
}

// forget drops every gauge series of a Deployment that is gone or opted
// out, each by its exact label values: the cost is that rollout's own
// series, whatever the number of others. The counters (releases, verdicts)
// stay, so increase() over a day still sees a Deployment deleted within it.
func (m *Metrics) forget(ns, name string) {
	for _, p := range allPhases() {
		m.Phase.DeleteLabelValues(ns, name, string(p))
	}
	m.Weight.DeleteLabelValues(ns, name)
	m.AnalysisValue.DeleteRollout(ns, name)
	m.AnalysisThreshold.DeleteRollout(ns, name)
	m.StageInfo.DeleteRollout(ns, name)
}

// gaugeVec is what a RolloutGaugeVec needs of *prometheus.GaugeVec; tests
// put a counting one in its place.
type gaugeVec interface {
	prometheus.Collector
	WithLabelValues(lvs ...string) prometheus.Gauge
	DeleteLabelValues(lvs ...string) bool
}

// rolloutKey names one rollout: the namespace and name of its stable
// Deployment, the first two labels of every rollout series.
type rolloutKey struct{ namespace, name string }

// RolloutGaugeVec is a GaugeVec whose first two labels are namespace and
// deployment. It remembers, per rollout, the label values of every series
// created through WithLabelValues, so DeleteRollout deletes exactly those:
// its cost is the rollout's own handful of series. DeletePartialMatch, which
// it replaces, scans every series of every rollout; called on every
// reconcile that made metrics bookkeeping grow with the square of the
// number of rollouts (12% of the CPU at 1,000).
//
// Series must be created through WithLabelValues only; the vec is safe for
// concurrent use.
type RolloutGaugeVec struct {
	vec gaugeVec

	mu sync.Mutex
	// series holds, per rollout, the label values after namespace and
	// deployment of each series, keyed by those values joined.
	series map[rolloutKey]map[string][]string
}

func newRolloutGaugeVec(v gaugeVec) *RolloutGaugeVec {
	return &RolloutGaugeVec{vec: v, series: map[rolloutKey]map[string][]string{}}
}

// Describe implements prometheus.Collector.
func (v *RolloutGaugeVec) Describe(ch chan<- *prometheus.Desc) { v.vec.Describe(ch) }

// Collect implements prometheus.Collector.
func (v *RolloutGaugeVec) Collect(ch chan<- prometheus.Metric) { v.vec.Collect(ch) }

// WithLabelValues returns the series with these label values, namespace and
// deployment first, creating and remembering it if needed.
func (v *RolloutGaugeVec) WithLabelValues(lvs ...string) prometheus.Gauge {
	if len(lvs) < 2 {
		// The vec panics about the label count, as it did before.
		return v.vec.WithLabelValues(lvs...)
	}
	k, rest := rolloutKey{lvs[0], lvs[1]}, lvs[2:]
	id := strings.Join(rest, "\xff")
	// The lock spans the vec's own call so that a series is never created
	// after DeleteRollout forgot it, even for one rollout touched from two
	// goroutines at once.
	v.mu.Lock()
	defer v.mu.Unlock()
	s := v.series[k]
	if s == nil {
		s = map[string][]string{}
		v.series[k] = s
	}
	if _, ok := s[id]; !ok {
		s[id] = append([]string(nil), rest...)
	}
	return v.vec.WithLabelValues(lvs...)
}

// DeleteRollout deletes every series of one rollout and returns how many
// there were.
func (v *RolloutGaugeVec) DeleteRollout(namespace, name string) int {
	k := rolloutKey{namespace, name}
	v.mu.Lock()
	defer v.mu.Unlock()
	s := v.series[k]
	delete(v.series, k)
	lvs := make([]string, 0, 4)
	for _, rest := range s {
		lvs = append(append(lvs[:0], namespace, name), rest...)
		v.vec.DeleteLabelValues(lvs...)
	}
	return len(s)
}

// queueMetrics implements workqueue.MetricsProvider with the metric names
// Kubernetes components use (workqueue_*), so standard dashboards work.
type queueMetrics struct {
	depth, unfinished, longest *prometheus.GaugeVec
	adds, retries              *prometheus.CounterVec
	latency, work              *prometheus.HistogramVec
}

func newQueueMetrics() *queueMetrics {
	b := prometheus.ExponentialBuckets(10e-6, 10, 8)
	return &queueMetrics{
		depth:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "workqueue_depth", Help: "Current depth of the workqueue."}, []string{"name"}),
		unfinished: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "workqueue_unfinished_work_seconds", Help: "Seconds of work in progress not yet observed by work_duration."}, []string{"name"}),
		longest:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "workqueue_longest_running_processor_seconds", Help: "Seconds the longest running processor has been running."}, []string{"name"}),
		adds:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "workqueue_adds_total", Help: "Adds handled by the workqueue."}, []string{"name"}),
		retries:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "workqueue_retries_total", Help: "Retries handled by the workqueue."}, []string{"name"}),
		latency:    prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "workqueue_queue_duration_seconds", Help: "Seconds an item stays in the workqueue before being requested.", Buckets: b}, []string{"name"}),
		work:       prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "workqueue_work_duration_seconds", Help: "Seconds processing an item from the workqueue takes.", Buckets: b}, []string{"name"}),
	}
}

func (q *queueMetrics) register(reg prometheus.Registerer) {
	reg.MustRegister(q.depth, q.unfinished, q.longest, q.adds, q.retries, q.latency, q.work)
}

func (q *queueMetrics) NewDepthMetric(n string) workqueue.GaugeMetric {
	return q.depth.WithLabelValues(n)
}
func (q *queueMetrics) NewAddsMetric(n string) workqueue.CounterMetric {
	return q.adds.WithLabelValues(n)
}
func (q *queueMetrics) NewLatencyMetric(n string) workqueue.HistogramMetric {
	return q.latency.WithLabelValues(n)
}
func (q *queueMetrics) NewWorkDurationMetric(n string) workqueue.HistogramMetric {
	return q.work.WithLabelValues(n)
}
func (q *queueMetrics) NewUnfinishedWorkSecondsMetric(n string) workqueue.SettableGaugeMetric {
	return q.unfinished.WithLabelValues(n)
}
func (q *queueMetrics) NewLongestRunningProcessorSecondsMetric(n string) workqueue.SettableGaugeMetric {
	return q.longest.WithLabelValues(n)
}
func (q *queueMetrics) NewRetriesMetric(n string) workqueue.CounterMetric {
	return q.retries.WithLabelValues(n)
}
