package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
	"github.com/meshcanary/meshcanary/pkg/apis/meshcanary/v1alpha1"
	"github.com/meshcanary/meshcanary/pkg/controller"
	"github.com/meshcanary/meshcanary/pkg/gates"
	"github.com/meshcanary/meshcanary/pkg/metrics"
	"github.com/meshcanary/meshcanary/pkg/policy"
	"github.com/meshcanary/meshcanary/pkg/release"
	"github.com/meshcanary/meshcanary/pkg/status"
	"github.com/meshcanary/meshcanary/test/meshsim"
)

// Suite is one test package's shared local control plane: each test works
// in its own namespace with its own controller and simulated mesh.
type Suite struct {
	env *testenv.Env
	// scrapes keeps Prometheus' scrape configuration in step with the
	// simulated meshes of the tests running now.
	mu      sync.Mutex
	targets map[string]ScrapeJob // by job name
}

// NewSuite returns a Suite; Main fills in its environment.
func NewSuite() *Suite { return &Suite{targets: map[string]ScrapeJob{}} }

// Main is the test package's TestMain: one control plane for all its tests.
func (s *Suite) Main(m *testing.M) {
	testenv.Main(m, testenv.Options{Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, "testenv: "+f+"\n", a...) }}, &s.env)
}

// Env is the running control plane.
func (s *Suite) Env() *testenv.Env { return s.env }

// Clients returns admin clients of the control plane, for work outside an
// App (namespaces, RBAC checks, objects a chart installed).
func (s *Suite) Clients(t testing.TB) (kubernetes.Interface, dynamic.Interface) {
	t.Helper()
	return s.clients(t)
}

func (s *Suite) clients(t testing.TB) (kubernetes.Interface, dynamic.Interface) {
	t.Helper()
	k, err := kubernetes.NewForConfig(s.env.Config)
	if err != nil {
		t.Fatal(err)
	}
	d, err := dynamic.NewForConfig(s.env.Config)
	if err != nil {
		t.Fatal(err)
	}
	return k, d
}

// App is the canary model users set up: stable and canary Deployments,
// a Service, a DestinationRule with the two subsets and a VirtualService.
type App struct {
	s      *Suite
	t      testing.TB
	ns     string
	name   string
	kube   kubernetes.Interface
	dyn    dynamic.Interface
	extra  map[string]string // extra annotations on stable
	stable int32
	// notifier, when set, receives the controller's notifications.
	notifier controller.Notifier
	// maxReleases is the next controller's --max-concurrent-releases.
	maxReleases int
}

// SetNotifier makes the next RunController send notifications to n.
func (a *App) SetNotifier(n controller.Notifier) { a.notifier = n }

// SetMaxConcurrentReleases caps the releases in flight of the next
// RunController, as --max-concurrent-releases does; 0 is no cap.
func (a *App) SetMaxConcurrentReleases(n int) { a.maxReleases = n }

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
      weight: %[2]d
    - destination: {host: %[1]s, subset: canary}
      weight: %[3]d
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

func (s *Suite) NewApp(t testing.TB, name string, stableReplicas int32, extra map[string]string) *App {
	t.Helper()
	return s.NewAppWith(t, name, stableReplicas, AppOptions{Annotations: extra})
}

// AppOptions change what NewAppWith creates; the zero value creates what
// NewApp does.
type AppOptions struct {
	// Namespace is an existing namespace to create the app in, such as
	// another app's; empty means a new namespace of the test's own.
	Namespace string
	// Annotations are added to the stable Deployment's (NewApp's extra).
	Annotations map[string]string
	// NotOptedIn leaves meshcanary.io/enabled=true out of the stable
	// Deployment's annotations.
	NotOptedIn bool
	// StableLabels, when not nil, replace app=NAME, track=stable as the
	// stable Deployment's selector and pod labels.
	StableLabels map[string]string
	// StableOnly creates the stable Deployment and the Service alone, as a
	// team has them before adopting meshcanary: no canary Deployment,
	// DestinationRule or VirtualService.
	StableOnly bool
	// CanaryWeight is the canary's weight in the VirtualService's primary
	// route; stable has the rest.
	CanaryWeight int
}

