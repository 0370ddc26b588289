package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
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
	"k8s.io/cli-runtime/pkg/genericiooptions"
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
	"github.com/meshcanary/meshcanary/pkg/cli"
	"github.com/meshcanary/meshcanary/pkg/controller"
	"github.com/meshcanary/meshcanary/pkg/metrics"
	"github.com/meshcanary/meshcanary/pkg/policy"
	"github.com/meshcanary/meshcanary/test/meshsim"
)

// env is the one local control plane this package's tests share; each test
// works in its own namespace.
var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.Options{Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, "testenv: "+f+"\n", a...) }}, &env)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func clients(t testing.TB) (kubernetes.Interface, dynamic.Interface) {
	t.Helper()
	k, err := kubernetes.NewForConfig(env.Config)
	must(t, err)
	d, err := dynamic.NewForConfig(env.Config)
	must(t, err)
	return k, d
}

// result is what one CLI run printed and its exit code.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// runRaw runs the CLI in-process through its cobra command, with exactly
// args, as main would.
func runRaw(t testing.TB, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	root := cli.NewRootCommand(genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: &errOut})
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if err != nil {
		fmt.Fprintln(&errOut, "error:", err)
	}
	return result{stdout: out.String(), stderr: errOut.String(), code: cli.ExitCode(err)}
}

// run runs a CLI command against the test cluster in namespace ns.
func run(t testing.TB, ns string, args ...string) result {
	t.Helper()
	return runRaw(t, append(args, "--kubeconfig", env.Kubeconfig, "-n", ns)...)
}

// mustRun runs a command that must succeed.
func mustRun(t testing.TB, ns string, args ...string) result {
	t.Helper()
	r := run(t, ns, args...)
	if r.code != 0 {
		t.Fatalf("meshcanary %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// hasText reports whether out contains want, comparing runs of spaces as
// one: table columns are padded to their widest cell, which depends on
// names the tests do not control.
func hasText(out, want string) bool {
	squash := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(squash(line), squash(want)) {
			return true
		}
	}
	return false
}

// parse decodes JSON or YAML output into v.
func parse(t testing.TB, format, out string, v any) {
	t.Helper()
	var err error
	if format == "json" {
		err = json.Unmarshal([]byte(out), v)
	} else {
		err = yaml.Unmarshal([]byte(out), v)
	}
	if err != nil {
		t.Fatalf("-o %s output does not parse: %v\n%s", format, err, out)
	}
}

// app is the canary model users set up: stable and canary Deployments,
// a Service, a DestinationRule with the two subsets and a VirtualService.
type app struct {
	t    testing.TB
	ns   string
	name string
	kube kubernetes.Interface
	dyn  dynamic.Interface
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
  - name: primary
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

// appOptions shape newApp's objects.
type appOptions struct {
	replicas int32
	// ann are the stable Deployment's annotations; nil opts it in.
	ann map[string]string
	// canaryWeight is the managed route's canary weight.
	canaryWeight int
}

func newApp(t testing.TB, name string, o appOptions) *app {
	t.Helper()
	k, d := clients(t)
	a := &app{t: t, ns: env.NewNamespace(t), name: name, kube: k, dyn: d}
	env.DumpLogsOnFailure(t)
	if o.replicas == 0 {
		o.replicas = 2
	}
	if o.ann == nil {
		o.ann = map[string]string{annotations.Enabled: "true"}
	}
	must(t, a.createDeployment(podDeployment(name, map[string]string{"app": name, "track": "stable"}, o.replicas, o.ann)))
	must(t, a.createDeployment(podDeployment(name+"-canary", map[string]string{"app": name, "track": "canary"}, 0, nil)))
	a.createService(name)
	a.applyYAML(fmt.Sprintf(drYAML, name), controller.DestinationRuleGVR())
	a.applyYAML(fmt.Sprintf(vsYAML, name, 100-o.canaryWeight, o.canaryWeight), controller.VirtualServiceGVR())
	return a
}

// podDeployment is a Deployment whose selector and pods carry lbls and
// whose pods kwok runs.
func podDeployment(name string, lbls map[string]string, replicas int32, ann map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: lbls},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbls, Annotations: map[string]string{"sandbox.meshcanary.io/latency": "20ms"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "payment:v1"}},
					Tolerations: []corev1.Toleration{{Key: "kwok.x-k8s.io/node", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}},
			},
		},
	}
}

func (a *app) createDeployment(d *appsv1.Deployment) error {
	_, err := a.kube.AppsV1().Deployments(a.ns).Create(context.Background(), d, metav1.CreateOptions{})
	return err
}

