package meshsim

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestErrorRateAnnotation(t *testing.T) {
	cases := []struct {
		name      string
		errorRate string
		want      float64
		tolerance float64
	}{
		{"an error rate of 0.05 answers about 5% of requests with 500", "0.05", 0.05, 0.006},
		{"an error rate of 0.5 answers about half of the requests with 500", "0.5", 0.5, 0.015},
		{"an error rate of 1 answers every request with 500", "1", 1, 0},
		{"an error rate above 1 is taken as 1", "3", 1, 0},
		{"no error-rate annotation answers every request with 200", "", 0, 0},
		{"an unreadable error rate is taken as healthy rather than failing", "five percent", 0, 0},
		{"a negative error rate is taken as healthy", "-0.2", 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var opts []podOpt
			if tc.errorRate != "" {
				opts = append(opts, annotated(ErrorRateAnnotation, tc.errorRate))
			}
			kube := []runtime.Object{
				service("payment-service", map[string]string{"app": "payment"}),
				deploymentPod("payment-stable", 0, map[string]string{"app": "payment", "version": "v1"}, opts...),
				deploymentPod("payment-stable", 1, map[string]string{"app": "payment", "version": "v1"}, opts...),
			}
			e := newEnv(t, Config{Seed: 5}, kube, nil)
			e.advance(time.Second)

			c := e.sim.Truth(testNS, "payment-stable")
			if c.Sent != 20000 || c.UH != 0 {
				t.Fatalf("truth %+v, want 20000 sent and no UH", c)
			}
			if share := float64(c.Failed) / float64(c.Sent); !near(share, tc.want, tc.tolerance) {
				t.Errorf("failed share %.4f, want %.3f ± %.3f", share, tc.want, tc.tolerance)
			}
			for _, reporter := range []string{"source", "destination"} {
				errs := map[string]string{"reporter": reporter, "destination_workload": "payment-stable", "response_code": "500", "response_flags": "-"}
				if got := e.value(t, "istio_requests_total", errs); got != float64(c.Failed) {
					t.Errorf("istio_requests_total%v = %v, want %d", errs, got, c.Failed)
				}
			}
		})
	}
}

func TestLatencyAnnotation(t *testing.T) {
	cases := []struct {
		name       string
		latency    string
		wantMedian float64 // ms
	}{
		{"a latency annotation of 80ms gives a median of about 80ms", "80ms", 80},
		{"a latency annotation of 1.5s gives a median of about 1500ms", "1.5s", 1500},
		{"no latency annotation gives the default median of 20ms", "", 20},
		{"an unreadable latency annotation gives the default median of 20ms", "slow", 20},
		{"a latency annotation of 0s gives instant answers", "0s", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var opts []podOpt
			if tc.latency != "" {
				opts = append(opts, annotated(LatencyAnnotation, tc.latency))
			}
			info := newPodInfo(deploymentPod("payment-stable", 0, map[string]string{"app": "payment"}, opts...))
			rng := rand.New(rand.NewPCG(1, 2))
			draws := make([]float64, 20001)
			for i := range draws {
				draws[i] = info.sampleLatencyMs(rng)
			}
			slices.Sort(draws)
			median, p99 := draws[len(draws)/2], draws[len(draws)*99/100]
			if !near(median, tc.wantMedian, tc.wantMedian*0.03) {
				t.Errorf("median %.2fms, want %.0fms ± 3%%", median, tc.wantMedian)
			}
			// A log-normal with sigma 0.6 has p99/median = e^(0.6*2.326) ≈ 4.0:
			// the long tail that percentile checks need.
			if tc.wantMedian > 0 && !near(p99/median, 4.04, 0.3) {
				t.Errorf("p99 %.1fms is %.2f times the median, want about 4", p99, p99/median)
			}
		})
	}
}

func TestLatencyCap(t *testing.T) {
	cases := []struct {
		name    string
		latency string
	}{
		{"a median of 50s never yields a latency above 60s", "50s"},
		{"a median of an hour is held at 60s", "1h"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			info := newPodInfo(deploymentPod("slow", 0, nil, annotated(LatencyAnnotation, tc.latency)))
			rng := rand.New(rand.NewPCG(1, 2))
			for range 10000 {
				if d := info.sampleLatencyMs(rng); d > 60000 {
					t.Fatalf("drew %.0fms, above the 60s cap", d)
				}
			}
		})
	}
}