// NewAppWith is NewApp with the objects shaped by o.
func (s *Suite) NewAppWith(t testing.TB, name string, stableReplicas int32, o AppOptions) *App {
	t.Helper()
	k, d := s.clients(t)
	ns := o.Namespace
	if ns == "" {
		ns = s.env.NewNamespace(t)
		s.env.DumpLogsOnFailure(t)
	}
	a := &App{s: s, t: t, ns: ns, name: name, kube: k, dyn: d, extra: o.Annotations, stable: stableReplicas}
	Must(t, a.create(context.Background(), o))
	a.WaitFor("stable pods available", 30*time.Second, func() (bool, string) {
		dep := a.Deployment(name)
		return dep.Status.AvailableReplicas == stableReplicas, fmt.Sprintf("%d available", dep.Status.AvailableReplicas)
	})
	return a
}

// create makes the app's objects as o says, returning the first error
// rather than failing the test, so that many apps can be made at once.
func (a *App) create(ctx context.Context, o AppOptions) error {
	name := a.name
	ann := map[string]string{}
	if !o.NotOptedIn {
		ann[annotations.Enabled] = "true"
	}
	for k, v := range o.Annotations {
		ann[k] = v
	}
	mk := func(n string, labels map[string]string, replicas int32, ann map[string]string) *appsv1.Deployment {
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
	stableLabels := o.StableLabels
	if stableLabels == nil {
		stableLabels = map[string]string{"app": name, "track": "stable"}
	}
	if err := create(ctx, a.kube, a.ns, mk(name, stableLabels, a.stable, ann)); err != nil {
		return err
	}
	if !o.StableOnly {
		if err := create(ctx, a.kube, a.ns, mk(name+"-canary", map[string]string{"app": name, "track": "canary"}, 0, nil)); err != nil {
			return err
		}
	}
	_, err := a.kube.CoreV1().Services(a.ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	if err != nil || o.StableOnly {
		return err
	}
	if err := a.apply(ctx, fmt.Sprintf(drYAML, name), controller.DestinationRuleGVR()); err != nil {
		return err
	}
	return a.apply(ctx, fmt.Sprintf(vsYAML, name, 100-o.CanaryWeight, o.CanaryWeight), controller.VirtualServiceGVR())
}

func create(ctx context.Context, k kubernetes.Interface, ns string, d *appsv1.Deployment) error {
	_, err := k.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
	return err
}

// Must fails the test on err.
func Must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (a *App) ApplyYAML(doc string, gvr schema.GroupVersionResource) {
	a.t.Helper()
	Must(a.t, a.apply(context.Background(), doc, gvr))
}

func (a *App) apply(ctx context.Context, doc string, gvr schema.GroupVersionResource) error {
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		return err
	}
	_, err := a.dyn.Resource(gvr).Namespace(a.ns).Create(ctx, u, metav1.CreateOptions{})
	return err
}

func (a *App) Deployment(name string) *appsv1.Deployment {
	a.t.Helper()
	d, err := a.kube.AppsV1().Deployments(a.ns).Get(context.Background(), name, metav1.GetOptions{})
	Must(a.t, err)
	return d
}

// NS is the app's namespace, Name its stable Deployment's name.
func (a *App) NS() string   { return a.ns }
func (a *App) Name() string { return a.name }

// Kube and Dyn are admin clients of the control plane.
func (a *App) Kube() kubernetes.Interface { return a.kube }
func (a *App) Dyn() dynamic.Interface     { return a.dyn }

func (a *App) StableDep() *appsv1.Deployment { return a.Deployment(a.name) }
func (a *App) CanaryDep() *appsv1.Deployment { return a.Deployment(a.name + "-canary") }

func (a *App) Phase() string { return a.StableDep().Annotations[annotations.Phase] }

// CanaryRelease is the stable Deployment's status resource, or nil before
// the controller created it.
func (a *App) CanaryRelease() *v1alpha1.CanaryRelease {
	a.t.Helper()
	cr, err := release.Get(context.Background(), a.dyn, a.ns, a.name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	Must(a.t, err)
	return cr
}

// View is everything published about the app's rollout: the Deployment's
// summary and commands, the CanaryRelease's state and history.
func (a *App) View() status.View {
	a.t.Helper()
	v, err := status.ReadWith(a.StableDep(), a.CanaryRelease())
	Must(a.t, err)
	return v
}

// release changes the canary's pod template, as `kubectl set image` or a
// GitOps commit would; podAnnotations set the simulated behaviour.
func (a *App) Release(image string, podAnnotations map[string]string) {
	a.t.Helper()
	ann := map[string]any{"sandbox.meshcanary.io/latency": "20ms", "sandbox.meshcanary.io/error-rate": nil}
	for k, v := range podAnnotations {
		ann[k] = v
	}
	a.releaseTemplate("app", image, ann)
}

// ReleaseImage changes the image of the canary's container and adds
// podAnnotations to its pod template, and nothing else, as
// `kubectl set image` does: for apps whose objects the test did not write
// (ExistingApp), whose container is not NewApp's "app" and whose pods carry
// no simulated behaviour unless podAnnotations give it.
func (a *App) ReleaseImage(container, image string, podAnnotations map[string]string) {
	a.t.Helper()
	ann := map[string]any{}
	for k, v := range podAnnotations {
		ann[k] = v
	}
	a.releaseTemplate(container, image, ann)
}

func (a *App) releaseTemplate(container, image string, ann map[string]any) {
	a.t.Helper()
	patch := map[string]any{"spec": map[string]any{"template": map[string]any{
		"metadata": map[string]any{"annotations": ann},
		"spec":     map[string]any{"containers": []any{map[string]any{"name": container, "image": image}}},
	}}}
	a.PatchDeployment(a.name+"-canary", patch)
}

func (a *App) PatchDeployment(name string, patch any) {
	a.t.Helper()
	b, err := jsonMarshal(patch)
	Must(a.t, err)
	_, err = a.kube.AppsV1().Deployments(a.ns).Patch(context.Background(), name, types.StrategicMergePatchType, b, metav1.PatchOptions{})
	Must(a.t, err)
}

// annotate writes an annotation on the stable Deployment, as
// `kubectl annotate --overwrite` does (value nil removes it).
func (a *App) Annotate(key string, value *string) {
	a.t.Helper()
	a.PatchDeploymentMerge(a.name, map[string]any{"metadata": map[string]any{"annotations": map[string]any{key: value}}})
}

func (a *App) PatchDeploymentMerge(name string, patch any) {
	a.t.Helper()
	b, err := jsonMarshal(patch)
	Must(a.t, err)
	_, err = a.kube.AppsV1().Deployments(a.ns).Patch(context.Background(), name, types.MergePatchType, b, metav1.PatchOptions{})
	Must(a.t, err)
}

func (a *App) VS() *unstructured.Unstructured {
	a.t.Helper()
	u, err := a.dyn.Resource(controller.VirtualServiceGVR()).Namespace(a.ns).Get(context.Background(), a.name, metav1.GetOptions{})
	Must(a.t, err)
	return u
}

// weights reads the stable and canary weights of the "primary" route.
func (a *App) Weights() (stable, canary int) {
	a.t.Helper()
	routes, _, _ := unstructured.NestedSlice(a.VS().Object, "spec", "http")
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
func (a *App) WaitFor(what string, timeout time.Duration, cond func() (bool, string)) {
	a.t.Helper()
	WaitFor(a.t, what, timeout, cond)
}

// WaitFor is App.WaitFor failing t, for waits in a subtest or without an
// App.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last: %s", timeout, what, last)
		}
		pollPause()
	}
}

