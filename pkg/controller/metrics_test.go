package controller

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshcanary/meshcanary/pkg/metrics"
	"github.com/meshcanary/meshcanary/pkg/policy"
	"github.com/meshcanary/meshcanary/pkg/stages"
)

// fakeAnalyzer answers every analysis with the same result.
type fakeAnalyzer struct{ res metrics.Result }

func (f fakeAnalyzer) Analyze(context.Context, metrics.Request) (metrics.Result, error) {
	return f.res, nil
}

// bookkeeper runs the controller's real metrics bookkeeping (analyse,
// publish, forget) without a cluster.
type bookkeeper struct {
	c   *Controller
	m   *Metrics
	reg *prometheus.Registry
}

func newBookkeeper(checks []metrics.CheckResult) *bookkeeper {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	res := metrics.Result{Verdict: metrics.VerdictPass, Checks: checks, CanaryRequests: 1000, StableRequests: 1000}
	return &bookkeeper{c: &Controller{cfg: Config{Metrics: m, Analyzer: fakeAnalyzer{res: res}}}, m: m, reg: reg}
}

func rolloutTarget(ns, name string, steps int, checks []policy.Check) *target {
	p := policy.Default()
	p.Checks = checks
	p.Stages = nil
	var plan stages.Plan
	for i := range steps {
		plan.Steps = append(plan.Steps, stages.Step{Weight: (i + 1) * 100 / steps, Duration: time.Minute})
	}
	dep := func(n string) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: n}}
	}
	return &target{stable: dep(name), canary: dep(name + "-canary"), policy: p, plan: plan}
}

// reconcileOnce does what one reconcile of a rollout in its first stage
// does to the metrics: an analysis, then publishing the decision.
func (b *bookkeeper) reconcileOnce(t testing.TB, tg *target) {
	t.Helper()
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	st := stages.State{Phase: stages.Progressing, Stage: 0, StageStart: now.Add(-time.Minute)}
	job := analysisJob{key: "k", from: now.Add(-time.Minute), at: now, t: tg, st: st}
	if out := b.c.runAnalyses(context.Background(), []analysisJob{job})[0]; out.invalid != "" {
		t.Fatalf("analysis: %s", out.invalid)
	}
	b.c.publish(tg, st, st)
}

// series lists the series of one rollout, as name{label=value,...}.
func (b *bookkeeper) series(t *testing.T, ns, name string) []string {
	t.Helper()
	mfs, err := b.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			var pairs []string
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
				pairs = append(pairs, l.GetName()+"="+l.GetValue())
			}
			if labels["namespace"] == ns && labels["deployment"] == name {
				out = append(out, mf.GetName()+"{"+strings.Join(pairs, ",")+"}")
			}
		}
	}
	sort.Strings(out)
	return out
}

// gauges keeps the gauge series of a list from series.
func gauges(series []string) []string {
	return slices.DeleteFunc(slices.Clone(series), func(s string) bool {
		name, _, _ := strings.Cut(s, "{")
		return strings.HasSuffix(name, "_total")
	})
}

var (
	bothChecks = []policy.Check{
		{Metric: policy.MetricErrorRate, Max: &policy.Value{Raw: "5%", Number: 0.05, Unit: policy.UnitPercent}},
		{Metric: policy.MetricLatencyP95, MaxRatio: new(1.5)},
	}
	bothResults = []metrics.CheckResult{
		{Metric: policy.MetricErrorRate, Canary: 0.01, Stable: 0.01},
		{Metric: policy.MetricLatencyP95, Canary: 0.2, Stable: 0.2},
	}
)

func TestForgettingARolloutDeletesExactlyItsSeries(t *testing.T) {
	cases := map[string]struct {
		// reconciles are the stage counts of successive reconciles; the
		// checks and results those reconciles analyse.
		reconciles []int
		checks     []policy.Check
		results    []metrics.CheckResult
	}{
		"a rollout that only published its phase, weight and stage":   {[]int{4}, nil, nil},
		"a rollout whose analyses set values and thresholds":          {[]int{4, 4}, bothChecks, bothResults},
		"a rollout whose number of stages changed between reconciles": {[]int{4, 3}, bothChecks, bothResults},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			b := newBookkeeper(c.results)
			// The neighbours share the namespace or the name of the one
			// that is forgotten.
			rollouts := [][2]string{{"payments", "pay"}, {"payments", "ledger"}, {"shop", "pay"}}
			for _, n := range c.reconciles {
				for _, r := range rollouts {
					b.reconcileOnce(t, rolloutTarget(r[0], r[1], n, c.checks))
				}
			}
			before := map[[2]string][]string{}
			for _, r := range rollouts {
				before[r] = b.series(t, r[0], r[1])
				if len(gauges(before[r])) == 0 {
					t.Fatalf("%s/%s has no gauge series to forget: %v", r[0], r[1], before[r])
				}
			}

			b.m.forget("payments", "pay")

			if left := gauges(b.series(t, "payments", "pay")); len(left) > 0 {
				t.Errorf("series of the forgotten rollout remain:\n%s", strings.Join(left, "\n"))
			}
			for _, r := range rollouts[1:] {
				if got := b.series(t, r[0], r[1]); !slices.Equal(got, before[r]) {
					t.Errorf("the series of %s/%s changed:\nbefore %v\nafter  %v", r[0], r[1], before[r], got)
				}
			}
			for _, v := range []*RolloutGaugeVec{b.m.AnalysisValue, b.m.AnalysisThreshold, b.m.StageInfo} {
				if _, ok := v.series[rolloutKey{"payments", "pay"}]; ok {
					t.Errorf("the bookkeeping still remembers the forgotten rollout")
				}
			}
		})
	}
}

