// Command demo tells meshcanary's story on a real local control plane: a
// good release is promoted, a release with 5% errors and one with a latency
// regression are rolled back on their own, and a good release is rolled back
// by hand with kubectl annotate. It runs the local cluster
// (hack/local-cluster.sh), the simulated mesh and the real
// `meshcanary controller` binary as background processes, shows a live
// view, and ends with a summary. KEEP=1 leaves everything running.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/term"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/meshcanary/meshcanary/pkg/controller"
	"github.com/meshcanary/meshcanary/pkg/metrics"
	"github.com/meshcanary/meshcanary/pkg/policy"
	"github.com/meshcanary/meshcanary/pkg/release"
	"github.com/meshcanary/meshcanary/pkg/stages"
	"github.com/meshcanary/meshcanary/pkg/status"
	"github.com/meshcanary/meshcanary/pkg/virtualservice"
)

const (
	ns       = "payments"
	stable   = "payment-service"
	canary   = "payment-service-canary"
	rps      = 400
	perStory = 2 * time.Minute
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "down" {
		d := newDemo()
		d.stopAll()
		return
	}
	d := newDemo()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := d.runSafely(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo failed: %v\nlogs: %s\n", err, d.dir)
	}
	if os.Getenv("KEEP") == "1" && err == nil {
		d.printKeep()
		return
	}
	d.stopAll()
	if err != nil {
		os.Exit(1)
	}
}

type demo struct {
	root, dir   string
	kubeconfig  string
	promURL     string
	kube        kubernetes.Interface
	dyn         dynamic.Interface
	simAddr     string
	metricsAddr string
	healthAddr  string
	policy      policy.Policy
	tty         bool
	out         io.Writer
	// lastLine is the last status line printed when not on a terminal.
	lastLine string
	results  []result
}

type result struct {
	name, outcome, stage string
	duration, detect     time.Duration
	failedStable         int64
	failedCanary         int64
	sentCanary           int64
}

func newDemo() *demo {
	root, _ := os.Getwd()
	dir := os.Getenv("MESHCANARY_DEMO_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "meshcanary-demo")
	}
	return &demo{root: root, dir: dir, out: os.Stdout, tty: term.IsTerminal(int(os.Stdout.Fd()))}
}

// runSafely turns a panic into an error so the background processes are
// still stopped.
func (d *demo) runSafely(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return d.run(ctx)
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

func (d *demo) run(ctx context.Context) error {
	d.stopAll() // a previous KEEP=1 run, if any
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", d.dir, err)
	}
	f, err := policy.LoadFile(filepath.Join(d.root, "hack/demo/policies.yaml"))
	if err != nil {
		return err
	}
	d.policy = f.Policies[0]
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	d.simAddr = fmt.Sprintf("127.0.0.1:%d", ports[0])
	d.metricsAddr = fmt.Sprintf("127.0.0.1:%d", ports[1])
	d.healthAddr = fmt.Sprintf("127.0.0.1:%d", ports[2])
	scrape := filepath.Join(d.dir, "scrape.yaml")
	if err := os.WriteFile(scrape, []byte(fmt.Sprintf(
		"- job_name: meshsim\n  static_configs: [{targets: ['%s']}]\n- job_name: meshcanary\n  static_configs: [{targets: ['%s']}]\n",
		d.simAddr, d.metricsAddr)), 0o644); err != nil {
		return err
	}

	d.say("== meshcanary demo: a real local control plane, Prometheus, a simulated Istio mesh and the controller")
	start := time.Now()
	cmd := exec.CommandContext(ctx, filepath.Join(d.root, "hack/local-cluster.sh"), "up")
	cmd.Env = append(os.Environ(), "MESHCANARY_LOCAL_CLUSTER_DIR="+filepath.Join(d.dir, "cluster"), "MESHCANARY_SCRAPE_CONFIG="+scrape)
	cmd.Stderr = os.Stderr
	info, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("hack/local-cluster.sh up: %w", err)
	}
	for _, line := range strings.Split(string(info), "\n") {
		if v, ok := strings.CutPrefix(line, "export KUBECONFIG="); ok {
			d.kubeconfig = v
		}
		if v, ok := strings.CutPrefix(line, "# Prometheus: "); ok {
			d.promURL = v
		}
	}
	if d.kubeconfig == "" || d.promURL == "" {
		return fmt.Errorf("hack/local-cluster.sh up did not print KUBECONFIG and the Prometheus URL:\n%s", info)
	}
	d.say("control plane and Prometheus up in %s", time.Since(start).Round(100*time.Millisecond))
	cfg, err := clientcmd.BuildConfigFromFlags("", d.kubeconfig)
	if err != nil {
		return err
	}
	if d.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	if d.dyn, err = dynamic.NewForConfig(cfg); err != nil {
		return err
	}

	if err := d.kubectl(ctx, "apply", "-f", "hack/demo/app.yaml"); err != nil {
		return err
	}
	if err := d.waitFor(ctx, "10 stable replicas", time.Minute, func() bool {
		dep, err := d.kube.AppsV1().Deployments(ns).Get(ctx, stable, metav1.GetOptions{})
		return err == nil && dep.Status.AvailableReplicas == 10
	}); err != nil {
		return err
	}
	if err := d.startBackground(ctx); err != nil {
		return err
	}

	stories := []struct {
		name   string
		image  string
		ann    map[string]any
		manual bool
	}{
		{"good release", "payment:v2", map[string]any{"sandbox.meshcanary.io/error-rate": nil, "sandbox.meshcanary.io/latency": "40ms"}, false},
		{"5% errors", "payment:v3", map[string]any{"sandbox.meshcanary.io/error-rate": "0.05", "sandbox.meshcanary.io/latency": "40ms"}, false},
		{"latency regression", "payment:v4", map[string]any{"sandbox.meshcanary.io/error-rate": nil, "sandbox.meshcanary.io/latency": "250ms"}, false},
		{"manual rollback", "payment:v5", map[string]any{"sandbox.meshcanary.io/error-rate": nil, "sandbox.meshcanary.io/latency": "40ms"}, true},
	}
	for i, s := range stories {
		d.say("\n== release %d/%d: %s (%s)", i+1, len(stories), s.name, s.image)
		if err := d.release(ctx, s.name, s.image, s.ann, s.manual); err != nil {
			return err
		}
	}
	d.summary(time.Since(start))
	return nil
}

