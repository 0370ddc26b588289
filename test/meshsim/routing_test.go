package meshsim

import (
	"testing"
	"time"

	"k8s.io/client-go/tools/cache"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestWeightedRouting(t *testing.T) {
	cases := []struct {
		name           string
		stable, canary int64
		wantCanary     float64
	}{
		{"a 90/10 split sends about a tenth of the requests to the canary", 90, 10, 0.10},
		{"a 50/50 split sends about half of the requests to each version", 50, 50, 0.50},
		{"a 99/1 split sends about one request in a hundred to the canary", 99, 1, 0.01},
		{"a 100/0 split sends nothing to the canary", 100, 0, 0},
		{"weights that do not add up to 100 are taken relative to their sum", 3, 1, 0.25},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{Seed: 1}, stableAndCanary(2),
				[]runtime.Object{splitRoute(tc.stable, tc.canary), stableCanaryRule()})
			e.advance(time.Second) // 20k requests at 20k RPS

			total := e.sim.TruthByService(testNS, "payment-service")
			if total.Sent != 20000 || total.Failed != 0 {
				t.Fatalf("sent %d failed %d, want 20000 sent and none failed", total.Sent, total.Failed)
			}
			got := e.shares("payment-stable", "payment-canary")
			if !near(got["payment-canary"], tc.wantCanary, 0.01) || !near(got["payment-stable"], 1-tc.wantCanary, 0.01) {
				t.Errorf("shares %v, want canary %.2f ± 0.01", got, tc.wantCanary)
			}
		})
	}
}

func TestSeedDeterminism(t *testing.T) {
	cases := []struct {
		name      string
		seedA     int64
		seedB     int64
		wantEqual bool
	}{
		{"two simulators with the same seed and the same routing expose identical metrics", 42, 42, true},
		{"two simulators with different seeds split the traffic differently", 42, 43, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run := func(seed int64) (string, Counts) {
				e := newEnv(t, Config{Seed: seed}, stableAndCanary(3, annotated(ErrorRateAnnotation, "0.1")),
					[]runtime.Object{splitRoute(70, 30), stableCanaryRule()})
				for range 100 {
					e.advance(10 * time.Millisecond)
				}
				return e.scrape(t), e.sim.Truth(testNS, "payment-canary")
			}
			textA, canaryA := run(tc.seedA)
			textB, canaryB := run(tc.seedB)
			if equal := textA == textB && canaryA == canaryB; equal != tc.wantEqual {
				t.Errorf("same output = %v, want %v (canary %+v vs %+v)", equal, tc.wantEqual, canaryA, canaryB)
			}
		})
	}
}

