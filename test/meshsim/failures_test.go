package meshsim

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
)

func TestEnvoyFailures(t *testing.T) {
	canaryOnly := virtualService("payment", []string{"payment-service"}, httpRoute(weighted("payment-service", "canary", -1)))
	cases := []struct {
		name      string
		kube      []runtime.Object
		istio     []runtime.Object
		wantFlags string
		// wantFailedShare is the share of requests Envoy fails itself.
		wantFailedShare float64
	}{
		{
			name:            "a subset whose pods are all unready fails every request with 503 UH",
			kube:            stableAndCanary(2, notReady()),
			istio:           []runtime.Object{canaryOnly, stableCanaryRule()},
			wantFlags:       flagNoHealthyUpstream,
			wantFailedShare: 1,
		},
		{
			name:            "a subset whose labels no pod has fails every request with 503 UH",
			kube:            stableAndCanary(2),
			istio:           []runtime.Object{canaryOnly, destinationRule("payment", "payment-service", map[string]map[string]string{"canary": {"version": "v3"}})},
			wantFlags:       flagNoHealthyUpstream,
			wantFailedShare: 1,
		},
		{
			name:            "a Service without a VirtualService whose pods are all unready fails with 503 UH",
			kube:            []runtime.Object{service("payment-service", map[string]string{"app": "payment"}), deploymentPod("payment-stable", 0, map[string]string{"app": "payment"}, notReady())},
			wantFlags:       flagNoHealthyUpstream,
			wantFailedShare: 1,
		},
		{
			name:            "a 90/10 split whose canary has no Ready pod fails about a tenth of the requests with 503 UH",
			kube:            stableAndCanary(2, notReady()),
			istio:           []runtime.Object{splitRoute(90, 10), stableCanaryRule()},
			wantFlags:       flagNoHealthyUpstream,
			wantFailedShare: 0.1,
		},
		{
			name:            "a subset no DestinationRule defines fails every request with 503 NC",
			kube:            stableAndCanary(2),
			istio:           []runtime.Object{canaryOnly},
			wantFlags:       flagNoCluster,
			wantFailedShare: 1,
		},
		{
			name:            "a route whose weights are all zero fails every request with 503 NC",
			kube:            stableAndCanary(2),
			istio:           []runtime.Object{splitRoute(0, 0), stableCanaryRule()},
			wantFlags:       flagNoCluster,
			wantFailedShare: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{Seed: 3, Services: []Service{{Namespace: testNS, Host: "payment-service", RPS: 2000}}}, tc.kube, tc.istio)
			e.advance(time.Second)

			byEnvoy := e.sim.Truth(testNS, unknown)
			if share := float64(byEnvoy.Sent) / 2000; !near(share, tc.wantFailedShare, 0.02) {
				t.Fatalf("%d of 2000 requests reached no pod, want a share of %.2f", byEnvoy.Sent, tc.wantFailedShare)
			}
			if byEnvoy.Failed != byEnvoy.Sent {
				t.Errorf("truth for unknown %+v: every request that reached no pod must count as failed", byEnvoy)
			}
			wantUH := int64(0)
			if tc.wantFlags == flagNoHealthyUpstream {
				wantUH = byEnvoy.Sent
			}
			if byEnvoy.UH != wantUH {
				t.Errorf("truth UH %d, want %d", byEnvoy.UH, wantUH)
			}

			envoyFailure := map[string]string{"response_code": "503", "response_flags": tc.wantFlags}
			source := map[string]string{"reporter": "source", "destination_workload": unknown,
				"destination_workload_namespace": unknown, "destination_service": "payment-service.shop.svc.cluster.local",
				"destination_service_name": "payment-service", "response_code": "503", "response_flags": tc.wantFlags}
			if got := e.value(t, "istio_requests_total", source); got != float64(byEnvoy.Sent) {
				t.Errorf("istio_requests_total%v = %v, want %d", source, got, byEnvoy.Sent)
			}
			if got := e.value(t, "istio_request_duration_milliseconds", source); got != float64(byEnvoy.Sent) {
				t.Errorf("istio_request_duration_milliseconds_count%v = %v, want %d", source, got, byEnvoy.Sent)
			}
			destination := map[string]string{"reporter": "destination"}
			for k, v := range envoyFailure {
				destination[k] = v
			}
			if got := e.value(t, "istio_requests_total", destination); got != 0 {
				t.Errorf("the destination proxy reported %v failures Envoy made before reaching it", got)
			}
			failedTruth := map[string]string{"namespace": testNS, "service": "payment-service", "workload": unknown}
			if got := e.value(t, "meshsim_requests_failed_total", failedTruth); got != float64(byEnvoy.Failed) {
				t.Errorf("meshsim_requests_failed_total%v = %v, want %d", failedTruth, got, byEnvoy.Failed)
			}
		})
	}
}
