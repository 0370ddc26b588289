package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/controller"
	"github.com/meshcanary/meshcanary/pkg/policy"
	"github.com/meshcanary/meshcanary/pkg/stages"
)

// fastPolicies keep each stage a few seconds so the suite runs in minutes;
// the semantics are the same as with hours.
const fastPolicies = `
policies:
- name: default
  interval: 2s
  minRequests: 10
  failureLimit: 2
  metricsOutageLimit: 3
  checks:
  - {metric: error-rate, max: "5%", maxIncrease: "2%"}
  - {metric: latency-p95, maxRatio: 2.5}
  stages:
  - {weight: 10, duration: 4s}
  - {weight: 50, duration: 4s}
  - {weight: 100, duration: 4s}
`

// weightLog records every canary weight the VirtualService carried, with
// the canary's replica count at that moment and when it was first seen.
type weightLog struct {
	mu      sync.Mutex
	entries []weightEntry
}

type weightEntry struct {
	canary   int
	replicas int32
	at       time.Time
}

func (a *app) recordWeights(t *testing.T) *weightLog {
	l := &weightLog{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			_, c := a.weights()
			r := a.canaryDep().Spec.Replicas
			l.mu.Lock()
			if n := len(l.entries); n == 0 || l.entries[n-1].canary != c {
				l.entries = append(l.entries, weightEntry{canary: c, replicas: *r, at: time.Now()})
			}
			l.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

func (l *weightLog) sequence() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []int
	for _, e := range l.entries {
		out = append(out, e.canary)
	}
	return out
}

func (l *weightLog) get() []weightEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]weightEntry(nil), l.entries...)
}

func TestHealthyReleaseWalksEveryStageAndPromotes(t *testing.T) {
	t.Parallel()
	a := newApp(t, "payment-service", 10, nil)
	sim := a.mesh(200)
	a.runController(parsePolicies(t, fastPolicies), env.PrometheusURL)
	log := a.recordWeights(t)

	a.release("payment:v2", nil)
	a.waitPhase("Succeeded", 3*time.Minute)
	a.waitFor("canary scaled to zero", 30*time.Second, func() (bool, string) {
		c := a.canaryDep()
		return *c.Spec.Replicas == 0, fmt.Sprint(*c.Spec.Replicas)
	})

	if got := fmt.Sprint(log.sequence()); got != "[0 10 50 100 0]" {
		t.Errorf("canary weights went %s, want [0 10 50 100 0]", got)
	}
	wantReplicas := map[int]int32{10: 1, 50: 5, 100: 10}
	for _, e := range log.get() {
		if want, ok := wantReplicas[e.canary]; ok && e.replicas != want {
			t.Errorf("at %d%% the canary had %d replicas, want %d", e.canary, e.replicas, want)
		}
	}
	st := a.stableDep()
	if img := st.Spec.Template.Spec.Containers[0].Image; img != "payment:v2" {
		t.Errorf("stable runs %s after promotion, want payment:v2", img)
	}
	if st.Spec.Template.Labels["track"] != "stable" {
		t.Errorf("stable lost its subset label: %v", st.Spec.Template.Labels)
	}
	if s, c := a.weights(); s != 100 || c != 0 {
		t.Errorf("weights %d/%d after promotion", s, c)
	}
	a.waitEvent(stages.ReasonPromoted, "promoted", 10*time.Second)
	truth := sim.TruthByService(a.ns, a.name)
	if truth.Failed != 0 || truth.Sent == 0 {
		t.Errorf("ground truth: %d sent, %d failed during the release; want none failed", truth.Sent, truth.Failed)
	}
	assertUserFieldsKept(t, a)
}

// assertUserFieldsKept checks that everything but the two managed weights
// is as the user wrote it.
func assertUserFieldsKept(t *testing.T, a *app) {
	t.Helper()
	spec := a.vs().Object["spec"].(map[string]any)
	http0 := spec["http"].([]any)[0].(map[string]any)
	if http0["name"] != "debug-header" || http0["timeout"] != "3s" {
		t.Errorf("the header route changed: %v", http0)
	}
	http1 := spec["http"].([]any)[1].(map[string]any)
	if r, _ := http1["retries"].(map[string]any); r == nil || r["retryOn"] != "5xx,reset" || http1["timeout"] != "10s" {
		t.Errorf("the managed route's retries or timeout changed: %v", http1)
	}
}

