package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/slack-go/slack"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/notify"
	"github.com/meshcanary/meshcanary/pkg/stages"
	"github.com/meshcanary/meshcanary/test/harness"
)

// inbox is a local HTTP endpoint standing in for Slack or PagerDuty: it
// records each body after checking it decodes into the service's format.
type inbox struct {
	mu     sync.Mutex
	bodies [][]byte
	srv    *httptest.Server
}

func newInbox(t *testing.T, status int, check func([]byte) error) *inbox {
	in := &inbox{}
	in.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := check(b); err != nil {
			t.Errorf("payload not in the service's format: %v\n%s", err, b)
		}
		in.mu.Lock()
		in.bodies = append(in.bodies, b)
		in.mu.Unlock()
		w.WriteHeader(status)
		if status == http.StatusAccepted {
			_, _ = w.Write([]byte(`{"status":"success","message":"Event processed","dedup_key":"x"}`))
		}
	}))
	t.Cleanup(in.srv.Close)
	return in
}

func (in *inbox) all() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]string, len(in.bodies))
	for i, b := range in.bodies {
		out[i] = string(b)
	}
	return out
}

type pdEvent struct {
	RoutingKey  string `json:"routing_key"`
	EventAction string `json:"event_action"`
	DedupKey    string `json:"dedup_key"`
	Payload     *struct {
		Summary  string `json:"summary"`
		Source   string `json:"source"`
		Severity string `json:"severity"`
	} `json:"payload"`
}

func TestNotificationsReachSlackAndPagerDutyWithoutDelayingTheRollout(t *testing.T) {
	t.Parallel()
	slackIn := newInbox(t, http.StatusOK, func(b []byte) error {
		var m slack.WebhookMessage
		return json.Unmarshal(b, &m)
	})
	pdIn := newInbox(t, http.StatusAccepted, func(b []byte) error {
		var e pdEvent
		if err := json.Unmarshal(b, &e); err != nil {
			return err
		}
		if e.RoutingKey == "" || e.DedupKey == "" || (e.EventAction != "trigger" && e.EventAction != "resolve") {
			return fmt.Errorf("not an Events API v2 event: %+v", e)
		}
		if e.EventAction == "trigger" && (e.Payload == nil || e.Payload.Summary == "" || e.Payload.Severity == "") {
			return fmt.Errorf("trigger without payload")
		}
		return nil
	})
	// A webhook that never answers in time must not hold anything up.
	var hangMu sync.Mutex
	inflight := 0
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hangMu.Lock()
		inflight++
		hangMu.Unlock()
		defer func() { hangMu.Lock(); inflight--; hangMu.Unlock() }()
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second): // bounded, like every load in tests
		}
	}))
	t.Cleanup(func() { hang.CloseClientConnections(); hang.Close() })

	d, err := notify.NewDispatcher([]notify.Channel{
		notify.NewSlack("slack", slackIn.srv.URL, "http://grafana.local", nil),
		notify.NewPagerDuty("pagerduty", "test-routing-key", pdIn.srv.URL, nil),
		notify.NewWebhook("audit", hang.URL, nil, nil),
	}, notify.Options{Timeout: 2 * time.Second, MaxAttempts: 2, InitialBackoff: 100 * time.Millisecond, Metrics: prometheus.NewRegistry(), Log: zerolog.Nop()})
	harness.Must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go d.Run(ctx)

	a := suite.NewApp(t, "notified", 10, nil)
	a.Mesh(200)
	a.SetNotifier(d)
	pol := fastPolicies + `  notify:
  - {on: [rolledBack, stuck], to: pagerduty}
  - {on: all, to: slack}
  - {on: all, to: audit}
`
	a.RunController(harness.ParsePolicies(t, pol), suite.Env().PrometheusURL)

	// A good release is promoted while the hanging webhook still holds a
	// notification of it: the rollout never waits for a delivery. (Each
	// notification to it takes two 2 s attempts, one after the other, so
	// the release's events keep it busy longer than the release lasts.)
	start := time.Now()
	a.Release("notified:v2", nil)
	a.WaitPhase("Succeeded", 90*time.Second)
	hangMu.Lock()
	busy := inflight
	hangMu.Unlock()
	if busy == 0 {
		t.Errorf("the release ended with no notification outstanding at the hanging endpoint: did the rollout wait for deliveries?")
	}
	t.Logf("promoted %s after the release began, with %d notification(s) still hanging", time.Since(start).Round(time.Second), busy)
	// A bad release is rolled back automatically: Slack hears it and
	// PagerDuty is paged.
	a.Release("notified:v3", map[string]string{"sandbox.meshcanary.io/error-rate": "0.3"})
	a.WaitPhase("RolledBack", 90*time.Second)
	a.WaitFor("Slack and PagerDuty to hear of the rollback", 30*time.Second, func() (bool, string) {
		return strings.Contains(strings.Join(slackIn.all(), "\n"), "RolledBack") || strings.Contains(strings.Join(slackIn.all(), "\n"), "rolled back"),
			fmt.Sprintf("%d slack, %d pagerduty", len(slackIn.all()), len(pdIn.all()))
	})
	a.WaitFor("a PagerDuty trigger", 30*time.Second, func() (bool, string) {
		return strings.Contains(strings.Join(pdIn.all(), "\n"), `"event_action":"trigger"`), strings.Join(pdIn.all(), "\n")
	})
	slackAll := strings.Join(slackIn.all(), "\n")
	for _, want := range []string{a.Name(), a.NS(), "notified:v3", "error-rate"} {
		if !strings.Contains(slackAll, want) {
			t.Errorf("Slack messages lack %q", want)
		}
	}
	// The promotion resolved (its own dedup key) and the rollback triggered.
	var actions []string
	for _, b := range pdIn.all() {
		var e pdEvent
		_ = json.Unmarshal([]byte(b), &e)
		actions = append(actions, e.EventAction)
	}
	if !strings.Contains(strings.Join(actions, ","), "resolve") || !strings.Contains(strings.Join(actions, ","), "trigger") {
		t.Errorf("PagerDuty got %v, want a resolve (promotion) and a trigger (rollback)", actions)
	}
	if strings.Contains(slackAll, "test-routing-key") {
		t.Errorf("a secret leaked into a message")
	}
}

