package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/controller"
	"github.com/meshcanary/meshcanary/pkg/policy"
	"github.com/meshcanary/meshcanary/pkg/stages"
	"github.com/meshcanary/meshcanary/pkg/virtualservice"
	"github.com/meshcanary/meshcanary/test/harness"
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

func recordWeights(t *testing.T, a *harness.App) *weightLog {
	// A watch sees every change of the VirtualService, however short-lived;
	// polling could miss a stage that lasted less than a poll under load.
	l := &weightLog{}
	ctx, cancel := context.WithCancel(context.Background())
	record := func(u *unstructured.Unstructured) {
		m, err := virtualservice.Find(u.Object, virtualservice.Target{Route: "primary", StableSubset: "stable", CanarySubset: "canary", Namespace: a.NS()})
		if err != nil {
			return
		}
		r := a.CanaryDep().Spec.Replicas
		l.mu.Lock()
		defer l.mu.Unlock()
		if n := len(l.entries); n == 0 || l.entries[n-1].canary != m.CanaryWeight {
			l.entries = append(l.entries, weightEntry{canary: m.CanaryWeight, replicas: *r, at: time.Now()})
		}
	}
	cur := a.VS()
	record(cur)
	w, err := a.Dyn().Resource(controller.VirtualServiceGVR()).Namespace(a.NS()).Watch(ctx,
		metav1.ListOptions{FieldSelector: "metadata.name=" + a.Name(), ResourceVersion: cur.GetResourceVersion()})
	harness.Must(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if u, ok := ev.Object.(*unstructured.Unstructured); ok {
				record(u)
			}
		}
	}()
	t.Cleanup(func() { w.Stop(); cancel(); <-done })
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

// caughtUp waits until the recorder has seen the VirtualService at canary
// weight w: the recorder polls, so under load it may trail the test.
func (l *weightLog) caughtUp(a *harness.App, w int) {
	a.WaitFor(fmt.Sprintf("the weight recorder to see canary weight %d", w), 10*time.Second, func() (bool, string) {
		seq := l.sequence()
		return len(seq) > 0 && seq[len(seq)-1] == w, fmt.Sprint(seq)
	})
}

func (l *weightLog) get() []weightEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]weightEntry(nil), l.entries...)
}

// suite is the local control plane this package's tests share.
var suite = harness.NewSuite()

func TestMain(m *testing.M) { suite.Main(m) }

func TestHealthyReleaseWalksEveryStageAndPromotes(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "payment-service", 10, nil)
	sim := a.Mesh(200)
	a.RunController(harness.ParsePolicies(t, fastPolicies), suite.Env().PrometheusURL)
	log := recordWeights(t, a)

	a.Release("payment:v2", nil)
	a.WaitPhase("Succeeded", 3*time.Minute)
	a.WaitFor("canary scaled to zero", 30*time.Second, func() (bool, string) {
		c := a.CanaryDep()
		return *c.Spec.Replicas == 0, fmt.Sprint(*c.Spec.Replicas)
	})

	log.caughtUp(a, 0)
	if got := fmt.Sprint(log.sequence()); got != "[0 10 50 100 0]" {
		t.Errorf("canary weights went %s, want [0 10 50 100 0]", got)
	}
	wantReplicas := map[int]int32{10: 1, 50: 5, 100: 10}
	for _, e := range log.get() {
		if want, ok := wantReplicas[e.canary]; ok && e.replicas != want {
			t.Errorf("at %d%% the canary had %d replicas, want %d", e.canary, e.replicas, want)
		}
	}
	st := a.StableDep()
	if img := st.Spec.Template.Spec.Containers[0].Image; img != "payment:v2" {
		t.Errorf("stable runs %s after promotion, want payment:v2", img)
	}
	if st.Spec.Template.Labels["track"] != "stable" {
		t.Errorf("stable lost its subset label: %v", st.Spec.Template.Labels)
	}
	if s, c := a.Weights(); s != 100 || c != 0 {
		t.Errorf("weights %d/%d after promotion", s, c)
	}
	a.WaitEvent(stages.ReasonPromoted, "promoted", 10*time.Second)
	truth := sim.TruthByService(a.NS(), a.Name())
	if truth.Failed != 0 || truth.Sent == 0 {
		t.Errorf("ground truth: %d sent, %d failed during the release; want none failed", truth.Sent, truth.Failed)
	}
	assertUserFieldsKept(t, a)
}