// startBackground runs the simulated mesh and the controller in their own
// sessions so KEEP=1 can leave them running after the demo exits.
func (d *demo) startBackground(ctx context.Context) error {
	sim := filepath.Join(d.dir, "meshsim")
	if err := run(ctx, d.root, "go", "build", "-o", sim, "./test/meshsim/cmd/meshsim"); err != nil {
		return err
	}
	if err := d.spawn("meshsim", sim, "--kubeconfig", d.kubeconfig, "--listen", d.simAddr,
		"--service", fmt.Sprintf("%s/%s=%d", ns, stable, rps), "--max-duration", "2h", "--max-requests", "100000000"); err != nil {
		return err
	}
	bin := filepath.Join(d.root, "bin/meshcanary")
	if err := d.spawn("controller", bin, "controller", "--kubeconfig", d.kubeconfig, "--prometheus-url", d.promURL,
		"--policies", filepath.Join(d.root, "hack/demo/policies.yaml"), "--metrics-bind-address", d.metricsAddr,
		"--health-probe-bind-address", d.healthAddr, "--log-format", "console"); err != nil {
		return err
	}
	d.say("simulated mesh: %d requests/s to %s/%s (metrics http://%s/metrics)", rps, ns, stable, d.simAddr)
	d.say("controller: bin/meshcanary controller --policies hack/demo/policies.yaml (log %s)", filepath.Join(d.dir, "controller.log"))
	return d.waitFor(ctx, "the controller to be ready and the mesh scraped", time.Minute, func() bool {
		r, err := http.Get("http://" + d.healthAddr + "/readyz")
		if err != nil {
			return false
		}
		r.Body.Close()
		dep, err := d.kube.AppsV1().Deployments(ns).Get(ctx, stable, metav1.GetOptions{})
		return r.StatusCode == 200 && err == nil && dep.Annotations["meshcanary.io/phase"] != "" && d.promHas(ctx, "istio_requests_total")
	})
}