// pollPause is the interval between two polls of a condition.
func pollPause() { <-time.After(100 * time.Millisecond) }

func (a *App) WaitPhase(p string, timeout time.Duration) {
	a.t.Helper()
	a.WaitFor("phase "+p, timeout, func() (bool, string) {
		d := a.StableDep()
		return d.Annotations[annotations.Phase] == p, d.Annotations[annotations.Phase] + ": " + d.Annotations[annotations.Message]
	})
}

// WaitCanaryWeight waits until the canary's weight in the primary route
// is w.
func (a *App) WaitCanaryWeight(w int, timeout time.Duration) {
	a.t.Helper()
	a.WaitFor(fmt.Sprintf("canary weight %d%%", w), timeout, func() (bool, string) {
		_, c := a.Weights()
		return c == w, fmt.Sprintf("canary %d%%, phase %s", c, a.Phase())
	})
}

func (a *App) Events() []corev1.Event {
	a.t.Helper()
	l, err := a.kube.CoreV1().Events(a.ns).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + a.name})
	Must(a.t, err)
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].LastTimestamp.Before(&l.Items[j].LastTimestamp) })
	return l.Items
}

func (a *App) WaitEvent(reason, contains string, timeout time.Duration) corev1.Event {
	a.t.Helper()
	var found corev1.Event
	a.WaitFor("event "+reason, timeout, func() (bool, string) {
		var seen []string
		for _, e := range a.Events() {
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
// Controller is a controller running in-process for one test.
type Controller struct {
	stop  context.CancelFunc
	done  chan struct{}
	store *policy.Store
	Ctrl  *controller.Controller
	// Metrics are the controller's own metrics, for benchmarks that count.
	Metrics *controller.Metrics
}

func (a *App) RunController(policies *policy.File, promURL string) *Controller {
	a.t.Helper()
	store := policy.NewStore()
	store.Set(policies)
	return a.RunControllerWithStore(store, promURL)
}

func (a *App) RunControllerWithStore(store *policy.Store, promURL string) *Controller {
	a.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactoryWithOptions(a.kube, 0, informers.WithNamespace(a.ns))
	dynFactory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(a.dyn, 0, a.ns, nil)
	pc, err := promapi.NewClient(promapi.Config{Address: promURL})
	Must(a.t, err)
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: a.kube.CoreV1().Events("")})
	log := zerolog.New(zerolog.NewTestWriter(a.t)).Level(zerolog.InfoLevel).With().Timestamp().Logger()
	var ctrl atomic.Pointer[controller.Controller]
	runner := gates.NewRunner(gates.Options{Log: log, Done: func(k string) {
		if c := ctrl.Load(); c != nil {
			c.Enqueue(k)
		}
	}})
	go runner.Run(ctx)
	cm := controller.NewMetrics(prometheus.NewRegistry())
	c, err := controller.New(controller.Config{
		Gates:            runner,
		Notifier:         a.notifier,
		Kube:             a.kube,
		Dynamic:          a.dyn,
		Deploys:          factory.Apps().V1().Deployments(),
		VSs:              dynFactory.ForResource(controller.VirtualServiceGVR()).Informer(),
		DRs:              dynFactory.ForResource(controller.DestinationRuleGVR()).Informer(),
		Releases:         dynFactory.ForResource(v1alpha1.GVR()).Informer(),
		Policies:         store,
		Analyzer:         metrics.NewAnalyzer(promv1.NewAPI(pc), metrics.Options{}),
		Recorder:         broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "meshcanary"}),
		Clock:            clock.RealClock{},
		Metrics:          cm,
		Log:              log,
		ProgressDeadline: time.Minute,
		// Releases beyond the cap wait, queued; 0 is no cap.
		MaxConcurrentReleases: a.maxReleases,
	})
	Must(a.t, err)
	ctrl.Store(c)
	factory.Start(ctx.Done())
	dynFactory.Start(ctx.Done())
	rc := &Controller{stop: cancel, done: make(chan struct{}), store: store, Ctrl: c, Metrics: cm}
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
func (rc *Controller) Stop() {
	rc.stop()
	<-rc.done
}

// mesh runs the simulated data plane for the app's service and registers it
// as a Prometheus scrape target for the test's lifetime.
func (a *App) Mesh(rps float64) *meshsim.Sim {
	a.t.Helper()
	return a.MeshSeeded(rps, 1)
}

// MeshSeeded is Mesh with the simulated mesh's random seed: tests keep the
// fixed seed of Mesh so they replay; benchmarks vary it, because a single
// sequence of simulated errors is one sample, not a measurement.
func (a *App) MeshSeeded(rps float64, seed int64) *meshsim.Sim {
	a.t.Helper()
	reg := prometheus.NewRegistry()
	sim, err := meshsim.New(meshsim.Config{
		Kube: a.kube, Dynamic: a.dyn,
		Services:    []meshsim.Service{{Namespace: a.ns, Host: a.name, RPS: rps}},
		MaxDuration: 15 * time.Minute, MaxRequests: 10_000_000, Seed: seed,
		Registry: reg,
	})
	Must(a.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sim.Run(ctx) }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Must(a.t, err)
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	a.s.AddScrapeTarget(a.t, a.ns, ln.Addr().String())
	a.t.Cleanup(func() { cancel(); <-done; _ = srv.Close() })
	select {
	case <-sim.Ready():
	case <-time.After(30 * time.Second):
		a.t.Fatal("simulated mesh not ready within 30s")
	}
	return sim
}

// ScrapeJob is one job of Prometheus' scrape configuration, scraped every
// second with one static target.
type ScrapeJob struct {
	Job    string // job_name
	Target string // host:port
	// Path is metrics_path; empty means Prometheus' default, /metrics.
	Path        string
	HonorLabels bool
	// Labels are target labels, as service discovery would add them.
	Labels map[string]string
}

// AddScrapeTarget has Prometheus scrape addr as job, alongside the
// simulated meshes, until t ends: for what a test runs besides a mesh, such
// as a controller's /metrics.
func (s *Suite) AddScrapeTarget(t testing.TB, job, addr string) {
	t.Helper()
	s.AddScrapeJobs(t, ScrapeJob{Job: job, Target: addr})
}

// AddScrapeJobs is AddScrapeTarget for jobs with more than a target, such
// as the job prometheus-operator makes of a ServiceMonitor; a job replaces
// one of the same name until t ends.
func (s *Suite) AddScrapeJobs(t testing.TB, jobs ...ScrapeJob) {
	t.Helper()
	s.mu.Lock()
	for _, j := range jobs {
		s.targets[j.Job] = j
	}
	Must(t, s.env.SetScrapeConfigs(context.Background(), s.render()))
	s.mu.Unlock()
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, j := range jobs {
			delete(s.targets, j.Job)
		}
		_ = s.env.SetScrapeConfigs(context.Background(), s.render())
	})
}