// assertUserFieldsKept checks that everything but the two managed weights
// is as the user wrote it.
func assertUserFieldsKept(t *testing.T, a *harness.App) {
	t.Helper()
	spec := a.VS().Object["spec"].(map[string]any)
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
	a := suite.NewApp(t, "checkout", 10, nil)
	a.Mesh(200)
	a.RunController(harness.ParsePolicies(t, fastPolicies), suite.Env().PrometheusURL)
	a.Release("checkout:v2-bad", map[string]string{"sandbox.meshcanary.io/error-rate": "0.3"})
	a.WaitPhase("RolledBack", 2*time.Minute)
	msg := a.StableDep().Annotations[annotations.Message]
	if !strings.Contains(msg, "error-rate canary") || !strings.Contains(msg, "%") {
		t.Errorf("message lacks the numbers: %q", msg)
	}
	a.WaitEvent(stages.ReasonRolledBack, "error-rate", 10*time.Second)
	if s, c := a.Weights(); s != 100 || c != 0 {
		t.Errorf("weights %d/%d after rollback", s, c)
	}
	a.WaitFor("canary scaled to zero", 30*time.Second, func() (bool, string) {
		return *a.CanaryDep().Spec.Replicas == 0, ""
	})
	if img := a.StableDep().Spec.Template.Spec.Containers[0].Image; img != "payment:v1" {
		t.Errorf("stable changed to %s", img)
	}
	assertUserFieldsKept(t, a)
}

func TestLatencyRegressionRollsBack(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "ledger", 10, nil)
	a.Mesh(200)
	a.RunController(harness.ParsePolicies(t, fastPolicies), suite.Env().PrometheusURL)
	a.Release("ledger:v2-slow", map[string]string{"sandbox.meshcanary.io/latency": "400ms"})
	a.WaitPhase("RolledBack", 2*time.Minute)
	msg := a.StableDep().Annotations[annotations.Message]
	if !strings.Contains(msg, "latency-p95 canary") {
		t.Errorf("message lacks the latency numbers: %q", msg)
	}
	a.WaitEvent(stages.ReasonRolledBack, "latency-p95", 10*time.Second)
}

func TestManualRollbackByAnnotationMidStage(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "orders", 10, nil)
	a.Mesh(200)
	a.RunController(harness.ParsePolicies(t, strings.ReplaceAll(fastPolicies, "duration: 4s", "duration: 1h")), suite.Env().PrometheusURL)
	a.Release("orders:v2", nil)
	a.WaitFor("canary at 10%", time.Minute, func() (bool, string) { _, c := a.Weights(); return c == 10, "" })

	a.Annotate(annotations.Rollback, harness.Ptr("on-call saw p99 alerts"))
	a.WaitFor("VirtualService at 100/0", 10*time.Second, func() (bool, string) { s, c := a.Weights(); return s == 100 && c == 0, "" })
	a.WaitPhase("RolledBack", 10*time.Second)
	d := a.StableDep()
	if !strings.Contains(d.Annotations[annotations.Message], "on-call saw p99 alerts") {
		t.Errorf("message %q", d.Annotations[annotations.Message])
	}
	a.WaitFor("rollback annotation consumed", 10*time.Second, func() (bool, string) {
		_, present := a.StableDep().Annotations[annotations.Rollback]
		return !present, ""
	})
	// The next release is not blocked or rolled back by the old command.
	a.Release("orders:v3", nil)
	a.WaitFor("the next release gets traffic", time.Minute, func() (bool, string) {
		_, c := a.Weights()
		return c == 10 && a.Phase() == "Progressing", a.Phase()
	})
}

