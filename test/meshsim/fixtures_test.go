package meshsim

import (
	"fmt"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
)

const testNS = "shop"

// testEpoch is the fake clock's start; any fixed instant would do.
func testEpoch() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

func listKinds() map[schema.GroupVersionResource]string {
	return map[schema.GroupVersionResource]string{
		virtualServiceGVR():  "VirtualServiceList",
		destinationRuleGVR(): "DestinationRuleList",
	}
}

// env is a simulator over fake clients whose clock the test drives.
type env struct {
	sim  *Sim
	reg  *prometheus.Registry
	kube *kubefake.Clientset
	dyn  *dynamicfake.FakeDynamicClient
	now  time.Time
}

// newEnv starts the informers and the generator clock but no ticker: the
// test steps the generator itself. Zero bounds become generous ones.
func newEnv(t *testing.T, cfg Config, kubeObjs, istioObjs []runtime.Object) *env {
	t.Helper()
	e := &env{
		reg:  prometheus.NewRegistry(),
		kube: kubefake.NewClientset(kubeObjs...),
		dyn:  dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds(), istioObjs...),
		now:  testEpoch(),
	}
	cfg.Kube, cfg.Dynamic, cfg.Registry = e.kube, e.dyn, e.reg
	if cfg.MaxDuration == 0 {
		cfg.MaxDuration = time.Hour
	}
	if cfg.MaxRequests == 0 {
		cfg.MaxRequests = 1 << 40
	}
	if len(cfg.Services) == 0 {
		cfg.Services = []Service{{Namespace: testNS, Host: "payment-service", RPS: 20000}}
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	stop, err := s.startInformers(t.Context())
	t.Cleanup(stop)
	if err != nil {
		t.Fatalf("informers: %v", err)
	}
	s.begin(e.now)
	e.sim = s
	return e
}

func (e *env) advance(d time.Duration) (done bool) {
	e.now = e.now.Add(d)
	return e.sim.step(e.now)
}

// scrape returns the exposition text served by Handler.
func (e *env) scrape(t *testing.T) string {
	t.Helper()
	rec := httptest.NewRecorder()
	e.sim.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// value sums the counters (or histogram counts) of name whose labels include
// want.
func (e *env) value(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !hasLabels(m, want) {
				continue
			}
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Histogram != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, lp := range m.GetLabel() {
		got[lp.GetName()] = lp.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

type podOpt func(*corev1.Pod)

func notReady() podOpt {
	return func(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse }
}

func terminating() podOpt {
	return func(p *corev1.Pod) {
		now := metav1.NewTime(testEpoch())
		p.DeletionTimestamp = &now
		p.Finalizers = []string{"test/keep"}
	}
}

func annotated(k, v string) podOpt {
	return func(p *corev1.Pod) {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[k] = v
	}
}

// deploymentPod is pod i of a Deployment, owned by its ReplicaSet the way
// the Deployment controller names things.
func deploymentPod(deployment string, i int, lbls map[string]string, opts ...podOpt) *corev1.Pod {
	const hash = "5d8f7c9b4"
	l := map[string]string{"pod-template-hash": hash}
	for k, v := range lbls {
		l[k] = v
	}
	isController := true
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      fmt.Sprintf("%s-%s-%05d", deployment, hash, i),
			Namespace: testNS,
			Labels:    l,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: deployment + "-" + hash,
				UID: "rs-uid", Controller: &isController,
			}},
		},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func service(name string, selector map[string]string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS},
		Spec:       corev1.ServiceSpec{Selector: selector},
	}
}

// stableAndCanary is the usual canary layout: one Service selecting
// app=payment, two Deployments told apart by the version label.
func stableAndCanary(podsEach int, canaryOpts ...podOpt) []runtime.Object {
	objs := []runtime.Object{service("payment-service", map[string]string{"app": "payment"})}
	for i := range podsEach {
		objs = append(objs,
			deploymentPod("payment-stable", i, map[string]string{"app": "payment", "version": "v1"}),
			deploymentPod("payment-canary", i, map[string]string{"app": "payment", "version": "v2"}, canaryOpts...))
	}
	return objs
}

func virtualService(name string, hosts []string, routes ...map[string]any) *unstructured.Unstructured {
	hs := make([]any, len(hosts))
	for i, h := range hosts {
		hs[i] = h
	}
	rs := make([]any, len(routes))
	for i, r := range routes {
		rs[i] = r
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1",
		"kind":       "VirtualService",
		"metadata":   map[string]any{"name": name, "namespace": testNS},
		"spec":       map[string]any{"hosts": hs, "http": rs},
	}}
}

func httpRoute(dests ...map[string]any) map[string]any {
	ds := make([]any, len(dests))
	for i, d := range dests {
		ds[i] = d
	}
	return map[string]any{"route": ds}
}

func matchedRoute(header string, dests ...map[string]any) map[string]any {
	r := httpRoute(dests...)
	r["match"] = []any{map[string]any{"headers": map[string]any{header: map[string]any{"exact": "1"}}}}
	return r
}

// weighted is a route destination; weight < 0 leaves the weight out.
func weighted(host, subset string, weight int64) map[string]any {
	d := map[string]any{"host": host}
	if subset != "" {
		d["subset"] = subset
	}
	out := map[string]any{"destination": d}
	if weight >= 0 {
		out["weight"] = weight
	}
	return out
}

func destinationRule(name, host string, subsets map[string]map[string]string) *unstructured.Unstructured {
	names := make([]string, 0, len(subsets))
	for n := range subsets {
		names = append(names, n)
	}
	slices.Sort(names)
	var ss []any
	for _, n := range names {
		l := map[string]any{}
		for k, v := range subsets[n] {
			l[k] = v
		}
		ss = append(ss, map[string]any{"name": n, "labels": l})
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1",
		"kind":       "DestinationRule",
		"metadata":   map[string]any{"name": name, "namespace": testNS},
		"spec":       map[string]any{"host": host, "subsets": ss},
	}}
}

func stableCanaryRule() *unstructured.Unstructured {
	return destinationRule("payment", "payment-service", map[string]map[string]string{
		"stable": {"version": "v1"},
		"canary": {"version": "v2"},
	})
}

func splitRoute(stable, canary int64) *unstructured.Unstructured {
	return virtualService("payment", []string{"payment-service"}, httpRoute(
		weighted("payment-service", "stable", stable),
		weighted("payment-service", "canary", canary),
	))
}

// shares is the share of sent requests per destination workload.
func (e *env) shares(workloads ...string) map[string]float64 {
	total := e.sim.TruthByService(testNS, "payment-service").Sent
	out := map[string]float64{}
	for _, w := range workloads {
		out[w] = float64(e.sim.Truth(testNS, w).Sent) / float64(max(total, 1))
	}
	return out
}

func near(got, want, tol float64) bool { return got >= want-tol && got <= want+tol }

func labelNames(line string) []string {
	lo, hi := strings.IndexByte(line, '{'), strings.LastIndexByte(line, '}')
	if lo < 0 || hi < lo {
		return nil
	}
	var names []string
	for _, pair := range strings.Split(line[lo+1:hi], ",") {
		if name, _, ok := strings.Cut(pair, "="); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}
