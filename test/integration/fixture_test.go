package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
	"sigs.k8s.io/yaml"

	"github.com/meshcanary/meshcanary/internal/testenv"
	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/controller"
	"github.com/meshcanary/meshcanary/pkg/metrics"
	"github.com/meshcanary/meshcanary/pkg/policy"
	"github.com/meshcanary/meshcanary/test/meshsim"
)

// env is the one local control plane this package's tests share; each test
// works in its own namespace with its own controller and simulated mesh.
var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.Options{Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, "testenv: "+f+"\n", a...) }}, &env)
}

func clients(t testing.TB) (kubernetes.Interface, dynamic.Interface) {
	t.Helper()
	k, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	d, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	return k, d
}

// app is the canary model users set up: stable and canary Deployments,
// a Service, a DestinationRule with the two subsets and a VirtualService.
type app struct {
	t      testing.TB
	ns     string
	name   string
	kube   kubernetes.Interface
	dyn    dynamic.Interface
	extra  map[string]string // extra annotations on stable
	stable int32
}

const vsYAML = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: %[1]s
spec:
  hosts: [%[1]s]
  http:
  - name: debug-header
    match: [{headers: {x-debug: {exact: "1"}}}]
    route: [{destination: {host: %[1]s, subset: stable}}]
    timeout: 3s
  - name: primary
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: "5xx,reset"}
    timeout: 10s
    route:
    - destination: {host: %[1]s, subset: stable}
      weight: 100
    - destination: {host: %[1]s, subset: canary}
      weight: 0
`

const drYAML = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: %[1]s
spec:
  host: %[1]s
  trafficPolicy: {connectionPool: {http: {http1MaxPendingRequests: 100}}}
  subsets:
  - name: stable
    labels: {track: stable}
  - name: canary
    labels: {track: canary}
`

func newApp(t testing.TB, name string, stableReplicas int32, extra map[string]string) *app {
	t.Helper()
	k, d := clients(t)
	a := &app{t: t, ns: env.NewNamespace(t), name: name, kube: k, dyn: d, extra: extra, stable: stableReplicas}
	env.DumpLogsOnFailure(t)
	ctx := context.Background()
	ann := map[string]string{annotations.Enabled: "true"}
	for k, v := range extra {
		ann[k] = v
	}
	mk := func(n, track string, replicas int32, ann map[string]string) *appsv1.Deployment {
		labels := map[string]string{"app": name, "track": track}
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: n, Annotations: ann},
			Spec: appsv1.DeploymentSpec{
				Replicas: &replicas,
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{"sandbox.meshcanary.io/latency": "20ms"}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "payment:v1"}},
						Tolerations: []corev1.Toleration{{Key: "kwok.x-k8s.io/node", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}},
				},
			},
		}
	}
	must(t, create(ctx, k, a.ns, mk(name, "stable", stableReplicas, ann)))
	must(t, create(ctx, k, a.ns, mk(name+"-canary", "canary", 0, nil)))
	_, err := k.CoreV1().Services(a.ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	must(t, err)
	a.applyYAML(fmt.Sprintf(drYAML, name), controller.DestinationRuleGVR())
	a.applyYAML(fmt.Sprintf(vsYAML, name), controller.VirtualServiceGVR())
	a.waitFor("stable pods available", 30*time.Second, func() (bool, string) {
		dep := a.deployment(name)
		return dep.Status.AvailableReplicas == stableReplicas, fmt.Sprintf("%d available", dep.Status.AvailableReplicas)
	})
	return a
}