func TestPauseResumeAndPromote(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "accounts", 10, nil)
	a.Mesh(200)
	a.RunController(harness.ParsePolicies(t, strings.ReplaceAll(fastPolicies, "duration: 4s", "duration: 6s")), suite.Env().PrometheusURL)
	a.Release("accounts:v2", nil)
	a.WaitFor("canary at 10%", time.Minute, func() (bool, string) { _, c := a.Weights(); return c == 10, "" })

	a.Annotate(annotations.Pause, harness.Ptr("true"))
	a.WaitPhase("Paused", 10*time.Second)
	pausedAt := time.Now()
	// Hold for longer than the stage: the weight must not move.
	a.WaitFor("two stage durations to pass", 30*time.Second, func() (bool, string) { return time.Since(pausedAt) > 12*time.Second, "" })
	if _, c := a.Weights(); c != 10 || a.Phase() != "Paused" {
		t.Fatalf("paused rollout moved: canary %d%%, phase %s", c, a.Phase())
	}
	a.Annotate(annotations.Pause, nil)
	a.WaitPhase("Progressing", 10*time.Second)
	a.WaitFor("canary at 50% after resuming", time.Minute, func() (bool, string) { _, c := a.Weights(); return c == 50, "" })

	a.Annotate(annotations.Promote, harness.Ptr("true"))
	a.WaitPhase("Succeeded", time.Minute)
	d := a.StableDep()
	st := a.View().State
	if st.Result != stages.ResultManualPromoted {
		t.Errorf("result %s, want %s", st.Result, stages.ResultManualPromoted)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "accounts:v2" {
		t.Errorf("stable runs %s", img)
	}
}

func TestCanaryRolloutUndoEndsTheRelease(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "search", 4, nil)
	a.Mesh(200)
	a.RunController(harness.ParsePolicies(t, strings.ReplaceAll(fastPolicies, "duration: 4s", "duration: 1h")), suite.Env().PrometheusURL)
	a.Release("search:v2", nil)
	a.WaitFor("canary at 10%", time.Minute, func() (bool, string) { _, c := a.Weights(); return c == 10, "" })
	// kubectl rollout undo deployment/search-canary: back to stable's template.
	a.Release("payment:v1", nil)
	a.WaitPhase("RolledBack", 20*time.Second)
	if s, c := a.Weights(); s != 100 || c != 0 {
		t.Errorf("weights %d/%d", s, c)
	}
	if !strings.Contains(a.StableDep().Annotations[annotations.Message], "returned to stable") {
		t.Errorf("message %q", a.StableDep().Annotations[annotations.Message])
	}
}

func TestNewRevisionMidRolloutRestartsFromTheFirstStage(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "catalog", 10, nil)
	a.Mesh(200)
	a.RunController(harness.ParsePolicies(t, fastPolicies), suite.Env().PrometheusURL)
	log := recordWeights(t, a)
	a.Release("catalog:v2", nil)
	a.WaitFor("canary at 50%", time.Minute, func() (bool, string) { _, c := a.Weights(); return c == 50, "" })
	a.Release("catalog:v3", nil)
	a.WaitEvent(stages.ReasonRolloutRestarted, "restarting from stage 1", 20*time.Second)
	a.WaitPhase("Succeeded", 3*time.Minute)
	log.caughtUp(a, 0)
	seq := fmt.Sprint(log.sequence())
	if !strings.HasPrefix(seq, "[0 10 50 0 10 50 100") {
		t.Errorf("weights went %s, want a restart from 0 then 10, 50, 100", seq)
	}
	if img := a.StableDep().Spec.Template.Spec.Containers[0].Image; img != "catalog:v3" {
		t.Errorf("stable runs %s", img)
	}
}