func TestEachReconcilePublishesTheSeriesOfItsOwnDecision(t *testing.T) {
	errorRateOnly := bothChecks[:1]
	cases := map[string]struct {
		first, second       int
		firstChecks, checks []policy.Check
		family              string
		want                []string
	}{
		"a changed number of stages leaves one stage series": {4, 3, bothChecks, bothChecks, "meshcanary_rollout_stage", []string{
			"meshcanary_rollout_stage{deployment=pay,namespace=payments,stages=3}",
		}},
		"a check dropped from the policy takes its threshold with it": {4, 4, bothChecks, errorRateOnly, "meshcanary_analysis_threshold", []string{
			"meshcanary_analysis_threshold{bound=max,deployment=pay,metric=error-rate,namespace=payments}",
		}},
		"an unchanged policy keeps every threshold": {4, 4, bothChecks, bothChecks, "meshcanary_analysis_threshold", []string{
			"meshcanary_analysis_threshold{bound=max,deployment=pay,metric=error-rate,namespace=payments}",
			"meshcanary_analysis_threshold{bound=maxRatio,deployment=pay,metric=latency-p95,namespace=payments}",
		}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			b := newBookkeeper(bothResults)
			b.reconcileOnce(t, rolloutTarget("payments", "pay", c.first, c.firstChecks))
			b.reconcileOnce(t, rolloutTarget("payments", "pay", c.second, c.checks))
			got := slices.DeleteFunc(b.series(t, "payments", "pay"), func(s string) bool { return !strings.HasPrefix(s, c.family+"{") })
			if !slices.Equal(got, c.want) {
				t.Errorf("series\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}

// countingVec counts the calls a RolloutGaugeVec makes into its vec.
type countingVec struct {
	gaugeVec
	calls *int
}

func (v countingVec) WithLabelValues(lvs ...string) prometheus.Gauge {
	*v.calls++
	return v.gaugeVec.WithLabelValues(lvs...)
}

func (v countingVec) DeleteLabelValues(lvs ...string) bool {
	*v.calls++
	return v.gaugeVec.DeleteLabelValues(lvs...)
}

func TestReconcileBookkeepingCostsTheSameWhateverTheNumberOfOtherRollouts(t *testing.T) {
	callsWith := func(others int) (perReconcile, forget int) {
		b := newBookkeeper(bothResults)
		calls := 0
		for _, v := range []*RolloutGaugeVec{b.m.AnalysisValue, b.m.AnalysisThreshold, b.m.StageInfo} {
			v.vec = countingVec{gaugeVec: v.vec, calls: &calls}
		}
		for i := range others {
			b.reconcileOnce(t, rolloutTarget(fmt.Sprintf("team-%d", i%50), fmt.Sprintf("svc-%d", i), 4, bothChecks))
		}
		tg := rolloutTarget("payments", "pay", 4, bothChecks)
		b.reconcileOnce(t, tg)
		calls = 0
		b.reconcileOnce(t, tg)
		perReconcile = calls
		calls = 0
		b.m.forget("payments", "pay")
		return perReconcile, calls
	}
	alone, forgetAlone := callsWith(0)
	crowded, forgetCrowded := callsWith(2000)
	if alone != crowded || forgetAlone != forgetCrowded {
		t.Errorf("calls into the metric vecs: a reconcile %d alone, %d among 2,000 rollouts; forget %d alone, %d among 2,000",
			alone, crowded, forgetAlone, forgetCrowded)
	}
	// 4 analysis values set; 2 thresholds and the stage series deleted
	// and set again. Forgetting deletes those 7.
	if alone != 4+2*2+2 || forgetAlone != 4+2+1 {
		t.Errorf("a reconcile made %d calls and forget %d; want 10 and 7", alone, forgetAlone)
	}
}

func BenchmarkReconcileBookkeeping(b *testing.B) {
	for _, others := range []int{10, 10000} {
		b.Run(fmt.Sprintf("others=%d", others), func(b *testing.B) {
			bk := newBookkeeper(bothResults)
			for i := range others {
				bk.reconcileOnce(b, rolloutTarget(fmt.Sprintf("team-%d", i%50), fmt.Sprintf("svc-%d", i), 4, bothChecks))
			}
			tg := rolloutTarget("payments", "pay", 4, bothChecks)
			b.ResetTimer()
			for b.Loop() {
				bk.reconcileOnce(b, tg)
			}
		})
	}
}