func TestErrorRateRegressionRollsBack(t *testing.T) {
	t.Parallel()
	a := newApp(t, "checkout", 10, nil)
	a.mesh(200)
	a.runController(parsePolicies(t, fastPolicies), env.PrometheusURL)
	a.release("checkout:v2-bad", map[string]string{"sandbox.meshcanary.io/error-rate": "0.3"})
	a.waitPhase("RolledBack", 2*time.Minute)
	msg := a.stableDep().Annotations[annotations.Message]
	if !strings.Contains(msg, "error-rate canary") || !strings.Contains(msg, "%") {
		t.Errorf("message lacks the numbers: %q", msg)
	}
	a.waitEvent(stages.ReasonRolledBack, "error-rate", 10*time.Second)
	if s, c := a.weights(); s != 100 || c != 0 {
		t.Errorf("weights %d/%d after rollback", s, c)
	}
	a.waitFor("canary scaled to zero", 30*time.Second, func() (bool, string) {
		return *a.canaryDep().Spec.Replicas == 0, ""
	})
	if img := a.stableDep().Spec.Template.Spec.Containers[0].Image; img != "payment:v1" {
		t.Errorf("stable changed to %s", img)
	}
	assertUserFieldsKept(t, a)
}

func TestLatencyRegressionRollsBack(t *testing.T) {
	t.Parallel()
	a := newApp(t, "ledger", 10, nil)
	a.mesh(200)
	a.runController(parsePolicies(t, fastPolicies), env.PrometheusURL)
	a.release("ledger:v2-slow", map[string]string{"sandbox.meshcanary.io/latency": "400ms"})
	a.waitPhase("RolledBack", 2*time.Minute)
	msg := a.stableDep().Annotations[annotations.Message]
	if !strings.Contains(msg, "latency-p95 canary") {
		t.Errorf("message lacks the latency numbers: %q", msg)
	}
	a.waitEvent(stages.ReasonRolledBack, "latency-p95", 10*time.Second)
}

func TestManualRollbackByAnnotationMidStage(t *testing.T) {
	t.Parallel()
	a := newApp(t, "orders", 10, nil)
	a.mesh(200)
	a.runController(parsePolicies(t, strings.ReplaceAll(fastPolicies, "duration: 4s", "duration: 1h")), env.PrometheusURL)
	a.release("orders:v2", nil)
	a.waitFor("canary at 10%", time.Minute, func() (bool, string) { _, c := a.weights(); return c == 10, "" })

	a.annotate(annotations.Rollback, ptr("on-call saw p99 alerts"))
	a.waitFor("VirtualService at 100/0", 10*time.Second, func() (bool, string) { s, c := a.weights(); return s == 100 && c == 0, "" })
	a.waitPhase("RolledBack", 10*time.Second)
	d := a.stableDep()
	if !strings.Contains(d.Annotations[annotations.Message], "on-call saw p99 alerts") {
		t.Errorf("message %q", d.Annotations[annotations.Message])
	}
	a.waitFor("rollback annotation consumed", 10*time.Second, func() (bool, string) {
		_, present := a.stableDep().Annotations[annotations.Rollback]
		return !present, ""
	})
	// The next release is not blocked or rolled back by the old command.
	a.release("orders:v3", nil)
	a.waitFor("the next release gets traffic", time.Minute, func() (bool, string) {
		_, c := a.weights()
		return c == 10 && a.phase() == "Progressing", a.phase()
	})
}