func (d *demo) release(ctx context.Context, name, image string, ann map[string]any, manual bool) error {
	before, _ := d.truth()
	// The release this story starts is the first one whose revision differs
	// from the last one recorded before the patch.
	prevRev := d.view(ctx).State.Revision
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{
		"metadata": map[string]any{"annotations": ann},
		"spec":     map[string]any{"containers": []any{map[string]any{"name": "app", "image": image}}},
	}}})
	if err := d.kubectl(ctx, "-n", ns, "patch", "deployment", canary, "-p", string(patch)); err != nil {
		return err
	}
	started := time.Now()
	var firstTraffic time.Time
	var rolledBackAt time.Time
	annotated := false
	lines := 0
	deadline := time.Now().Add(perStory)
	for {
		v := d.view(ctx)
		_, cw := d.weights(ctx)
		if cw > 0 && firstTraffic.IsZero() {
			firstTraffic = time.Now()
		}
		if manual && !annotated && v.State.Revision != prevRev && v.Phase == "Progressing" && v.State.Stage >= 1 && cw > 0 {
			d.clear(lines)
			lines = 0
			d.say("$ kubectl -n %s annotate deployment/%s meshcanary.io/rollback=\"demo: on-call rolls back by hand\" --overwrite", ns, stable)
			at := time.Now()
			if err := d.kubectl(ctx, "-n", ns, "annotate", "deployment/"+stable, "meshcanary.io/rollback=demo: on-call rolls back by hand", "--overwrite"); err != nil {
				return err
			}
			annotated = true
			for {
				if _, c := d.weights(ctx); c == 0 {
					d.say("VirtualService at 100/0 %s after the annotation", time.Since(at).Round(time.Millisecond))
					break
				}
				if time.Since(at) > 30*time.Second {
					return errors.New("manual rollback did not reach the VirtualService within 30s")
				}
				<-time.After(10 * time.Millisecond)
			}
		}
		done := v.State.Revision != prevRev && (v.Phase == "Succeeded" || v.Phase == "RolledBack") && cw == 0
		if v.Phase == "RolledBack" && rolledBackAt.IsZero() && v.State.Revision != prevRev {
			rolledBackAt = time.Now()
		}
		lines = d.render(v, name, lines, done)
		if done {
			dep, err := d.kube.AppsV1().Deployments(ns).Get(ctx, canary, metav1.GetOptions{})
			if err == nil && *dep.Spec.Replicas == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("release %q did not finish within %s (phase %s: %s)", name, perStory, v.Phase, v.Message)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	after, _ := d.truth()
	v := d.view(ctx)
	r := result{name: name, outcome: v.Phase, stage: v.Stage, duration: time.Since(started).Round(time.Second),
		failedStable: after[stable].failed - before[stable].failed, failedCanary: after[canary].failed - before[canary].failed,
		sentCanary: after[canary].sent - before[canary].sent}
	if !manual && !rolledBackAt.IsZero() && !firstTraffic.IsZero() {
		r.detect = rolledBackAt.Sub(firstTraffic).Round(100 * time.Millisecond)
	}
	d.results = append(d.results, r)
	d.say("→ %s: %s", v.Phase, v.Message)
	return nil
}

// render draws the live view: redrawn in place on a terminal, a line per
// change otherwise (CI logs).
func (d *demo) render(v status.View, name string, prev int, final bool) int {
	_, cw := d.weights(context.Background())
	left := ""
	if v.State.Stage < len(d.policy.Stages) && v.Phase == "Progressing" && !v.State.StageStart.IsZero() {
		rem := d.policy.Stages[v.State.Stage].Duration.Duration - stages.StageElapsed(v.State, time.Now())
		left = fmt.Sprintf("   %s left in stage", max(rem, 0).Round(time.Second))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-12s stage %-4s weights stable %3d / canary %3d%s\n", v.Phase, v.Stage, 100-cw, cw, left)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	if a := v.Analysis; a != nil {
		fmt.Fprintf(tw, "  metric\tcanary\tstable\tthreshold\tverdict\n")
		for _, c := range a.Checks {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", c.Metric, show(c.Metric, c.Canary), show(c.Metric, c.Stable), thresholds(d.policy, c.Metric), c.Verdict)
		}
		fmt.Fprintf(tw, "  requests in window\t%.0f\t%.0f\t\t%s\n", a.CanaryRequests, a.StableRequests, a.Verdict)
	}
	tw.Flush()
	fmt.Fprintf(&b, "  %s\n", v.Message)
	text := b.String()
	if !d.tty {
		line := strings.SplitN(text, "\n", 2)[0]
		if final || !strings.HasPrefix(d.lastLine, line[:min(len(line), 40)]) {
			fmt.Fprintln(d.out, strings.TrimSpace(line)+"  | "+strings.TrimSpace(v.Message))
			d.lastLine = line
		}
		return 0
	}
	d.clear(prev)
	fmt.Fprint(d.out, text)
	return strings.Count(text, "\n")
}

func (d *demo) clear(lines int) {
	if d.tty && lines > 0 {
		fmt.Fprintf(d.out, "\033[%dA\033[J", lines)
	}
}

func show(metric string, v *float64) string {
	if v == nil {
		return "no data"
	}
	return metrics.FormatValue(metric, *v)
}

func thresholds(p policy.Policy, metric string) string {
	var parts []string
	for _, c := range p.Checks {
		if c.Metric != metric {
			continue
		}
		if c.Max != nil {
			parts = append(parts, "max "+c.Max.Raw)
		}
		if c.Min != nil {
			parts = append(parts, "min "+c.Min.Raw)
		}
		if c.MaxIncrease != nil {
			parts = append(parts, "+"+c.MaxIncrease.Raw+" over stable")
		}
		if c.MaxRatio != nil {
			parts = append(parts, fmt.Sprintf("%gx stable", *c.MaxRatio))
		}
	}
	return strings.Join(parts, ", ")
}

func (d *demo) summary(total time.Duration) {
	d.say("\n== summary (story %s)", total.Round(time.Second))
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "release\tresult\tat stage\tduration\ttime to detect\tfailed requests (stable)\tfailed requests (canary)\tcanary requests")
	for _, r := range d.results {
		detect := "-"
		if r.detect > 0 {
			detect = r.detect.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\n", r.name, r.outcome, r.stage, r.duration, detect, r.failedStable, r.failedCanary, r.sentCanary)
	}
	tw.Flush()
	d.say("\ntime to detect: from the canary's first request to the VirtualService back at 100/0.")
	d.say("Keep exploring: KEEP=1 make demo leaves everything running and prints KUBECONFIG and the Prometheus URL.")
}

func (d *demo) printKeep() {
	d.say("\n== KEEP=1: everything is still running")
	d.say("export KUBECONFIG=%s", d.kubeconfig)
	d.say("# Prometheus: %s", d.promURL)
	d.say("# controller metrics: http://%s/metrics   logs: %s", d.metricsAddr, d.dir)
	d.say("kubectl get canaryreleases -A")
	d.say("kubectl -n %s get deploy %s -o yaml | grep meshcanary.io/", ns, stable)
	d.say("kubectl -n %s set image deployment/%s app=payment:v6", ns, canary)
	d.say("stop everything with: make demo-down")
}

func (d *demo) view(ctx context.Context) status.View {
	dep, err := d.kube.AppsV1().Deployments(ns).Get(ctx, stable, metav1.GetOptions{})
	if err != nil {
		return status.View{}
	}
	cr, err := release.Get(ctx, d.dyn, ns, stable)
	if err != nil {
		cr = nil // not created yet: the summary on the Deployment is all there is
	}
	v, _ := status.ReadWith(dep, cr)
	return v
}

func (d *demo) weights(ctx context.Context) (int, int) {
	u, err := d.dyn.Resource(controller.VirtualServiceGVR()).Namespace(ns).Get(ctx, stable, metav1.GetOptions{})
	if err != nil {
		return 100, 0
	}
	m, err := virtualservice.Find(u.Object, virtualservice.Target{StableSubset: "stable", CanarySubset: "canary", Namespace: ns})
	if err != nil {
		return 100, 0
	}
	return m.StableWeight, m.CanaryWeight
}

type counts struct{ sent, failed int64 }

// truth reads the simulated mesh's own counters: what really happened, to
// compare with what meshcanary saw through Prometheus.
func (d *demo) truth() (map[string]counts, error) {
	r, err := http.Get("http://" + d.simAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer r.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(r.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]counts{}
	for name, fam := range fams {
		for _, m := range fam.GetMetric() {
			wl := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "workload" {
					wl = l.GetValue()
				}
			}
			c := out[wl]
			switch name {
			case "meshsim_requests_sent_total":
				c.sent += int64(m.GetCounter().GetValue())
			case "meshsim_requests_failed_total":
				c.failed += int64(m.GetCounter().GetValue())
			}
			out[wl] = c
		}
	}
	return out, nil
}

func (d *demo) promHas(ctx context.Context, metric string) bool {
	r, err := http.Get(d.promURL + "/api/v1/query?query=" + metric)
	if err != nil {
		return false
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return strings.Contains(string(b), `"result":[{`)
}

func (d *demo) kubectl(ctx context.Context, args ...string) error {
	if !slices.Contains(args, "annotate") { // the story prints that one itself, with its timing
		d.say("$ kubectl %s", strings.Join(quoteArgs(args), " "))
	}
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", d.kubeconfig}, args...)...)
	cmd.Dir = d.root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " {\"") {
			a = "'" + a + "'"
		}
		out[i] = a
	}
	return out
}

func (d *demo) spawn(name, bin string, args ...string) error {
	logf, err := os.Create(filepath.Join(d.dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	go func() { _ = cmd.Wait() }()
	return os.WriteFile(filepath.Join(d.dir, name+".pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
}

// stopAll stops what a demo started, also one left by KEEP=1.
func (d *demo) stopAll() {
	for _, name := range []string{"controller", "meshsim"} {
		b, err := os.ReadFile(filepath.Join(d.dir, name+".pid"))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			_ = syscall.Kill(-pid, syscall.SIGTERM)
			deadline := time.Now().Add(10 * time.Second)
			for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
				<-time.After(50 * time.Millisecond)
			}
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
		_ = os.Remove(filepath.Join(d.dir, name+".pid"))
	}
	cmd := exec.Command(filepath.Join(d.root, "hack/local-cluster.sh"), "down")
	cmd.Env = append(os.Environ(), "MESHCANARY_LOCAL_CLUSTER_DIR="+filepath.Join(d.dir, "cluster"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "hack/local-cluster.sh down: %v\n%s", err, out)
	}
}

func (d *demo) waitFor(ctx context.Context, what string, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

func run(ctx context.Context, dir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
