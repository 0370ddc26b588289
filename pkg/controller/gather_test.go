package controller

import (
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/policy"
	"github.com/meshcanary/meshcanary/pkg/stages"
)

func template(track, image string, ann map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "pay", "track": track}, Annotations: ann},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
	}
}

func TestRevision(t *testing.T) {
	keys := []string{"track"}
	cases := map[string]struct {
		a, b corev1.PodTemplateSpec
		same bool
	}{
		"stable and canary running the same image have the same revision": {
			template("stable", "pay:v1", nil), template("canary", "pay:v1", nil), true},
		"a new image is a new revision": {
			template("stable", "pay:v1", nil), template("canary", "pay:v2", nil), false},
		"kubectl rollout restart on stable does not start a release": {
			template("stable", "pay:v1", map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-11-23T10:00:00Z"}),
			template("canary", "pay:v1", nil), true},
		"a changed pod annotation is a new revision": {
			template("stable", "pay:v1", nil), template("canary", "pay:v1", map[string]string{"config/hash": "abc"}), false},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if got := revision(&c.a, keys) == revision(&c.b, keys); got != c.same {
				t.Fatalf("same revision = %v, want %v", got, c.same)
			}
		})
	}
}

func TestBuildPlan(t *testing.T) {
	base := policy.Default()
	base.Stages = []policy.Stage{
		{Weight: 10, Duration: policy.Duration{Duration: time.Hour}},
		{Weight: 50, Duration: policy.Duration{Duration: 2 * time.Hour}},
		{Weight: 100, Duration: policy.Duration{Duration: 10 * time.Minute}},
	}
	blueGreen := base
	blueGreen.Strategy = policy.StrategyBlueGreen
	blueGreen.Monitor = policy.Duration{Duration: time.Hour}
	cases := map[string]struct {
		p    policy.Policy
		spec annotations.Spec
		want []stages.Step
	}{
		"the policy's stages are walked as written": {base, annotations.Spec{}, []stages.Step{
			{Weight: 10, Duration: time.Hour}, {Weight: 50, Duration: 2 * time.Hour}, {Weight: 100, Duration: 10 * time.Minute}}},
		"a stages annotation replaces the weights and borrows durations by position": {base, annotations.Spec{Stages: []int{1, 5, 25, 75, 100}}, []stages.Step{
			{Weight: 1, Duration: time.Hour}, {Weight: 5, Duration: 2 * time.Hour}, {Weight: 25, Duration: 10 * time.Minute},
			{Weight: 75, Duration: 10 * time.Minute}, {Weight: 100, Duration: 10 * time.Minute}}},
		"a stage-duration annotation overrides every stage": {base, annotations.Spec{StageDuration: time.Minute}, []stages.Step{
			{Weight: 10, Duration: time.Minute}, {Weight: 50, Duration: time.Minute}, {Weight: 100, Duration: time.Minute}}},
		"blue/green is one full stage for the monitor window": {blueGreen, annotations.Spec{}, []stages.Step{
			{Weight: 100, Duration: time.Hour}}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			c.p.Stages = effectiveStages(c.p, c.spec)
			plan, err := buildPlan(c.p, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if len(plan.Steps) != len(c.want) {
				t.Fatalf("steps %+v, want %+v", plan.Steps, c.want)
			}
			for i := range c.want {
				if plan.Steps[i] != c.want[i] {
					t.Errorf("step %d = %+v, want %+v", i, plan.Steps[i], c.want[i])
				}
			}
		})
	}
}