func TestRouteChoice(t *testing.T) {
	toCanary := func(name string, hosts ...string) *unstructured.Unstructured {
		return virtualService(name, hosts, httpRoute(weighted("payment-service", "canary", -1)))
	}
	toStable := func(name string, hosts ...string) *unstructured.Unstructured {
		return virtualService(name, hosts, httpRoute(weighted("payment-service", "stable", -1)))
	}
	withGateways := func(vs *unstructured.Unstructured, gws ...string) *unstructured.Unstructured {
		if err := unstructured.SetNestedStringSlice(vs.Object, gws, "spec", "gateways"); err != nil {
			t.Fatal(err)
		}
		return vs
	}
	createdAt := func(vs *unstructured.Unstructured, minutes int) *unstructured.Unstructured {
		vs.SetCreationTimestamp(metav1.NewTime(testEpoch().Add(time.Duration(minutes) * time.Minute)))
		return vs
	}
	cases := []struct {
		name       string
		vs         []*unstructured.Unstructured
		wantCanary float64
	}{
		{
			name: "the first route without a match is the default route even when matched routes come before it",
			vs: []*unstructured.Unstructured{virtualService("payment", []string{"payment-service"},
				matchedRoute("x-canary", weighted("payment-service", "canary", -1)),
				httpRoute(weighted("payment-service", "stable", -1)),
				httpRoute(weighted("payment-service", "canary", -1)),
			)},
			wantCanary: 0,
		},
		{
			name: "when every route has a match the first route is taken",
			vs: []*unstructured.Unstructured{virtualService("payment", []string{"payment-service"},
				matchedRoute("x-canary", weighted("payment-service", "canary", -1)),
				matchedRoute("x-stable", weighted("payment-service", "stable", -1)),
			)},
			wantCanary: 1,
		},
		{
			name:       "without a VirtualService the Service's Ready pods share the traffic evenly",
			wantCanary: 0.5,
		},
		{
			name:       "a VirtualService naming the host by its short name applies",
			vs:         []*unstructured.Unstructured{toCanary("payment", "payment-service")},
			wantCanary: 1,
		},
		{
			name:       "a VirtualService naming the host by its fully qualified name applies",
			vs:         []*unstructured.Unstructured{toCanary("payment", "payment-service.shop.svc.cluster.local")},
			wantCanary: 1,
		},
		{
			name:       "a VirtualService naming the host as name.namespace does not apply because Istio only qualifies names without a dot",
			vs:         []*unstructured.Unstructured{toCanary("payment", "payment-service.shop")},
			wantCanary: 0.5,
		},
		{
			name:       "a VirtualService for another host does not apply",
			vs:         []*unstructured.Unstructured{toCanary("orders", "orders-service")},
			wantCanary: 0.5,
		},
		{
			name:       "a VirtualService bound only to an ingress gateway does not apply to mesh traffic",
			vs:         []*unstructured.Unstructured{withGateways(toCanary("payment", "payment-service"), "istio-system/ingress")},
			wantCanary: 0.5,
		},
		{
			name:       "a VirtualService bound to the mesh gateway applies to mesh traffic",
			vs:         []*unstructured.Unstructured{withGateways(toCanary("payment", "payment-service"), "istio-system/ingress", "mesh")},
			wantCanary: 1,
		},
		{
			name:       "a wildcard VirtualService applies when no exact one exists",
			vs:         []*unstructured.Unstructured{toCanary("all", "*.shop.svc.cluster.local")},
			wantCanary: 1,
		},
		{
			name: "an exact VirtualService wins over an older wildcard one",
			vs: []*unstructured.Unstructured{
				createdAt(toStable("all", "*.shop.svc.cluster.local"), 0),
				createdAt(toCanary("payment", "payment-service"), 5),
			},
			wantCanary: 1,
		},
		{
			name: "of two VirtualServices for the same host the oldest applies",
			vs: []*unstructured.Unstructured{
				createdAt(toStable("b-newer", "payment-service"), 5),
				createdAt(toCanary("z-older", "payment-service"), 0),
			},
			wantCanary: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			istio := []runtime.Object{stableCanaryRule()}
			for _, vs := range tc.vs {
				istio = append(istio, vs)
			}
			e := newEnv(t, Config{Seed: 1}, stableAndCanary(2), istio)
			e.advance(time.Second)

			if c := e.sim.TruthByService(testNS, "payment-service"); c.Failed != 0 {
				t.Fatalf("%d of %d requests failed", c.Failed, c.Sent)
			}
			got := e.shares("payment-stable", "payment-canary")
			if !near(got["payment-canary"], tc.wantCanary, 0.02) {
				t.Errorf("shares %v, want canary %.2f ± 0.02", got, tc.wantCanary)
			}
		})
	}
}