func TestAnAlertOnlyRuleNotifiesWithoutRollingBack(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "alerting", 10, nil)
	a.Mesh(200)
	pol := strings.ReplaceAll(fastPolicies, "duration: 4s", "duration: 6s") + `  rules:
  - {when: "latency-p50 > 30ms", action: alert, notify: [slack]}
`
	a.RunController(harness.ParsePolicies(t, strings.Replace(pol, "maxRatio: 2.5", "maxRatio: 20", 1)), suite.Env().PrometheusURL)
	// 45 ms is slower than the rule's 30 ms but within the checks.
	a.Release("alerting:v2", map[string]string{"sandbox.meshcanary.io/latency": "45ms"})
	a.WaitEvent(stages.ReasonRuleAlert, "latency-p50 > 30ms", time.Minute)
	a.WaitPhase("Succeeded", 2*time.Minute)
}

func TestARuleWithADurationIgnoresASpikeAndActsOnASustainedCondition(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "ruled", 10, nil)
	a.Mesh(200)
	pol := strings.ReplaceAll(fastPolicies, "duration: 4s", "duration: 1h") + `  rules:
  - {when: "error-rate > 1%", for: 30s, action: rollback}
`
	// The checks are loose so only the rule can act.
	pol = strings.Replace(pol, `{metric: error-rate, max: "5%", maxIncrease: "2%"}`, `{metric: error-rate, max: "90%"}`, 1)
	a.RunController(harness.ParsePolicies(t, pol), suite.Env().PrometheusURL)
	a.Release("ruled:v2", nil)
	a.WaitFor("canary at 10%", time.Minute, func() (bool, string) { _, c := a.Weights(); return c == 10, "" })

	setPodErrors(t, a, "0.2")
	spike := time.Now()
	a.WaitFor("a 10s spike", 20*time.Second, func() (bool, string) { return time.Since(spike) > 10*time.Second, "" })
	setPodErrors(t, a, "0")
	calm := time.Now()
	a.WaitFor("30s of calm", time.Minute, func() (bool, string) { return time.Since(calm) > 30*time.Second, "" })
	if p := a.Phase(); p != "Progressing" {
		t.Fatalf("the rule acted on a 10s spike: %s: %s", p, a.StableDep().Annotations[annotations.Message])
	}
	setPodErrors(t, a, "0.2")
	a.WaitPhase("RolledBack", 2*time.Minute)
	if msg := a.StableDep().Annotations[annotations.Message]; !strings.Contains(msg, "rule error-rate > 1%") {
		t.Errorf("message %q", msg)
	}
}