func (s *Suite) render() string {
	jobs := make([]string, 0, len(s.targets))
	for j := range s.targets {
		jobs = append(jobs, j)
	}
	sort.Strings(jobs)
	var b strings.Builder
	for _, name := range jobs {
		j := s.targets[name]
		fmt.Fprintf(&b, "- job_name: %s\n  scrape_interval: 1s\n", j.Job)
		if j.Path != "" {
			fmt.Fprintf(&b, "  metrics_path: %q\n", j.Path)
		}
		if j.HonorLabels {
			b.WriteString("  honor_labels: true\n")
		}
		fmt.Fprintf(&b, "  static_configs:\n  - targets: ['%s']\n", j.Target)
		if len(j.Labels) > 0 {
			keys := make([]string, 0, len(j.Labels))
			for k := range j.Labels {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			b.WriteString("    labels:\n")
			for _, k := range keys {
				fmt.Fprintf(&b, "      %s: %q\n", k, j.Labels[k])
			}
		}
	}
	return b.String()
}

// PromProxy stands between a controller and the suite's Prometheus so that
// a test can take Prometheus away (connections dropped, as by a dead host)
// without stopping the shared one.
type PromProxy struct {
	ln   net.Listener
	srv  *http.Server
	down atomic.Bool
	hang atomic.Bool
	// hung counts the queries being held unanswered now.
	hung atomic.Int64
	// warning, when set, is added to every answer's warnings, as a
	// Prometheus (or Thanos) answering in part does.
	warning atomic.Pointer[string]
	// dropWorkload, when set, removes that destination_workload's series
	// from every answer, as when a version's telemetry goes missing.
	dropWorkload atomic.Pointer[string]
	// requests counts the requests the proxy received.
	requests atomic.Int64
}

// Requests is how many requests (queries) the proxy has received.
func (p *PromProxy) Requests() int64 { return p.requests.Load() }

// NewPromProxy starts a PromProxy that passes requests on until t ends.
func (s *Suite) NewPromProxy(t testing.TB) *PromProxy {
	t.Helper()
	target, err := url.Parse(s.env.PrometheusURL)
	Must(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Must(t, err)
	p := &PromProxy{ln: ln}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Del("Accept-Encoding") // answers may be rewritten as plain JSON
		},
		ModifyResponse: p.rewrite,
	}
	p.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		if p.hang.Load() {
			// Accept the query and never answer, as an overloaded
			// Prometheus does, until the caller gives up.
			p.hung.Add(1)
			<-r.Context().Done()
			p.hung.Add(-1)
			return
		}
		if p.down.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					_ = c.Close()
					return
				}
			}
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = p.srv.Serve(ln) }()
	t.Cleanup(func() { _ = p.srv.Close() })
	return p
}