func TestControllerRestartMidStageResumesWithoutShorteningIt(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "billing", 10, nil)
	a.Mesh(200)
	pol := harness.ParsePolicies(t, strings.ReplaceAll(fastPolicies, "duration: 4s", "duration: 10s"))
	first := a.RunController(pol, suite.Env().PrometheusURL)
	log := recordWeights(t, a)
	a.Release("billing:v2", nil)
	a.WaitFor("canary at 50%", 2*time.Minute, func() (bool, string) { _, c := a.Weights(); return c == 50, "" })
	first.Stop() // killed mid-stage
	stoppedAt := time.Now()
	a.WaitFor("the controller to stay down for 4s", 10*time.Second, func() (bool, string) { return time.Since(stoppedAt) > 4*time.Second, "" })
	a.RunController(pol, suite.Env().PrometheusURL)
	a.WaitPhase("Succeeded", 3*time.Minute)

	log.caughtUp(a, 0)
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
	a.WaitEvent(stages.ReasonPromoted, "", 10*time.Second)
	promoted := 0
	for _, e := range a.Events() {
		if e.Reason == stages.ReasonPromoted {
			promoted += int(e.Count)
		}
	}
	if promoted != 1 {
		t.Errorf("promoted %d times, want once", promoted)
	}
}

func TestPrometheusOutageHoldsThenRollsBackWithoutPromoting(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "wallet", 10, nil)
	a.Mesh(200)
	proxy := suite.NewPromProxy(t)
	a.RunController(harness.ParsePolicies(t, fastPolicies), proxy.URL())
	a.Release("wallet:v2", nil)
	a.WaitFor("canary at 10%", time.Minute, func() (bool, string) { _, c := a.Weights(); return c == 10, "" })
	proxy.SetDown(true)
	a.WaitEvent(stages.ReasonMetricsUnavailable, "holding", 30*time.Second)
	if _, c := a.Weights(); c != 10 {
		t.Errorf("weight moved to %d during the outage before the limit", c)
	}
	a.WaitPhase("RolledBack", time.Minute)
	if msg := a.StableDep().Annotations[annotations.Message]; !strings.Contains(msg, "metrics unavailable for 3 consecutive intervals") {
		t.Errorf("message %q", msg)
	}
	if img := a.StableDep().Spec.Template.Spec.Containers[0].Image; img != "payment:v1" {
		t.Errorf("promoted blind: stable runs %s", img)
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
		"a VirtualService without the subsets":       {vs: noSubsets, want: "subset"},
		"a VirtualService with two candidate routes": {vs: twoRoutes, want: "meshcanary.io/route"},
	}
	i := 0
	for name, c := range cases {
		i++
		svc := fmt.Sprintf("bad-%d", i)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := suite.NewApp(t, svc, 2, c.ann)
			if c.vs != "" {
				harness.Must(t, a.Dyn().Resource(controller.VirtualServiceGVR()).Namespace(a.NS()).Delete(context.Background(), svc, metav1.DeleteOptions{}))
				a.ApplyYAML(fmt.Sprintf(c.vs, svc), controller.VirtualServiceGVR())
			}
			before := a.VS()
			a.RunController(harness.ParsePolicies(t, fastPolicies), suite.Env().PrometheusURL)
			a.WaitPhase("Invalid", 30*time.Second)
			msg := a.StableDep().Annotations[annotations.Message]
			if !strings.Contains(msg, c.want) {
				t.Errorf("message %q does not name %q", msg, c.want)
			}
			a.WaitEvent(stages.ReasonInvalidConfiguration, c.want, 10*time.Second)
			// A release while invalid must not touch traffic either.
			a.Release(svc+":v2", nil)
			a.WaitEvent(stages.ReasonInvalidConfiguration, "", 10*time.Second)
			after := a.VS()
			if after.GetResourceVersion() != before.GetResourceVersion() {
				b1, _ := json.Marshal(before.Object["spec"])
				b2, _ := json.Marshal(after.Object["spec"])
				t.Errorf("VirtualService changed:\n%s\n%s", b1, b2)
			}
			if r := *a.CanaryDep().Spec.Replicas; r != 0 {
				t.Errorf("canary scaled to %d while invalid", r)
			}
		})
	}
}