func create(ctx context.Context, k kubernetes.Interface, ns string, d *appsv1.Deployment) error {
	_, err := k.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
	return err
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (a *app) applyYAML(doc string, gvr schema.GroupVersionResource) {
	a.t.Helper()
	u := &unstructured.Unstructured{}
	must(a.t, yaml.Unmarshal([]byte(doc), &u.Object))
	_, err := a.dyn.Resource(gvr).Namespace(a.ns).Create(context.Background(), u, metav1.CreateOptions{})
	must(a.t, err)
}

func (a *app) deployment(name string) *appsv1.Deployment {
	a.t.Helper()
	d, err := a.kube.AppsV1().Deployments(a.ns).Get(context.Background(), name, metav1.GetOptions{})
	must(a.t, err)
	return d
}

func (a *app) stableDep() *appsv1.Deployment { return a.deployment(a.name) }
func (a *app) canaryDep() *appsv1.Deployment { return a.deployment(a.name + "-canary") }

func (a *app) phase() string { return a.stableDep().Annotations[annotations.Phase] }

// release changes the canary's pod template, as `kubectl set image` or a
// GitOps commit would; podAnnotations set the simulated behaviour.
func (a *app) release(image string, podAnnotations map[string]string) {
	a.t.Helper()
	ann := map[string]any{"sandbox.meshcanary.io/latency": "20ms", "sandbox.meshcanary.io/error-rate": nil}
	for k, v := range podAnnotations {
		ann[k] = v
	}
	patch := map[string]any{"spec": map[string]any{"template": map[string]any{
		"metadata": map[string]any{"annotations": ann},
		"spec":     map[string]any{"containers": []any{map[string]any{"name": "app", "image": image}}},
	}}}
	a.patchDeployment(a.name+"-canary", patch)
}

func (a *app) patchDeployment(name string, patch any) {
	a.t.Helper()
	b, err := jsonMarshal(patch)
	must(a.t, err)
	_, err = a.kube.AppsV1().Deployments(a.ns).Patch(context.Background(), name, types.StrategicMergePatchType, b, metav1.PatchOptions{})
	must(a.t, err)
}

// annotate writes an annotation on the stable Deployment, as
// `kubectl annotate --overwrite` does (value nil removes it).
func (a *app) annotate(key string, value *string) {
	a.t.Helper()
	a.patchDeploymentMerge(a.name, map[string]any{"metadata": map[string]any{"annotations": map[string]any{key: value}}})
}

func (a *app) patchDeploymentMerge(name string, patch any) {
	a.t.Helper()
	b, err := jsonMarshal(patch)
	must(a.t, err)
	_, err = a.kube.AppsV1().Deployments(a.ns).Patch(context.Background(), name, types.MergePatchType, b, metav1.PatchOptions{})
	must(a.t, err)
}

func (a *app) vs() *unstructured.Unstructured {
	a.t.Helper()
	u, err := a.dyn.Resource(controller.VirtualServiceGVR()).Namespace(a.ns).Get(context.Background(), a.name, metav1.GetOptions{})
	must(a.t, err)
	return u
}

// weights reads the stable and canary weights of the "primary" route.
func (a *app) weights() (stable, canary int) {
	a.t.Helper()
	routes, _, _ := unstructured.NestedSlice(a.vs().Object, "spec", "http")
	for _, r := range routes {
		rm := r.(map[string]any)
		if rm["name"] != "primary" {
			continue
		}
		for _, d := range rm["route"].([]any) {
			dm := d.(map[string]any)
			w, _ := dm["weight"].(int64)
			switch dm["destination"].(map[string]any)["subset"] {
			case "stable":
				stable = int(w)
			case "canary":
				canary = int(w)
			}
		}
	}
	return stable, canary
}

// waitFor polls until cond holds or the deadline passes; it never sleeps a
// fixed time as a way of waiting for something.
func (a *app) waitFor(what string, timeout time.Duration, cond func() (bool, string)) {
	a.t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			a.t.Fatalf("timed out after %s waiting for %s; last: %s", timeout, what, last)
		}
		pollPause()
	}
}

// pollPause is the interval between two polls of a condition.
func pollPause() { <-time.After(100 * time.Millisecond) }

func (a *app) waitPhase(p string, timeout time.Duration) {
	a.t.Helper()
	a.waitFor("phase "+p, timeout, func() (bool, string) {
		d := a.stableDep()
		return d.Annotations[annotations.Phase] == p, d.Annotations[annotations.Phase] + ": " + d.Annotations[annotations.Message]
	})
}

func (a *app) events() []corev1.Event {
	a.t.Helper()
	l, err := a.kube.CoreV1().Events(a.ns).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + a.name})
	must(a.t, err)
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].LastTimestamp.Before(&l.Items[j].LastTimestamp) })
	return l.Items
}

func (a *app) waitEvent(reason, contains string, timeout time.Duration) corev1.Event {
	a.t.Helper()
	var found corev1.Event
	a.waitFor("event "+reason, timeout, func() (bool, string) {
		var seen []string
		for _, e := range a.events() {
			seen = append(seen, e.Reason)
			if e.Reason == reason && strings.Contains(e.Message, contains) {
				found = e
				return true, ""
			}
		}
		return false, strings.Join(seen, ",")
	})
	return found
}