func TestWorkloadName(t *testing.T) {
	controller := func(kind, name string) metav1.OwnerReference {
		yes := true
		return metav1.OwnerReference{APIVersion: "apps/v1", Kind: kind, Name: name, UID: "uid", Controller: &yes}
	}
	cases := []struct {
		name   string
		labels map[string]string
		owners []metav1.OwnerReference
		want   string
	}{
		{
			name:   "a pod of a ReplicaSet belongs to the Deployment named by the ReplicaSet minus its template hash",
			labels: map[string]string{"pod-template-hash": "7c9d5b8f6"},
			owners: []metav1.OwnerReference{controller("ReplicaSet", "payment-canary-7c9d5b8f6")},
			want:   "payment-canary",
		},
		{
			name:   "a Deployment whose name ends in a dash-separated word keeps it",
			labels: map[string]string{"pod-template-hash": "abc12"},
			owners: []metav1.OwnerReference{controller("ReplicaSet", "payment-service-v2-abc12")},
			want:   "payment-service-v2",
		},
		{
			name:   "a ReplicaSet whose name does not end in the template hash is the workload itself",
			labels: map[string]string{"pod-template-hash": "abc12"},
			owners: []metav1.OwnerReference{controller("ReplicaSet", "handmade-rs")},
			want:   "handmade-rs",
		},
		{
			name:   "a ReplicaSet pod without a template hash label belongs to the ReplicaSet",
			owners: []metav1.OwnerReference{controller("ReplicaSet", "payment-canary-7c9d5b8f6")},
			want:   "payment-canary-7c9d5b8f6",
		},
		{
			name:   "a pod of a StatefulSet belongs to the StatefulSet",
			labels: map[string]string{"controller-revision-hash": "db-6d4f8"},
			owners: []metav1.OwnerReference{controller("StatefulSet", "db")},
			want:   "db",
		},
		{
			name: "a pod without a controller is its own workload",
			want: "the-pod",
		},
		{
			name:   "an owner that is not the controller is not the workload",
			owners: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "owner-cm", UID: "uid"}},
			want:   "the-pod",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "the-pod", Namespace: testNS, Labels: tc.labels, OwnerReferences: tc.owners}}
			if got := workloadName(pod); got != tc.want {
				t.Errorf("workload %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDestinationPeerLabels(t *testing.T) {
	cases := []struct {
		name                                         string
		labels                                       map[string]string
		wantVersion, wantCanonical, wantCanonicalRev string
	}{
		{
			name:        "the canonical labels win over app and version",
			labels:      map[string]string{"app": "payment", "version": "v2", "service.istio.io/canonical-name": "payments", "service.istio.io/canonical-revision": "rc1"},
			wantVersion: "v2", wantCanonical: "payments", wantCanonicalRev: "rc1",
		},
		{
			name:        "app and version stand in for the canonical labels",
			labels:      map[string]string{"app": "payment", "version": "v2"},
			wantVersion: "v2", wantCanonical: "payment", wantCanonicalRev: "v2",
		},
		{
			name:        "the app.kubernetes.io labels come before app and version, as in Istio",
			labels:      map[string]string{"app": "payment", "version": "v2", "app.kubernetes.io/name": "payments-k8s", "app.kubernetes.io/version": "2.0.1"},
			wantVersion: "v2", wantCanonical: "payments-k8s", wantCanonicalRev: "2.0.1",
		},
		{
			name:        "without labels the canonical service is the workload, the revision latest and the version unknown",
			labels:      map[string]string{},
			wantVersion: "unknown", wantCanonical: "payment-canary", wantCanonicalRev: "latest",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			info := newPodInfo(deploymentPod("payment-canary", 0, tc.labels))
			if info.version != tc.wantVersion || info.canonicalService != tc.wantCanonical || info.canonicalRevision != tc.wantCanonicalRev {
				t.Errorf("version %q canonical service %q revision %q, want %q %q %q",
					info.version, info.canonicalService, info.canonicalRevision, tc.wantVersion, tc.wantCanonical, tc.wantCanonicalRev)
			}
		})
	}
}

func TestPodReady(t *testing.T) {
	cases := []struct {
		name string
		opts []podOpt
		want bool
	}{
		{"a pod whose Ready condition is True is an endpoint", nil, true},
		{"a pod whose Ready condition is False is not an endpoint", []podOpt{notReady()}, false},
		{"a Ready pod that is terminating is not an endpoint", []podOpt{terminating()}, false},
		{"a pod without a Ready condition is not an endpoint", []podOpt{func(p *corev1.Pod) { p.Status.Conditions = nil }}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := podReady(deploymentPod("payment", 0, nil, tc.opts...)); got != tc.want {
				t.Errorf("podReady = %v, want %v", got, tc.want)
			}
		})
	}
}
