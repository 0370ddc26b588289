package install

// Helpers adapted from test/integration/fixture_test.go (test files cannot be
// imported): an application in the canary model, releases, commands by
// annotation, the simulated mesh and Prometheus' scrape targets. The
// application here is one of manifests/examples, applied as a user would.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/controller"
	"github.com/meshcanary/meshcanary/test/meshsim"
)

// app is an example application applied into a namespace of the test.
type app struct {
	t         testing.TB
	ns        string
	name      string // the stable Deployment
	canary    string // the canary Deployment
	container string
	kube      kubernetes.Interface
	dyn       dynamic.Interface
}

// applyExample applies a file of manifests/examples into ns with kubectl,
// exactly as the example's comments tell users to.
func applyExample(t testing.TB, ns, file, stable, container string) *app {
	t.Helper()
	k, d := clients(t)
	if r := kubectl(t, "apply", "-n", ns, "-f", file); r.err != nil {
		t.Fatalf("applying %s: %s", file, r)
	}
	a := &app{t: t, ns: ns, name: stable, canary: stable + annotations.CanarySuffix, container: container, kube: k, dyn: d}
	want := *a.stableDep().Spec.Replicas
	a.waitFor("stable pods available", time.Minute, func() (bool, string) {
		got := a.stableDep().Status.AvailableReplicas
		return got == want, fmt.Sprintf("%d of %d available", got, want)
	})
	return a
}

func (a *app) deployment(name string) *appsv1.Deployment {
	a.t.Helper()
	d, err := a.kube.AppsV1().Deployments(a.ns).Get(context.Background(), name, metav1.GetOptions{})
	must(a.t, err)
	return d
}

func (a *app) stableDep() *appsv1.Deployment { return a.deployment(a.name) }
func (a *app) canaryDep() *appsv1.Deployment { return a.deployment(a.canary) }

func (a *app) phase() string { return a.stableDep().Annotations[annotations.Phase] }

// release changes the canary's pod template, as `kubectl set image` does;
// podAnnotations set the simulated behaviour (meshsim's annotations).
func (a *app) release(image string, podAnnotations map[string]string) {
	a.t.Helper()
	ann := map[string]any{}
	for k, v := range podAnnotations {
		ann[k] = v
	}
	patch := map[string]any{"spec": map[string]any{"template": map[string]any{
		"metadata": map[string]any{"annotations": ann},
		"spec":     map[string]any{"containers": []any{map[string]any{"name": a.container, "image": image}}},
	}}}
	b, err := json.Marshal(patch)
	must(a.t, err)
	_, err = a.kube.AppsV1().Deployments(a.ns).Patch(context.Background(), a.canary, types.StrategicMergePatchType, b, metav1.PatchOptions{})
	must(a.t, err)
}

// annotate writes an annotation on the stable Deployment, as
// `kubectl annotate --overwrite` does (nil removes it).
func (a *app) annotate(key string, value *string) {
	a.t.Helper()
	b, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{key: value}}})
	must(a.t, err)
	_, err = a.kube.AppsV1().Deployments(a.ns).Patch(context.Background(), a.name, types.MergePatchType, b, metav1.PatchOptions{})
	must(a.t, err)
}

// weights reads the stable and canary weights of the route meshcanary
// manages, the one with both subsets.
func (a *app) weights() (stable, canary int) {
	a.t.Helper()
	u, err := a.dyn.Resource(controller.VirtualServiceGVR()).Namespace(a.ns).Get(context.Background(), a.name, metav1.GetOptions{})
	must(a.t, err)
	routes, _, _ := unstructured.NestedSlice(u.Object, "spec", "http")
	for _, r := range routes {
		for _, d := range r.(map[string]any)["route"].([]any) {
			dm := d.(map[string]any)
			w, _ := dm["weight"].(int64)
			switch dm["destination"].(map[string]any)["subset"] {
			case annotations.DefaultStableSubset:
				stable = int(w)
			case annotations.DefaultCanarySubset:
				canary = int(w)
			}
		}
	}
	return stable, canary
}