// URL is the proxy's address, for a controller's Prometheus URL.
func (p *PromProxy) URL() string { return "http://" + p.ln.Addr().String() }

// SetWarning makes every answer carry warning (empty: none).
func (p *PromProxy) SetWarning(warning string) { p.warning.Store(optional(warning)) }

// DropWorkload removes workload's series from every answer (empty: none).
func (p *PromProxy) DropWorkload(workload string) { p.dropWorkload.Store(optional(workload)) }

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// rewrite applies SetWarning and DropWorkload to a query answer.
func (p *PromProxy) rewrite(resp *http.Response) error {
	warning, drop := p.warning.Load(), p.dropWorkload.Load()
	if (warning == nil && drop == nil) || resp.StatusCode != http.StatusOK {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return err
	}
	var answer map[string]any
	if err := json.Unmarshal(body, &answer); err == nil {
		if warning != nil {
			answer["warnings"] = []string{*warning}
		}
		if data, ok := answer["data"].(map[string]any); ok && drop != nil {
			data["result"] = withoutWorkload(data["result"], *drop)
		}
		if out, err := json.Marshal(answer); err == nil {
			body = out
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}

func withoutWorkload(result any, workload string) any {
	series, ok := result.([]any)
	if !ok {
		return result
	}
	kept := []any{}
	for _, s := range series {
		m, _ := s.(map[string]any)
		labels, _ := m["metric"].(map[string]any)
		if labels["destination_workload"] != workload {
			kept = append(kept, s)
		}
	}
	return kept
}

// SetDown takes Prometheus away (true) or brings it back (false).
func (p *PromProxy) SetDown(down bool) { p.down.Store(down) }

// SetHanging makes every query hang unanswered (true), or answer again.
func (p *PromProxy) SetHanging(hang bool) { p.hang.Store(hang) }

// Hung is the number of queries held unanswered right now.
func (p *PromProxy) Hung() int64 { return p.hung.Load() }

func ParsePolicies(t testing.TB, doc string) *policy.File {
	t.Helper()
	f, err := policy.Parse([]byte(doc))
	Must(t, err)
	return f
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// Ptr returns a pointer to v, for annotation values.
func Ptr[T any](v T) *T { return &v }

// manifestKinds maps the kinds NewAppFromManifest creates to their
// resources.
var manifestKinds = map[string]schema.GroupVersionResource{
	"Namespace":       {Version: "v1", Resource: "namespaces"},
	"Service":         {Version: "v1", Resource: "services"},
	"ConfigMap":       {Version: "v1", Resource: "configmaps"},
	"Deployment":      {Group: "apps", Version: "v1", Resource: "deployments"},
	"DestinationRule": controller.DestinationRuleGVR(),
	"VirtualService":  controller.VirtualServiceGVR(),
}

// NewAppFromManifest creates an app from a multi-document YAML manifest
// (such as hack/demo/app.yaml) in the fixed namespace its Namespace
// document names, rather than in a namespace of the test's own: for tests
// that run commands written for people, which name the namespace. Every
// object is created as written, except that edit, when not nil, may change
// each one first (for example the stable Deployment's annotations). name is
// the stable Deployment; the call returns once its pods are available.
//
// The namespace is created if it does not exist and is kept when t ends,
// because deleting a namespace takes seconds; what t created in it is
// deleted instead, with the namespace's Events, and t's cleanup returns
// once no Pod or ReplicaSet is left, so that the next test can create the
// same objects again. Tests sharing a namespace must therefore not run in
// parallel, and should register their own cleanups (controller, mesh)
// after calling this, so that those stop first.
func (s *Suite) NewAppFromManifest(t testing.TB, manifest []byte, name string, edit func(*unstructured.Unstructured)) *App {
	t.Helper()
	k, d := s.clients(t)
	var objs []*unstructured.Unstructured
	ns := ""
	for _, doc := range strings.Split("\n"+string(manifest), "\n---") {
		u := &unstructured.Unstructured{}
		Must(t, yaml.Unmarshal([]byte(doc), &u.Object))
		if len(u.Object) == 0 {
			continue
		}
		if _, ok := manifestKinds[u.GetKind()]; !ok {
			t.Fatalf("NewAppFromManifest: kind %q is not supported", u.GetKind())
		}
		if u.GetKind() == "Namespace" {
			ns = u.GetName()
			continue
		}
		if edit != nil {
			edit(u)
		}
		objs = append(objs, u)
	}
	if ns == "" {
		t.Fatal("NewAppFromManifest: the manifest has no Namespace")
	}
	a := &App{s: s, t: t, ns: ns, name: name, kube: k, dyn: d}
	s.env.DumpLogsOnFailure(t)
	ctx := context.Background()
	_, err := k.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	// As testenv.NewNamespace: pods are refused until their ServiceAccount
	// exists.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"}}
	if _, err := k.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.deleteObjects(objs) })
	for _, u := range objs {
		_, err := d.Resource(manifestKinds[u.GetKind()]).Namespace(ns).Create(ctx, u, metav1.CreateOptions{})
		Must(t, err)
	}
	a.waitStableAvailable()
	return a
}

// ExistingApp returns an App over a stable Deployment name, its canary
// name-canary, their Service, DestinationRule and VirtualService (route
// "primary") that already exist in ns, created by the test as users would
// (kubectl apply of an example, a chart): it returns once the stable pods
// are available. What t created stays t's to delete.
func (s *Suite) ExistingApp(t testing.TB, ns, name string) *App {
	t.Helper()
	k, d := s.clients(t)
	a := &App{s: s, t: t, ns: ns, name: name, kube: k, dyn: d}
	a.waitStableAvailable()
	return a
}

// waitStableAvailable waits a minute at most until as many stable pods are
// available as the stable Deployment asks for.
func (a *App) waitStableAvailable() {
	a.t.Helper()
	if r := a.Deployment(a.name).Spec.Replicas; r != nil {
		a.stable = *r
	}
	a.WaitFor("stable pods available", time.Minute, func() (bool, string) {
		dep := a.Deployment(a.name)
		return dep.Status.AvailableReplicas == a.stable, fmt.Sprintf("%d of %d available", dep.Status.AvailableReplicas, a.stable)
	})
}

// deleteObjects deletes objs and the namespace's Events, and waits until
// the garbage collector has removed every ReplicaSet and Pod.
func (a *App) deleteObjects(objs []*unstructured.Unstructured) {
	ctx := context.Background()
	bg := metav1.DeletePropagationBackground
	for _, u := range objs {
		err := a.dyn.Resource(manifestKinds[u.GetKind()]).Namespace(a.ns).Delete(ctx, u.GetName(), metav1.DeleteOptions{PropagationPolicy: &bg})
		if err != nil && !apierrors.IsNotFound(err) {
			a.t.Errorf("deleting %s %s/%s: %v", u.GetKind(), a.ns, u.GetName(), err)
		}
	}
	if err := a.kube.CoreV1().Events(a.ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		a.t.Errorf("deleting the events of %s: %v", a.ns, err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		rs, err1 := a.kube.AppsV1().ReplicaSets(a.ns).List(ctx, metav1.ListOptions{})
		pods, err2 := a.kube.CoreV1().Pods(a.ns).List(ctx, metav1.ListOptions{})
		if err := errors.Join(err1, err2); err != nil {
			a.t.Errorf("listing what is left in %s: %v", a.ns, err)
			return
		}
		if len(rs.Items) == 0 && len(pods.Items) == 0 {
			return
		}
		if time.Now().After(deadline) {
			a.t.Errorf("%d ReplicaSets and %d Pods still in %s a minute after their Deployments were deleted", len(rs.Items), len(pods.Items), a.ns)
			return
		}
		pollPause()
	}
}

// Kubectl runs the real kubectl against the control plane in the app's
// namespace, as a person would, and returns its output; a failure fails
// the test.
func (a *App) Kubectl(args ...string) string {
	a.t.Helper()
	full := append([]string{"--kubeconfig", a.s.Kubeconfig(), "-n", a.ns}, args...)
	out, err := exec.Command("kubectl", full...).CombinedOutput()
	if err != nil {
		a.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Kubeconfig is the path of an admin kubeconfig for the control plane, for
// tests that run kubectl or the built binary.
func (s *Suite) Kubeconfig() string { return s.env.Kubeconfig }