// setPodErrors changes the simulated behaviour of the running canary pods
// (not the template: the same release starts or stops failing).
func setPodErrors(t *testing.T, a *harness.App, rate string) {
	t.Helper()
	ctx := context.Background()
	pods, err := a.Kube().CoreV1().Pods(a.NS()).List(ctx, metav1.ListOptions{LabelSelector: "track=canary"})
	harness.Must(t, err)
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{"sandbox.meshcanary.io/error-rate": rate}}})
	for _, p := range pods.Items {
		_, err := a.Kube().CoreV1().Pods(a.NS()).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		harness.Must(t, err)
	}
}

func gateServer(t *testing.T, status int) (*httptest.Server, *[]string) {
	var mu sync.Mutex
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, &bodies
}

func TestAFailingPreRolloutGateKeepsAllTrafficOnStable(t *testing.T) {
	t.Parallel()
	srv, bodies := gateServer(t, http.StatusInternalServerError)
	a := suite.NewApp(t, "gated", 4, nil)
	a.Mesh(100)
	log := recordWeights(t, a)
	pol := fastPolicies + fmt.Sprintf(`  gates:
  - {name: smoke, type: pre-rollout, url: %q, timeout: 2s, retries: 1}
`, srv.URL+"/smoke")
	a.RunController(harness.ParsePolicies(t, pol), suite.Env().PrometheusURL)
	a.Release("gated:v2", nil)
	a.WaitPhase("RolledBack", time.Minute)
	if msg := a.StableDep().Annotations[annotations.Message]; !strings.Contains(msg, "gate smoke failed") {
		t.Errorf("message %q", msg)
	}
	if seq := fmt.Sprint(log.sequence()); seq != "[0]" {
		t.Errorf("canary weights went %s; a failing pre-rollout gate must keep all traffic on stable", seq)
	}
	if len(*bodies) != 2 || !strings.Contains((*bodies)[0], `"gate":"smoke"`) {
		t.Errorf("gate calls: %v", *bodies)
	}
}

func TestAManualApprovalGateHoldsUntilApproved(t *testing.T) {
	t.Parallel()
	srv, _ := gateServer(t, http.StatusOK)
	a := suite.NewApp(t, "approved", 4, nil)
	a.Mesh(200)
	pol := fastPolicies + fmt.Sprintf(`  gates:
  - {name: smoke, type: pre-rollout, url: %q}
  - {name: load, type: during-stage, stage: 2, url: %q}
  - {name: release-manager, type: confirm-promotion}
`, srv.URL+"/smoke", srv.URL+"/load")
	a.RunController(harness.ParsePolicies(t, pol), suite.Env().PrometheusURL)
	a.Release("approved:v2", nil)
	a.WaitEvent(stages.ReasonAwaitingApproval, "approve", 2*time.Minute)
	waiting := time.Now()
	a.WaitFor("a while without approval", 20*time.Second, func() (bool, string) { return time.Since(waiting) > 8*time.Second, "" })
	if p := a.Phase(); p != "Progressing" {
		t.Fatalf("phase %s without approval", p)
	}
	if _, c := a.Weights(); c != 100 {
		t.Fatalf("canary weight %d while awaiting approval, want the last stage's 100", c)
	}
	a.Annotate(annotations.Approve, harness.Ptr("release-manager-alice"))
	a.WaitPhase("Succeeded", time.Minute)
	a.WaitEvent(stages.ReasonApproved, "alice", 10*time.Second)
}