func TestPauseResumeAndPromote(t *testing.T) {
	t.Parallel()
	a := newApp(t, "accounts", 10, nil)
	a.mesh(200)
	a.runController(parsePolicies(t, strings.ReplaceAll(fastPolicies, "duration: 4s", "duration: 6s")), env.PrometheusURL)
	a.release("accounts:v2", nil)
	a.waitFor("canary at 10%", time.Minute, func() (bool, string) { _, c := a.weights(); return c == 10, "" })

	a.annotate(annotations.Pause, ptr("true"))
	a.waitPhase("Paused", 10*time.Second)
	pausedAt := time.Now()
	// Hold for longer than the stage: the weight must not move.
	a.waitFor("two stage durations to pass", 30*time.Second, func() (bool, string) { return time.Since(pausedAt) > 12*time.Second, "" })
	if _, c := a.weights(); c != 10 || a.phase() != "Paused" {
		t.Fatalf("paused rollout moved: canary %d%%, phase %s", c, a.phase())
	}
	a.annotate(annotations.Pause, nil)
	a.waitPhase("Progressing", 10*time.Second)
	a.waitFor("canary at 50% after resuming", time.Minute, func() (bool, string) { _, c := a.weights(); return c == 50, "" })

	a.annotate(annotations.Promote, ptr("true"))
	a.waitPhase("Succeeded", time.Minute)
	d := a.stableDep()
	var st stages.State
	must(t, json.Unmarshal([]byte(d.Annotations[annotations.State]), &st))
	if st.Result != stages.ResultManualPromoted {
		t.Errorf("result %s, want %s", st.Result, stages.ResultManualPromoted)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "accounts:v2" {
		t.Errorf("stable runs %s", img)
	}
}

func TestCanaryRolloutUndoEndsTheRelease(t *testing.T) {
	t.Parallel()
	a := newApp(t, "search", 4, nil)
	a.mesh(200)
	a.runController(parsePolicies(t, strings.ReplaceAll(fastPolicies, "duration: 4s", "duration: 1h")), env.PrometheusURL)
	a.release("search:v2", nil)
	a.waitFor("canary at 10%", time.Minute, func() (bool, string) { _, c := a.weights(); return c == 10, "" })
	// kubectl rollout undo deployment/search-canary: back to stable's template.
	a.release("payment:v1", nil)
	a.waitPhase("RolledBack", 20*time.Second)
	if s, c := a.weights(); s != 100 || c != 0 {
		t.Errorf("weights %d/%d", s, c)
	}
	if !strings.Contains(a.stableDep().Annotations[annotations.Message], "returned to stable") {
		t.Errorf("message %q", a.stableDep().Annotations[annotations.Message])
	}
}

func TestNewRevisionMidRolloutRestartsFromTheFirstStage(t *testing.T) {
	t.Parallel()
	a := newApp(t, "catalog", 10, nil)
	a.mesh(200)
	a.runController(parsePolicies(t, fastPolicies), env.PrometheusURL)
	log := a.recordWeights(t)
	a.release("catalog:v2", nil)
	a.waitFor("canary at 50%", time.Minute, func() (bool, string) { _, c := a.weights(); return c == 50, "" })
	a.release("catalog:v3", nil)
	a.waitEvent(stages.ReasonRolloutRestarted, "restarting from stage 1", 20*time.Second)
	a.waitPhase("Succeeded", 3*time.Minute)
	seq := fmt.Sprint(log.sequence())
	if !strings.HasPrefix(seq, "[0 10 50 0 10 50 100") {
		t.Errorf("weights went %s, want a restart from 0 then 10, 50, 100", seq)
	}
	if img := a.stableDep().Spec.Template.Spec.Containers[0].Image; img != "catalog:v3" {
		t.Errorf("stable runs %s", img)
	}
}

func TestControllerRestartMidStageResumesWithoutShorteningIt(t *testing.T) {
	t.Parallel()
	a := newApp(t, "billing", 10, nil)
	a.mesh(200)
	pol := parsePolicies(t, strings.ReplaceAll(fastPolicies, "duration: 4s", "duration: 10s"))
	first := a.runController(pol, env.PrometheusURL)
	log := a.recordWeights(t)
	a.release("billing:v2", nil)
	a.waitFor("canary at 50%", 2*time.Minute, func() (bool, string) { _, c := a.weights(); return c == 50, "" })
	first.Stop() // killed mid-stage
	stoppedAt := time.Now()
	a.waitFor("the controller to stay down for 4s", 10*time.Second, func() (bool, string) { return time.Since(stoppedAt) > 4*time.Second, "" })
	a.runController(pol, env.PrometheusURL)
	a.waitPhase("Succeeded", 3*time.Minute)

	entries := log.get()
	if got := fmt.Sprint(log.sequence()); got != "[0 10 50 100 0]" {
		t.Fatalf("weights went %s, want [0 10 50 100 0]: a stage was skipped or repeated", got)
	}
	for i, e := range entries[:len(entries)-1] {
		if e.canary == 0 {
			continue
		}
		if held := entries[i+1].at.Sub(e.at); held < 10*time.Second {
			t.Errorf("stage at %d%% held %s, want at least its 10s", e.canary, held)
		}
	}
	a.waitEvent(stages.ReasonPromoted, "", 10*time.Second)
	promoted := 0
	for _, e := range a.events() {
		if e.Reason == stages.ReasonPromoted {
			promoted += int(e.Count)
		}
	}
	if promoted != 1 {
		t.Errorf("promoted %d times, want once", promoted)
	}
}

// promProxy stands between the controller and Prometheus so a test can take
// Prometheus away (connections refused) without stopping the shared one.
type promProxy struct {
	ln   net.Listener
	srv  *http.Server
	down atomic.Bool
}

func newPromProxy(t *testing.T) *promProxy {
	target, err := url.Parse(env.PrometheusURL)
	must(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	p := &promProxy{ln: ln}
	rp := httputil.NewSingleHostReverseProxy(target)
	p.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.down.Load() {
			// Drop the connection like a dead host would.
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

func (p *promProxy) url() string { return "http://" + p.ln.Addr().String() }

func TestPrometheusOutageHoldsThenRollsBackWithoutPromoting(t *testing.T) {
	t.Parallel()
	a := newApp(t, "wallet", 10, nil)
	a.mesh(200)
	proxy := newPromProxy(t)
	a.runController(parsePolicies(t, fastPolicies), proxy.url())
	a.release("wallet:v2", nil)
	a.waitFor("canary at 10%", time.Minute, func() (bool, string) { _, c := a.weights(); return c == 10, "" })
	proxy.down.Store(true)
	a.waitEvent(stages.ReasonMetricsUnavailable, "holding", 30*time.Second)
	if _, c := a.weights(); c != 10 {
		t.Errorf("weight moved to %d during the outage before the limit", c)
	}
	a.waitPhase("RolledBack", time.Minute)
	if msg := a.stableDep().Annotations[annotations.Message]; !strings.Contains(msg, "metrics unavailable for 3 consecutive intervals") {
		t.Errorf("message %q", msg)
	}
	if img := a.stableDep().Spec.Template.Spec.Containers[0].Image; img != "payment:v1" {
		t.Errorf("promoted blind: stable runs %s", img)
	}
}

func TestLowTrafficNeitherFailsNorPromotes(t *testing.T) {
	t.Parallel()
	a := newApp(t, "reports", 10, nil)
	a.mesh(2) // the canary at 10% sees one request every five seconds
	a.runController(parsePolicies(t, fastPolicies), env.PrometheusURL)
	a.release("reports:v2", map[string]string{"sandbox.meshcanary.io/error-rate": "0.5"})
	a.waitFor("canary at 10%", time.Minute, func() (bool, string) { _, c := a.weights(); return c == 10, "" })
	a.waitEvent(stages.ReasonAnalysisInconclusive, "minRequests", 30*time.Second)
	started := time.Now()
	a.waitFor("five stage durations to pass", time.Minute, func() (bool, string) { return time.Since(started) > 20*time.Second, "" })
	d := a.stableDep()
	if p := d.Annotations[annotations.Phase]; p != "Progressing" {
		t.Fatalf("phase %s (%s), want Progressing", p, d.Annotations[annotations.Message])
	}
	if s := d.Annotations[annotations.Stage]; s != "1/3" {
		t.Fatalf("stage %s, want 1/3", s)
	}
	if _, c := a.weights(); c != 10 {
		t.Fatalf("canary weight %d, want 10", c)
	}
}

func TestBadInputIsInvalidAndLeavesTrafficAlone(t *testing.T) {
	t.Parallel()
	type tc struct {
		ann  map[string]string
		vs   string // replaces the VirtualService when set
		want string // in the message and the event
	}
	twoRoutes := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: %[1]s
spec:
  hosts: [%[1]s]
  http:
  - name: a
    match: [{uri: {prefix: /a}}]
    route: [{destination: {host: %[1]s, subset: stable}, weight: 100}, {destination: {host: %[1]s, subset: canary}, weight: 0}]
  - name: b
    route: [{destination: {host: %[1]s, subset: stable}, weight: 100}, {destination: {host: %[1]s, subset: canary}, weight: 0}]
`
	noSubsets := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: %[1]s
spec:
  hosts: [%[1]s]
  http:
  - route: [{destination: {host: %[1]s}}]
`
	cases := map[string]tc{
		"stages that are not ascending":              {ann: map[string]string{annotations.Stages: "50,10"}, want: annotations.Stages},
		"stages that are not numbers":                {ann: map[string]string{annotations.Stages: "1,x,100"}, want: annotations.Stages},
		"a stage duration that is not one":           {ann: map[string]string{annotations.StageDuration: "soon"}, want: annotations.StageDuration},
		"subsets with one name":                      {ann: map[string]string{annotations.Subsets: "stable"}, want: annotations.Subsets},
		"a canary name that is not a name":           {ann: map[string]string{annotations.Canary: "Bad_Name"}, want: annotations.Canary},
		"a canary that does not exist":               {ann: map[string]string{annotations.Canary: "nope"}, want: "canary Deployment"},
		"a VirtualService that does not exist":       {ann: map[string]string{annotations.VirtualService: "nope"}, want: "VirtualService"},
		"a route that does not exist":                {ann: map[string]string{annotations.Route: "nope"}, want: "route"},
		"a policy that does not exist":               {ann: map[string]string{annotations.Policy: "nope"}, want: annotations.Policy},
		"a promote command that is not a bool":       {ann: map[string]string{annotations.Promote: "yes"}, want: annotations.Promote},
		"a VirtualService without the subsets":       {vs: noSubsets, want: "subset"},
		"a VirtualService with two candidate routes": {vs: twoRoutes, want: "meshcanary.io/route"},
	}
	i := 0
	for name, c := range cases {
		i++
		svc := fmt.Sprintf("bad-%d", i)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := newApp(t, svc, 2, c.ann)
			if c.vs != "" {
				must(t, a.dyn.Resource(controller.VirtualServiceGVR()).Namespace(a.ns).Delete(context.Background(), svc, metav1.DeleteOptions{}))
				a.applyYAML(fmt.Sprintf(c.vs, svc), controller.VirtualServiceGVR())
			}
			before := a.vs()
			a.runController(parsePolicies(t, fastPolicies), env.PrometheusURL)
			a.waitPhase("Invalid", 30*time.Second)
			msg := a.stableDep().Annotations[annotations.Message]
			if !strings.Contains(msg, c.want) {
				t.Errorf("message %q does not name %q", msg, c.want)
			}
			a.waitEvent(stages.ReasonInvalidConfiguration, c.want, 10*time.Second)
			// A release while invalid must not touch traffic either.
			a.release(svc+":v2", nil)
			a.waitEvent(stages.ReasonInvalidConfiguration, "", 10*time.Second)
			after := a.vs()
			if after.GetResourceVersion() != before.GetResourceVersion() {
				b1, _ := json.Marshal(before.Object["spec"])
				b2, _ := json.Marshal(after.Object["spec"])
				t.Errorf("VirtualService changed:\n%s\n%s", b1, b2)
			}
			if r := *a.canaryDep().Spec.Replicas; r != 0 {
				t.Errorf("canary scaled to %d while invalid", r)
			}
		})
	}
}

func TestRejectedPolicyFileIsReportedOnTheDeploymentsThatNeedIt(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "policies.yaml")
	must(t, os.WriteFile(path, []byte(fastPolicies), 0o600))
	store := policy.NewStore()
	var rc atomic.Pointer[runningController]
	w, err := policy.NewWatcher(path, store, func(error) {
		if c := rc.Load(); c != nil {
			c.ctrl.EnqueueAll()
		}
	}, zerolog.Nop())
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	a := newApp(t, "invoices", 2, map[string]string{annotations.Policy: "payments"})
	before := a.vs()
	rc.Store(a.runControllerWithStore(store, env.PrometheusURL))
	a.waitEvent(stages.ReasonInvalidConfiguration, `policy "payments" not found`, 30*time.Second)

	// A file that defines the policy but breaks the schema is rejected with
	// every problem named, and the Deployment says why its policy is missing.
	bad := "policies:\n- name: payments\n  interval: 500ms\n  failureLimit: -1\n"
	writeAtomically(t, path, bad)
	ev := a.waitEvent(stages.ReasonInvalidConfiguration, "policies[0].interval", 30*time.Second)
	for _, want := range []string{"rejected", "policies[0].failureLimit"} {
		if !strings.Contains(ev.Message, want) {
			t.Errorf("event %q does not name %s", ev.Message, want)
		}
	}
	if _, ok := store.Get("default"); !ok {
		t.Errorf("the last good policies were dropped")
	}
	// Fixing the file resumes: the Deployment leaves Invalid.
	writeAtomically(t, path, strings.Replace(fastPolicies, "name: default", "name: payments", 1))
	a.waitPhase("Idle", 30*time.Second)
	if after := a.vs(); after.GetResourceVersion() != before.GetResourceVersion() {
		t.Errorf("VirtualService changed while the configuration was invalid")
	}
}

// writeAtomically replaces a file the way a ConfigMap volume update does:
// readers see the old content or the new, never a half-written file.
func writeAtomically(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	must(t, os.WriteFile(tmp, []byte(content), 0o600))
	must(t, os.Rename(tmp, path))
}