// runController runs the controller in-process, scoped to the app's
// namespace, until the test ends or stop is called.
type runningController struct {
	stop  context.CancelFunc
	done  chan struct{}
	store *policy.Store
	ctrl  *controller.Controller
}

func (a *app) runController(policies *policy.File, promURL string) *runningController {
	a.t.Helper()
	store := policy.NewStore()
	store.Set(policies)
	return a.runControllerWithStore(store, promURL)
}

func (a *app) runControllerWithStore(store *policy.Store, promURL string) *runningController {
	a.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactoryWithOptions(a.kube, 0, informers.WithNamespace(a.ns))
	dynFactory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(a.dyn, 0, a.ns, nil)
	pc, err := promapi.NewClient(promapi.Config{Address: promURL})
	must(a.t, err)
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: a.kube.CoreV1().Events("")})
	log := zerolog.New(zerolog.NewTestWriter(a.t)).Level(zerolog.InfoLevel).With().Timestamp().Logger()
	c, err := controller.New(controller.Config{
		Kube:             a.kube,
		Dynamic:          a.dyn,
		Deploys:          factory.Apps().V1().Deployments(),
		VSs:              dynFactory.ForResource(controller.VirtualServiceGVR()).Informer(),
		DRs:              dynFactory.ForResource(controller.DestinationRuleGVR()).Informer(),
		Policies:         store,
		Analyzer:         metrics.NewAnalyzer(promv1.NewAPI(pc)),
		Recorder:         broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "meshcanary"}),
		Clock:            clock.RealClock{},
		Metrics:          controller.NewMetrics(prometheus.NewRegistry()),
		Log:              log,
		ProgressDeadline: time.Minute,
	})
	must(a.t, err)
	factory.Start(ctx.Done())
	dynFactory.Start(ctx.Done())
	rc := &runningController{stop: cancel, done: make(chan struct{}), store: store, ctrl: c}
	go func() {
		defer close(rc.done)
		_ = c.Run(ctx)
		broadcaster.Shutdown()
	}()
	a.t.Cleanup(rc.Stop)
	return rc
}

// Stop ends the controller abruptly, as a killed process would: whatever it
// was doing is cut off mid-flight.
func (rc *runningController) Stop() {
	rc.stop()
	<-rc.done
}

// mesh runs the simulated data plane for the app's service and registers it
// as a Prometheus scrape target for the test's lifetime.
func (a *app) mesh(rps float64) *meshsim.Sim {
	a.t.Helper()
	reg := prometheus.NewRegistry()
	sim, err := meshsim.New(meshsim.Config{
		Kube: a.kube, Dynamic: a.dyn,
		Services:    []meshsim.Service{{Namespace: a.ns, Host: a.name, RPS: rps}},
		MaxDuration: 10 * time.Minute, MaxRequests: 10_000_000, Seed: 1,
		Registry: reg,
	})
	must(a.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sim.Run(ctx) }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(a.t, err)
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	scrapes.add(a.t, a.ns, ln.Addr().String())
	a.t.Cleanup(func() { cancel(); <-done; _ = srv.Close() })
	select {
	case <-sim.Ready():
	case <-time.After(30 * time.Second):
		a.t.Fatal("simulated mesh not ready within 30s")
	}
	return sim
}

// scrapeTargets keeps the Prometheus scrape configuration in step with the
// simulated meshes of the tests running now.
type scrapeTargets struct {
	mu      sync.Mutex
	targets map[string]string // job -> address
}

var scrapes = &scrapeTargets{targets: map[string]string{}}

func (s *scrapeTargets) add(t testing.TB, job, addr string) {
	t.Helper()
	s.mu.Lock()
	s.targets[job] = addr
	must(t, env.SetScrapeConfigs(context.Background(), s.render()))
	s.mu.Unlock()
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.targets, job)
		_ = env.SetScrapeConfigs(context.Background(), s.render())
	})
}

func (s *scrapeTargets) render() string {
	jobs := make([]string, 0, len(s.targets))
	for j := range s.targets {
		jobs = append(jobs, j)
	}
	sort.Strings(jobs)
	var b strings.Builder
	for _, j := range jobs {
		fmt.Fprintf(&b, "- job_name: %s\n  scrape_interval: 1s\n  static_configs:\n  - targets: ['%s']\n", j, s.targets[j])
	}
	return b.String()
}

func parsePolicies(t testing.TB, doc string) *policy.File {
	t.Helper()
	f, err := policy.Parse([]byte(doc))
	must(t, err)
	return f
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func ptr[T any](v T) *T { return &v }