func TestBlueGreenSwitchesAndSwitchesBackWithoutFailedRequests(t *testing.T) {
	t.Parallel()
	srv, _ := gateServer(t, http.StatusOK)
	a := suite.NewApp(t, "bluegreen", 6, map[string]string{annotations.Policy: "blue-green"})
	sim := a.Mesh(200)
	log := recordWeights(t, a)
	pol := fmt.Sprintf(`
policies:
- name: blue-green
  strategy: blueGreen
  monitor: 8s
  interval: 2s
  minRequests: 10
  checks:
  - {metric: error-rate, max: "5%%"}
  gates:
  - {name: smoke, type: pre-rollout, url: %q}
`, srv.URL+"/smoke")
	a.RunController(harness.ParsePolicies(t, pol), suite.Env().PrometheusURL)

	// A good release: green comes up at full size, then one switch.
	a.Release("bluegreen:v2", nil)
	a.WaitPhase("Succeeded", 2*time.Minute)
	log.caughtUp(a, 0)
	if seq := fmt.Sprint(log.sequence()); seq != "[0 100 0]" {
		t.Errorf("weights went %s, want one switch to green and back to the promoted stable", seq)
	}
	for _, e := range log.get() {
		if e.canary == 100 && e.replicas != 6 {
			t.Errorf("green had %d replicas at the switch, want stable's 6", e.replicas)
		}
	}
	// A bad release switches straight back to the still-running blue.
	a.Release("bluegreen:v3", map[string]string{"sandbox.meshcanary.io/error-rate": "0.5"})
	a.WaitPhase("RolledBack", 2*time.Minute)
	truth := sim.TruthByService(a.NS(), a.Name())
	green := sim.Truth(a.NS(), a.Name()+"-canary")
	if truth.UH != 0 {
		t.Errorf("%d requests found no healthy upstream during the switches", truth.UH)
	}
	if failedByStable := truth.Failed - green.Failed; failedByStable != 0 {
		t.Errorf("%d requests failed that the bad green did not cause", failedByStable)
	}
}

func TestARollbackDuringTheBakeWindowIsInstant(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "baking", 6, nil)
	sim := a.Mesh(200)
	pol := strings.Replace(fastPolicies, "{weight: 100, duration: 4s}", "{weight: 100, duration: 24h}", 1)
	a.RunController(harness.ParsePolicies(t, pol), suite.Env().PrometheusURL)
	a.Release("baking:v2", nil)
	a.WaitFor("the bake stage at 100%", 2*time.Minute, func() (bool, string) { _, c := a.Weights(); return c == 100, "" })
	if r := a.StableDep().Status.AvailableReplicas; r != 6 {
		t.Fatalf("old stable has %d available replicas during the bake window, want all 6", r)
	}
	// Instant means one weight write: the old stable is still fully up, so
	// nothing has to be scaled or rolled out before traffic returns to it.
	stableBefore := a.StableDep()
	start := time.Now()
	a.Annotate(annotations.Rollback, harness.Ptr("regression after promotion"))
	a.WaitFor("stable serving 100%", 30*time.Second, func() (bool, string) { s, _ := a.Weights(); return s == 100, "" })
	t.Logf("rollback in the bake window reached the VirtualService in %s", time.Since(start).Round(time.Millisecond))
	after := a.StableDep()
	if !equality.Semantic.DeepEqual(after.Spec.Template, stableBefore.Spec.Template) || *after.Spec.Replicas != *stableBefore.Spec.Replicas || after.Status.AvailableReplicas != 6 {
		t.Errorf("stable's template or size changed during the rollback (%d available): the rollback was more than a weight write", after.Status.AvailableReplicas)
	}
	a.WaitPhase("RolledBack", 10*time.Second)
	if truth := sim.TruthByService(a.NS(), a.Name()); truth.Failed != 0 {
		t.Errorf("%d requests failed", truth.Failed)
	}
}

func TestHistoryRecordsEveryRelease(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "historic", 4, nil)
	a.Mesh(200)
	a.RunController(harness.ParsePolicies(t, fastPolicies), suite.Env().PrometheusURL)
	a.Release("historic:v2", nil)
	a.WaitPhase("Succeeded", 2*time.Minute)
	a.Release("historic:v3", map[string]string{"sandbox.meshcanary.io/error-rate": "0.3"})
	a.WaitPhase("RolledBack", 2*time.Minute)
	a.Release("historic:v4", nil)
	a.WaitFor("canary at 10%", time.Minute, func() (bool, string) { _, c := a.Weights(); return c == 10, "" })
	a.Annotate(annotations.Rollback, harness.Ptr("by hand"))
	a.WaitFor("three releases in the history", 30*time.Second, func() (bool, string) {
		v := a.View()
		return len(v.History) == 3, fmt.Sprint(len(v.History))
	})
	v := a.View()
	want := []struct{ result, decidedBy, image string }{
		{"promoted", "analysis", "historic:v2"},
		{"rolled-back", "analysis", "historic:v3"},
		{"manual-rollback", "annotation", "historic:v4"},
	}
	for i, w := range want {
		h := v.History[i]
		if h.Result != w.result || h.DecidedBy != w.decidedBy || len(h.Images) == 0 || !strings.Contains(h.Images[0], w.image) || h.Finished.Before(h.Started) {
			t.Errorf("history[%d] = %+v, want %+v", i, h, w)
		}
	}
}