func TestBuildPlanCarriesGatesRulesAndSchedules(t *testing.T) {
	p := policy.Default()
	p.Window = "CRON_TZ=Europe/Paris * 9-16 * * 1-5"
	p.Freeze = []string{"* * 24-26 12 *"}
	p.Gates = []policy.Gate{{Name: "load", Type: policy.GatePreStage, Stage: 2, OnFailure: policy.OnFailureHold}}
	p.Rules = []policy.Rule{{Name: "errors", When: "error-rate > 1%", For: policy.Duration{Duration: 5 * time.Minute}, Action: policy.ActionRollback}}
	plan, err := buildPlan(p, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Window == nil || len(plan.Freeze) != 1 || plan.StartAt != nil {
		t.Errorf("schedules: window %v freeze %d startAt %v", plan.Window, len(plan.Freeze), plan.StartAt)
	}
	if g := plan.Gates; len(g) != 1 || g[0].Stage != 1 || !g[0].Hold || g[0].Type != stages.GatePreStage {
		t.Errorf("gates %+v: the policy's 1-based stage 2 is the core's index 1", g)
	}
	if r := plan.Rules; len(r) != 1 || r[0].For != 5*time.Minute || r[0].Action != stages.RuleRollback {
		t.Errorf("rules %+v", r)
	}
	p.Window = "not a schedule"
	if _, err := buildPlan(p, time.Minute); err == nil {
		t.Errorf("a broken window was accepted")
	}
}

func TestWorkloadIsSettledOnlyWhenItsRolloutIsComplete(t *testing.T) {
	three := int32(3)
	dep := func(gen, observed int64, replicas, updated, available int32) *appsv1.Deployment {
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Generation: gen},
			Spec:       appsv1.DeploymentSpec{Replicas: &three},
			Status:     appsv1.DeploymentStatus{ObservedGeneration: observed, Replicas: replicas, UpdatedReplicas: updated, AvailableReplicas: available},
		}
	}
	cases := map[string]struct {
		d       *appsv1.Deployment
		settled bool
	}{
		"all replicas updated and available":          {dep(2, 2, 3, 3, 3), true},
		"the controller has not seen the new spec":    {dep(3, 2, 3, 3, 3), false},
		"an old pod is still running":                 {dep(2, 2, 4, 3, 3), false},
		"a new pod is not available yet":              {dep(2, 2, 3, 3, 2), false},
		"pods available but some of the old template": {dep(2, 2, 3, 2, 3), false},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if got := workload(c.d, "r").Settled; got != c.settled {
				t.Fatalf("settled = %v, want %v", got, c.settled)
			}
		})
	}
}

func TestRuleMetricsAreObservedOnce(t *testing.T) {
	p := policy.Policy{Rules: []policy.Rule{
		{When: "error-rate > 1%"}, {When: "error-rate > 5%"}, {When: "latency-p95 > 3s"}, {When: "not a condition"},
	}}
	got := ruleMetrics(p)
	if len(got) != 2 || got[0] != "error-rate" || got[1] != "latency-p95" {
		t.Fatalf("observed %v", got)
	}
}

func TestReleaseEndedCountsEachReleaseOnce(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ended := stages.State{Phase: stages.RolledBack, Finished: t0}
	cases := map[string]struct {
		before, after stages.State
		want          bool
	}{
		"a rollout that just rolled back":           {stages.State{Phase: stages.Progressing}, ended, true},
		"the same finished release looked at again": {ended, ended, false},
		"a phase restored after an invalid configuration": {
			stages.State{Phase: stages.Invalid, Interrupted: stages.RolledBack, Finished: t0}, ended, false},
		"a release in progress": {stages.State{Phase: stages.Idle}, stages.State{Phase: stages.Progressing}, false},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if got := releaseEnded(c.before, c.after); got != c.want {
				t.Fatalf("got %v want %v", got, c.want)
			}
		})
	}
}

func destinationRule(ns, name, host string) *unstructured.Unstructured {
	subset := func(track string) map[string]any {
		return map[string]any{"name": track, "labels": map[string]any{"app": "pay", "track": track, "rule": name}}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
		"metadata": map[string]any{"namespace": ns, "name": name},
		"spec":     map[string]any{"host": host, "subsets": []any{subset("stable"), subset("canary")}},
	}}
}