func TestSubsetResolution(t *testing.T) {
	canaryOnly := virtualService("payment", []string{"payment-service"}, httpRoute(weighted("payment-service", "canary", -1)))
	withoutSubset := virtualService("payment", []string{"payment-service"}, httpRoute(weighted("payment-service", "", -1)))
	v2 := map[string]string{"version": "v2"}
	cases := []struct {
		name  string
		kube  []runtime.Object
		istio []runtime.Object
		// want is the share of requests per workload; absent ones get none.
		want map[string]float64
	}{
		{
			name:  "a subset selects the pods whose labels match the DestinationRule subset labels",
			kube:  stableAndCanary(2),
			istio: []runtime.Object{canaryOnly, stableCanaryRule()},
			want:  map[string]float64{"payment-canary": 1},
		},
		{
			name: "a subset is intersected with the Service selector so other apps' pods with the same version get nothing",
			kube: append(stableAndCanary(2),
				deploymentPod("orders-canary", 0, map[string]string{"app": "orders", "version": "v2"})),
			istio: []runtime.Object{canaryOnly, stableCanaryRule()},
			want:  map[string]float64{"payment-canary": 1},
		},
		{
			name: "without a Service the subset labels alone select the pods",
			kube: []runtime.Object{
				deploymentPod("payment-stable", 0, map[string]string{"app": "payment", "version": "v1"}),
				deploymentPod("payment-canary", 0, map[string]string{"app": "payment", "version": "v2"}),
			},
			istio: []runtime.Object{canaryOnly, stableCanaryRule()},
			want:  map[string]float64{"payment-canary": 1},
		},
		{
			name:  "a destination without subset uses all Ready pods of the Service",
			kube:  stableAndCanary(2),
			istio: []runtime.Object{withoutSubset, stableCanaryRule()},
			want:  map[string]float64{"payment-stable": 0.5, "payment-canary": 0.5},
		},
		{
			name: "pods that are not Ready or are terminating receive no traffic",
			kube: append(stableAndCanary(1),
				deploymentPod("payment-canary-unready", 0, map[string]string{"app": "payment", "version": "v2"}, notReady()),
				deploymentPod("payment-canary-leaving", 0, map[string]string{"app": "payment", "version": "v2"}, terminating())),
			istio: []runtime.Object{canaryOnly, stableCanaryRule()},
			want:  map[string]float64{"payment-canary": 1},
		},
		{
			name:  "a DestinationRule naming the host by its fully qualified name defines the subset",
			kube:  stableAndCanary(2),
			istio: []runtime.Object{canaryOnly, destinationRule("payment", "payment-service.shop.svc.cluster.local", map[string]map[string]string{"canary": v2})},
			want:  map[string]float64{"payment-canary": 1},
		},
		{
			name: "a subset defined in a second DestinationRule for the same host is found",
			kube: stableAndCanary(2),
			istio: []runtime.Object{canaryOnly,
				destinationRule("payment-stable", "payment-service", map[string]map[string]string{"stable": {"version": "v1"}}),
				destinationRule("payment-canary", "payment-service", map[string]map[string]string{"canary": v2})},
			want: map[string]float64{"payment-canary": 1},
		},
		{
			name:  "a DestinationRule for another host does not define the subset, so requests fail with NC",
			kube:  stableAndCanary(2),
			istio: []runtime.Object{canaryOnly, destinationRule("orders", "orders-service", map[string]map[string]string{"canary": v2})},
			want:  map[string]float64{unknown: 1},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{Seed: 1}, tc.kube, tc.istio)
			e.advance(time.Second)
			got := e.shares("payment-stable", "payment-canary", "orders-canary",
				"payment-canary-unready", "payment-canary-leaving", unknown)
			for w, share := range got {
				if !near(share, tc.want[w], 0.02) {
					t.Errorf("%s got %.3f of the requests, want %.2f (all: %v)", w, share, tc.want[w], got)
				}
			}
		})
	}
}

// TestLiveWeightChange drives the informer like the API server would during
// a promotion, so a routing change must show in the very next step.
func TestLiveWeightChange(t *testing.T) {
	cases := []struct {
		name       string
		from, to   [2]int64
		wantCanary float64
	}{
		{"shifting all weight to the canary moves the next step's traffic to the canary", [2]int64{100, 0}, [2]int64{0, 100}, 1},
		{"rolling back to the stable subset moves the next step's traffic back", [2]int64{20, 80}, [2]int64{100, 0}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{Seed: 1, Services: []Service{{Namespace: testNS, Host: "payment-service", RPS: 1000}}},
				stableAndCanary(2), []runtime.Object{splitRoute(tc.from[0], tc.from[1]), stableCanaryRule()})
			e.advance(time.Second)
			before := e.shares("payment-canary")["payment-canary"]

			seen := make(chan struct{}, 1)
			if _, err := e.sim.dynInf[0].ForResource(virtualServiceGVR()).Informer().AddEventHandler(updateNotifier(seen)); err != nil {
				t.Fatal(err)
			}
			updated := splitRoute(tc.to[0], tc.to[1])
			if _, err := e.dyn.Resource(virtualServiceGVR()).Namespace(testNS).Update(t.Context(), updated, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-seen:
			case <-time.After(10 * time.Second):
				t.Fatal("the informer never saw the update")
			}

			canaryBefore := e.sim.Truth(testNS, "payment-canary").Sent
			e.advance(time.Second)
			canaryStep := e.sim.Truth(testNS, "payment-canary").Sent - canaryBefore
			got := float64(canaryStep) / 1000
			if !near(got, tc.wantCanary, 0.01) {
				t.Errorf("canary share after the update %.3f (before %.3f), want %.2f", got, before, tc.wantCanary)
			}
		})
	}
}

func updateNotifier(seen chan<- struct{}) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{UpdateFunc: func(_, _ any) {
		select {
		case seen <- struct{}{}:
		default:
		}
	}}
}