func (a *app) createService(name string) {
	a.t.Helper()
	_, err := a.kube.CoreV1().Services(a.ns).Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	must(a.t, err)
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

// release changes the canary's pod template, as `kubectl set image` would.
func (a *app) release(image string) {
	a.t.Helper()
	patch := map[string]any{"spec": map[string]any{"template": map[string]any{
		"spec": map[string]any{"containers": []any{map[string]any{"name": "app", "image": image}}},
	}}}
	b, err := json.Marshal(patch)
	must(a.t, err)
	_, err = a.kube.AppsV1().Deployments(a.ns).Patch(context.Background(), a.name+"-canary", types.StrategicMergePatchType, b, metav1.PatchOptions{})
	must(a.t, err)
}

// annotate sets annotations on the stable Deployment with a merge patch.
func (a *app) annotate(ann map[string]string) {
	a.t.Helper()
	b, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}})
	must(a.t, err)
	_, err = a.kube.AppsV1().Deployments(a.ns).Patch(context.Background(), a.name, types.MergePatchType, b, metav1.PatchOptions{})
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
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last: %s", timeout, what, state)
		}
		<-time.After(100 * time.Millisecond)
	}
}

func (a *app) waitPhase(p string, timeout time.Duration) {
	a.t.Helper()
	waitFor(a.t, "phase "+p, timeout, func() (bool, string) {
		d := a.stableDep()
		return d.Annotations[annotations.Phase] == p, d.Annotations[annotations.Phase] + ": " + d.Annotations[annotations.Message]
	})
}

func (a *app) waitCanaryWeight(w int, timeout time.Duration) {
	a.t.Helper()
	waitFor(a.t, fmt.Sprintf("canary weight %d%%", w), timeout, func() (bool, string) {
		_, c := a.weights()
		return c == w, fmt.Sprintf("canary %d%%, phase %s", c, a.stableDep().Annotations[annotations.Phase])
	})
}

// runController runs the controller in-process, scoped to the app's
// namespace, until the test ends.
func (a *app) runController(policies string, promURL string) {
	a.t.Helper()
	f, err := policy.Parse([]byte(policies))
	must(a.t, err)
	store := policy.NewStore()
	store.Set(f)
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactoryWithOptions(a.kube, 0, informers.WithNamespace(a.ns))
	dynFactory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(a.dyn, 0, a.ns, nil)
	pc, err := promapi.NewClient(promapi.Config{Address: promURL})
	must(a.t, err)
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: a.kube.CoreV1().Events("")})
	log := zerolog.New(zerolog.NewTestWriter(a.t)).Level(zerolog.WarnLevel).With().Timestamp().Logger()
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
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx)
		broadcaster.Shutdown()
	}()
	a.t.Cleanup(func() { cancel(); <-done })
	a.waitPhase("Idle", 30*time.Second)
}

// mesh runs the simulated data plane for the app's service and makes it
// Prometheus' only scrape target. Only one test of this package may use
// it: the scrape configuration is global to the environment.
func (a *app) mesh(rps float64) {
	a.t.Helper()
	reg := prometheus.NewRegistry()
	sim, err := meshsim.New(meshsim.Config{
		Kube: a.kube, Dynamic: a.dyn,
		Services:    []meshsim.Service{{Namespace: a.ns, Host: a.name, RPS: rps}},
		MaxDuration: 5 * time.Minute, MaxRequests: 5_000_000, Seed: 1,
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
	must(a.t, env.SetScrapeConfigs(context.Background(),
		fmt.Sprintf("- job_name: %s\n  scrape_interval: 1s\n  static_configs:\n  - targets: ['%s']\n", a.ns, ln.Addr())))
	a.t.Cleanup(func() {
		cancel()
		<-done
		_ = srv.Close()
		_ = env.SetScrapeConfigs(context.Background(), "")
	})
	select {
	case <-sim.Ready():
	case <-time.After(30 * time.Second):
		a.t.Fatal("simulated mesh not ready within 30s")
	}
}

// fastPolicies keep each stage a few seconds; analysis must pass, so the
// simulated mesh must run.
const fastPolicies = `
policies:
- name: default
  interval: 2s
  minRequests: 10
  failureLimit: 2
  metricsOutageLimit: 3
  checks:
  - {metric: error-rate, max: "5%"}
  stages:
  - {weight: 10, duration: 3s}
  - {weight: 50, duration: 3s}
  - {weight: 100, duration: 3s}
`

// heldPolicies never analyse and never finish a stage by themselves, so a
// release holds at 10% until a person acts: no mesh or Prometheus needed.
const heldPolicies = `
policies:
- name: default
  interval: 1h
  stages:
  - {weight: 10, duration: 1h}
  - {weight: 100, duration: 1h}
`

// repoRoot is the repository's top directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test source")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// buildPlugin builds the binary as kubectl-meshcanary into a directory of
// its own, to be put on PATH.
func buildPlugin(t testing.TB) (dir string) {
	t.Helper()
	dir = t.TempDir()
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "kubectl-meshcanary"), "./cmd/meshcanary")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// pluginEnv is the environment for the built binary and kubectl: the
// binary's directory first on PATH, the test cluster's kubeconfig.
func pluginEnv(binDir string, extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "KUBECONFIG=") {
			continue
		}
		out = append(out, kv)
	}
	out = append(out, "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"), "KUBECONFIG="+env.Kubeconfig)
	return append(out, extra...)
}