// destinationRulesController is a controller whose DestinationRule
// informer holds rules, as New indexes them; the informer never starts.
func destinationRulesController(t *testing.T, rules ...*unstructured.Unstructured) *Controller {
	t.Helper()
	inf := cache.NewSharedIndexInformer(&cache.ListWatch{}, &unstructured.Unstructured{}, 0,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	if err := addDestinationRuleIndexers(inf); err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if err := inf.GetIndexer().Add(r); err != nil {
			t.Fatal(err)
		}
	}
	return &Controller{cfg: Config{DRs: inf}}
}

func TestDestinationRuleIsFoundByItsHostInAnyForm(t *testing.T) {
	c := destinationRulesController(t,
		destinationRule("payments", "pay-short", "pay"),
		destinationRule("payments", "ledger-fqdn", "ledger.payments.svc.cluster.local"),
		destinationRule("payments", "payment-upper", "Payment.Payments.svc.cluster.local."),
		destinationRule("payments", "pay-in-shop", "pay.shop"),
		// First by name, but in another namespace.
		destinationRule("shop", "aa-elsewhere", "pay.payments.svc.cluster.local"),
		// Two rules for one host: the first by name serves, on every
		// reconcile alike.
		destinationRule("payments", "b-cart", "cart"),
		destinationRule("payments", "a-cart", "cart.payments.svc"),
		destinationRule("payments", "no-host", ""),
	)
	spec := annotations.Spec{StableSubset: "stable", CanarySubset: "canary"}
	cases := map[string]struct {
		host string
		want string // the rule whose subsets are used; "" for none
	}{
		"a short name finds a rule written with the short name":            {"pay", "pay-short"},
		"a namespaced name finds a rule written with the short name":       {"pay.payments", "pay-short"},
		"a full name finds a rule written with the short name":             {"pay.payments.svc.cluster.local", "pay-short"},
		"a short name finds a rule written with the full name":             {"ledger", "ledger-fqdn"},
		"capitals and the svc form find a rule written with the full name": {"LEDGER.payments.svc", "ledger-fqdn"},
		"a short name finds a rule written in capitals with a root dot":    {"payment", "payment-upper"},
		"a service of another namespace finds the rule naming it":          {"pay.shop", "pay-in-shop"},
		"of two rules for one host the first by name serves":               {"cart", "a-cart"},
		"a rule in another namespace never serves":                         {"pay.payments.svc.cluster.local.", "pay-short"},
		"a host without a rule finds none":                                 {"orders", ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			stable, canary, err := c.subsets("payments", tc.host, spec)
			if tc.want == "" {
				if _, ok := isInvalid(err); !ok {
					t.Fatalf("found subsets %v %v (err %v), want an invalid configuration", stable, canary, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if stable["rule"] != tc.want || canary["rule"] != tc.want || stable["track"] != "stable" || canary["track"] != "canary" {
				t.Errorf("subsets stable %v canary %v, want those of %s", stable, canary, tc.want)
			}
		})
	}
}

func TestDestinationRuleLookupVisitsOnlyRulesOfItsHost(t *testing.T) {
	rules := []*unstructured.Unstructured{
		destinationRule("payments", "pay", "pay"),
		destinationRule("payments", "pay-in-shop", "pay.shop"),
	}
	for i := range 2000 {
		rules = append(rules, destinationRule(fmt.Sprintf("team-%d", i%40), fmt.Sprintf("svc-%d", i), fmt.Sprintf("svc-%d", i)))
	}
	c := destinationRulesController(t, rules...)
	candidates, err := c.cfg.DRs.GetIndexer().ByIndex(indexDRByHost, drHostKey("payments", "PAY.payments.svc.cluster.local"))
	if err != nil {
		t.Fatal(err)
	}
	// Both share the first label; HostsEqual then keeps the one it names.
	if len(candidates) != 2 {
		t.Errorf("the index handed over %d rules, want the 2 whose host starts with pay", len(candidates))
	}
	got, err := c.destinationRules("payments", "PAY.payments.svc.cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].GetName() != "pay" {
		t.Errorf("rules for the host: %v, want only pay", got)
	}
}
