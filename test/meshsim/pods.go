package meshsim

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	defaultLatency = 20 * time.Millisecond
	// latencySigma gives a p99 of about four times the median, the long
	// tail that makes latency checks on percentiles meaningful.
	latencySigma = 0.6
	// maxLatencyMs keeps one extreme draw from landing in buckets far past
	// any timeout a real client would have given up at.
	maxLatencyMs = 60_000.0
)

// podInfo is what a request needs to know about the pod that serves it.
type podInfo struct {
	name, namespace   string
	workload          string
	version           string
	canonicalService  string
	canonicalRevision string
	errorRate         float64
	latencyMedian     time.Duration
}

func newPodInfo(pod *corev1.Pod) *podInfo {
	wl := workloadName(pod)
	return &podInfo{
		name:              pod.Name,
		namespace:         pod.Namespace,
		workload:          wl,
		version:           firstLabel(pod.Labels, unknown, "version"),
		canonicalService:  firstLabel(pod.Labels, wl, "service.istio.io/canonical-name", "app.kubernetes.io/name", "app"),
		canonicalRevision: firstLabel(pod.Labels, "latest", "service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"),
		errorRate:         parseErrorRate(pod.Annotations[ErrorRateAnnotation]),
		latencyMedian:     parseLatency(pod.Annotations[LatencyAnnotation]),
	}
}

func firstLabel(l map[string]string, fallback string, keys ...string) string {
	for _, k := range keys {
		if v := l[k]; v != "" {
			return v
		}
	}
	return fallback
}

// podReady is the test the EndpointSlice controller applies: Ready and not
// being deleted (Istio does not send new requests to terminating pods).
func podReady(pod *corev1.Pod) bool {
	if pod.DeletionTimestamp != nil {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// workloadName derives the workload as Istio does: the Deployment for a pod
// of a ReplicaSet, otherwise the controller, otherwise the pod itself.
func workloadName(pod *corev1.Pod) string {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return pod.Name
	}
	if ref.Kind == "ReplicaSet" {
		if hash := pod.Labels["pod-template-hash"]; hash != "" {
			if name, ok := strings.CutSuffix(ref.Name, "-"+hash); ok && name != "" {
				return name
			}
		}
	}
	return ref.Name
}

// parseErrorRate treats anything unreadable as a healthy pod, so a typo in
// a test fixture does not silently become a failing release.
func parseErrorRate(v string) float64 {
	if v == "" {
		return 0
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(f) || f <= 0 {
		return 0
	}
	return min(f, 1)
}

func parseLatency(v string) time.Duration {
	if v == "" {
		return defaultLatency
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < 0 {
		return defaultLatency
	}
	return d
}

// sampleLatencyMs draws from a log-normal distribution whose median is the
// pod's median latency.
func (p *podInfo) sampleLatencyMs(rng *rand.Rand) float64 {
	median := float64(p.latencyMedian) / float64(time.Millisecond)
	return min(median*math.Exp(latencySigma*rng.NormFloat64()), maxLatencyMs)
}