func TestRejectedPolicyFileIsReportedOnTheDeploymentsThatNeedIt(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "policies.yaml")
	harness.Must(t, os.WriteFile(path, []byte(fastPolicies), 0o600))
	store := policy.NewStore()
	var rc atomic.Pointer[harness.Controller]
	w, err := policy.NewWatcher(path, store, func(error) {
		if c := rc.Load(); c != nil {
			c.Ctrl.EnqueueAll()
		}
	}, zerolog.Nop())
	harness.Must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	a := suite.NewApp(t, "invoices", 2, map[string]string{annotations.Policy: "payments"})
	before := a.VS()
	rc.Store(a.RunControllerWithStore(store, suite.Env().PrometheusURL))
	a.WaitEvent(stages.ReasonInvalidConfiguration, `policy "payments" not found`, 30*time.Second)

	// A file that defines the policy but breaks the schema is rejected with
	// every problem named, and the Deployment says why its policy is missing.
	bad := "policies:\n- name: payments\n  interval: 500ms\n  failureLimit: -1\n"
	writeAtomically(t, path, bad)
	ev := a.WaitEvent(stages.ReasonInvalidConfiguration, "policies[0].interval", 30*time.Second)
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
	a.WaitPhase("Idle", 30*time.Second)
	if after := a.VS(); after.GetResourceVersion() != before.GetResourceVersion() {
		t.Errorf("VirtualService changed while the configuration was invalid")
	}
}

// writeAtomically replaces a file the way a ConfigMap volume update does:
// readers see the old content or the new, never a half-written file.
func writeAtomically(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	harness.Must(t, os.WriteFile(tmp, []byte(content), 0o600))
	harness.Must(t, os.Rename(tmp, path))
}

func TestStableScaleChangeDuringARolloutRescalesTheCanary(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "cart", 10, nil)
	sim := a.Mesh(200)
	a.RunController(harness.ParsePolicies(t, strings.ReplaceAll(fastPolicies, "duration: 4s", "duration: 8s")), suite.Env().PrometheusURL)
	a.Release("cart:v2", nil)
	a.WaitFor("canary at 50%", 2*time.Minute, func() (bool, string) { _, c := a.Weights(); return c == 50, "" })
	a.PatchDeploymentMerge(a.Name(), map[string]any{"spec": map[string]any{"replicas": 20}})
	a.WaitFor("the canary to follow stable to 10 replicas at 50%", 30*time.Second, func() (bool, string) {
		r := *a.CanaryDep().Spec.Replicas
		return r == 10, fmt.Sprint(r)
	})
	a.WaitFor("the canary at 100% with stable's 20 replicas", 2*time.Minute, func() (bool, string) {
		_, c := a.Weights()
		r := *a.CanaryDep().Spec.Replicas
		return c == 100 && r == 20, fmt.Sprintf("weight %d replicas %d", c, r)
	})
	a.WaitPhase("Succeeded", 2*time.Minute)
	if r := a.StableDep().Status.AvailableReplicas; r != 20 {
		t.Errorf("stable has %d available replicas after promotion, want 20", r)
	}
	if truth := sim.TruthByService(a.NS(), a.Name()); truth.Failed != 0 {
		t.Errorf("%d of %d requests failed during the rollout", truth.Failed, truth.Sent)
	}
}

func TestAMalformedCommandIsDroppedAndNeverBlocksARollback(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "typo", 4, nil)
	a.Mesh(100)
	a.RunController(harness.ParsePolicies(t, strings.ReplaceAll(fastPolicies, "duration: 4s", "duration: 1h")), suite.Env().PrometheusURL)
	a.Release("typo:v2", nil)
	a.WaitFor("canary at 10%", time.Minute, func() (bool, string) { _, c := a.Weights(); return c == 10, "" })
	// Two commands at once, one of them malformed.
	a.PatchDeploymentMerge(a.Name(), map[string]any{"metadata": map[string]any{"annotations": map[string]any{
		annotations.Promote: "yes", annotations.Rollback: "bad release",
	}}})
	a.WaitPhase("RolledBack", 20*time.Second)
	a.WaitEvent(stages.ReasonCommandIgnored, annotations.Promote, 10*time.Second)
	a.WaitFor("the malformed command removed", 10*time.Second, func() (bool, string) {
		_, present := a.StableDep().Annotations[annotations.Promote]
		return !present, ""
	})
}