func (a *app) waitFor(what string, timeout time.Duration, cond func() (bool, string)) {
	a.t.Helper()
	eventually(a.t, what, timeout, cond)
}

func (a *app) waitPhase(p string, timeout time.Duration) {
	a.t.Helper()
	a.waitFor("phase "+p, timeout, func() (bool, string) {
		d := a.stableDep()
		return d.Annotations[annotations.Phase] == p, d.Annotations[annotations.Phase] + ": " + d.Annotations[annotations.Message]
	})
}

func (a *app) waitWeight(canary int, timeout time.Duration) {
	a.t.Helper()
	a.waitFor(fmt.Sprintf("canary weight %d", canary), timeout, func() (bool, string) {
		s, c := a.weights()
		return c == canary, fmt.Sprintf("weights %d/%d, phase %s: %s", s, c, a.phase(), a.stableDep().Annotations[annotations.Message])
	})
}

func (a *app) events() []corev1.Event {
	a.t.Helper()
	l, err := a.kube.CoreV1().Events(a.ns).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + a.name})
	must(a.t, err)
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].LastTimestamp.Before(&l.Items[j].LastTimestamp) })
	return l.Items
}

func (a *app) waitEvent(reason string, timeout time.Duration) {
	a.t.Helper()
	a.waitFor("event "+reason, timeout, func() (bool, string) {
		var seen []string
		for _, e := range a.events() {
			if e.Reason == reason {
				return true, ""
			}
			seen = append(seen, e.Reason)
		}
		return false, strings.Join(seen, ",")
	})
}

// mesh runs the simulated data plane for the app's service and serves its
// Istio metrics on a loopback address for Prometheus to scrape.
func mesh(t testing.TB, ns, host string, rps float64) (addr string) {
	t.Helper()
	k, d := clients(t)
	sim, err := meshsim.New(meshsim.Config{
		Kube: k, Dynamic: d,
		Services:    []meshsim.Service{{Namespace: ns, Host: host, RPS: rps}},
		MaxDuration: 10 * time.Minute, MaxRequests: 10_000_000, Seed: 1,
		Registry: prometheus.NewRegistry(),
	})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sim.Run(ctx) }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { cancel(); <-done; _ = srv.Close() })
	select {
	case <-sim.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("simulated mesh not ready within 30s")
	}
	return ln.Addr().String()
}

// scrapeJob is one item of Prometheus' scrape_configs.
type scrapeJob struct {
	name        string
	target      string
	honorLabels bool
	path        string
	labels      map[string]string // target labels, as service discovery would add
}

// scrapeTargets keeps Prometheus' scrape configuration in step with the
// jobs of the test running now (scenarioMu makes that one test).
type scrapeTargets struct {
	mu   sync.Mutex
	jobs map[string]scrapeJob
}

var scrapes = &scrapeTargets{jobs: map[string]scrapeJob{}}

func (s *scrapeTargets) add(t testing.TB, jobs ...scrapeJob) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range jobs {
		s.jobs[j.name] = j
	}
	must(t, env.SetScrapeConfigs(context.Background(), s.render()))
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, j := range jobs {
			delete(s.jobs, j.name)
		}
		_ = env.SetScrapeConfigs(context.Background(), s.render())
	})
}

func (s *scrapeTargets) render() string {
	names := make([]string, 0, len(s.jobs))
	for n := range s.jobs {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		j := s.jobs[n]
		path := j.path
		if path == "" {
			path = "/metrics"
		}
		fmt.Fprintf(&b, "- job_name: %q\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  metrics_path: %q\n  honor_labels: %t\n  static_configs:\n  - targets: [%q]\n",
			j.name, path, j.honorLabels, j.target)
		if len(j.labels) > 0 {
			keys := make([]string, 0, len(j.labels))
			for k := range j.labels {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			b.WriteString("    labels:\n")
			for _, k := range keys {
				fmt.Fprintf(&b, "      %s: %q\n", k, j.labels[k])
			}
		}
	}
	return b.String()
}

func ptr[T any](v T) *T { return &v }
