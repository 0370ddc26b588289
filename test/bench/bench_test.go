package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	dto "github.com/prometheus/client_model/go"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/controller"
	"github.com/meshcanary/meshcanary/pkg/virtualservice"
	"github.com/meshcanary/meshcanary/test/harness"
	"github.com/meshcanary/meshcanary/test/meshsim"
)

var suite = harness.NewSuite()

func TestMain(m *testing.M) { suite.Main(m) }

// detectionPolicy is the production shape (10 s analysis interval, two
// consecutive failures) with one long stage at the weight under test, so
// the regression is met there and nowhere else. minRequests is left at the
// policy default (50): a smaller one makes a single error among a handful
// of requests fail `max: 1%`, which measures a setting nobody should run.
const detectionPolicy = `
policies:
- name: default
  interval: 10s
  lookback: %s
  failureLimit: 2
  metricsOutageLimit: 5
  checks:
  - {metric: error-rate, max: "1%%", maxIncrease: "1%%"}
  - {metric: latency-p95, maxRatio: 1.5}
  stages:
  - {weight: %d, duration: 1h}
  - {weight: 100, duration: 1h}
`

// BenchmarkDetectionTime: a healthy canary reaches the stage, then its pods
// start failing 5% of requests (the pods' behaviour changes, the template
// does not, so this is the same release going bad). Measured: onset to the
// VirtualService at 100/0, at 50 requests per second and a 1 s scrape.
//
// Builtin checks judge the whole stage whatever the lookback, which only
// sets the window of custom metrics and rules; the benchmark keeps the
// default of one interval.
func BenchmarkDetectionTime(b *testing.B) {
	for _, lookback := range []string{"10s"} {
		for _, weight := range []int{1, 10, 50} {
			b.Run(fmt.Sprintf("lookback=%s/stage=%d%%", lookback, weight), func(b *testing.B) {
				detect(b, lookback, weight)
			})
		}
	}
}

// detect runs the scenario once per seed (BENCH_SEEDS, default 3) and
// reports the median: the simulated errors are random, and one sequence of
// them is one sample.
func detect(b *testing.B, lookback string, weight int) {
	seeds := 3
	if v, err := strconv.Atoi(os.Getenv("BENCH_SEEDS")); err == nil && v > 0 {
		seeds = v
	}
	for i := 0; i < b.N; i++ {
		var times []time.Duration
		var fails []int64
		for seed := 1; seed <= seeds; seed++ {
			d, f := detectOnce(b, lookback, weight, i, int64(seed))
			times, fails = append(times, d), append(fails, f)
		}
		slices.Sort(times)
		slices.Sort(fails)
		med := times[len(times)/2]
		b.ReportMetric(med.Seconds(), "s-to-detect-median")
		b.ReportMetric(times[len(times)-1].Seconds(), "s-to-detect-max")
		b.ReportMetric(med.Seconds()/10, "intervals-median")
		b.ReportMetric(float64(fails[len(fails)/2]), "failed-canary-requests-median")
		b.Logf("lookback %s, stage %d%%: detection over %d seeds %v, median %s", lookback, weight, seeds, times, med)
	}
}

func detectOnce(b *testing.B, lookback string, weight, i int, seed int64) (time.Duration, int64) {
	a := suite.NewApp(b, fmt.Sprintf("detect-%d-%d-%d", weight, i, seed), 10, nil)
	sim := a.MeshSeeded(50, seed)
	a.RunController(harness.ParsePolicies(b, fmt.Sprintf(detectionPolicy, lookback, weight)), suite.Env().PrometheusURL)
	a.Release("payment:v2", nil)
	a.WaitFor("the canary at its stage", 2*time.Minute, func() (bool, string) { _, c := a.Weights(); return c == weight, "" })
	before := sim.Truth(a.NS(), a.Name()+"-canary")
	onset := time.Now()
	podsFail(b, a, "0.05")
	a.WaitFor("the VirtualService back at 100/0", 15*time.Minute, func() (bool, string) {
		_, c := a.Weights()
		return c == 0, a.StableDep().Annotations[annotations.Message]
	})
	detect := time.Since(onset)
	failed := sim.Truth(a.NS(), a.Name()+"-canary").Failed - before.Failed
	b.Logf("lookback %s, stage %d%%, seed %d: detected in %s (%.1f intervals of 10s), %d failed canary requests: %s",
		lookback, weight, seed, detect.Round(100*time.Millisecond), detect.Seconds()/10, failed, a.StableDep().Annotations[annotations.Message])
	return detect, failed
}

// podsFail changes the simulated behaviour of the running canary pods.
func podsFail(tb testing.TB, a *harness.App, rate string) {
	tb.Helper()
	ctx := context.Background()
	pods, err := a.Kube().CoreV1().Pods(a.NS()).List(ctx, metav1.ListOptions{LabelSelector: "track=canary"})
	harness.Must(tb, err)
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{"sandbox.meshcanary.io/error-rate": rate}}})
	for _, p := range pods.Items {
		_, err := a.Kube().CoreV1().Pods(a.NS()).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		harness.Must(tb, err)
	}
}

// wholeReleasePolicy is the default policy (stages 1/10/50/100% of 5 min,
// error-rate max 5% + maxIncrease 1%, latency-p95 maxRatio 1.5,
// minRequests 50, failureLimit 2) at the production interval of 10 s.
const wholeReleasePolicy = `
policies:
- name: default
  interval: 10s
`

// BenchmarkDetectionBeforeHalf: a canary failing 10% or 5% of its requests
// from its first one, released with the default policy at 80 requests per
// second. Measured per run: the highest canary weight the route carried
// before the rollback, the time from first canary traffic to the route
// back at 100/0, and the canary's failed requests. The runs of one error
// rate share the machine, each with its own app and seed (BENCH_SEEDS).
func BenchmarkDetectionBeforeHalf(b *testing.B) {
	for _, rate := range []string{"0.10", "0.05"} {
		b.Run("errors="+rate, func(b *testing.B) {
			seeds := 3
			if v, err := strconv.Atoi(os.Getenv("BENCH_SEEDS")); err == nil && v > 0 {
				seeds = v
			}
			for i := 0; i < b.N; i++ {
				wholeRelease(b, rate, seeds, i)
			}
		})
	}
}

// releaseRun is one run of BenchmarkDetectionBeforeHalf.
type releaseRun struct {
	seed      int64
	maxWeight int
	took      time.Duration
	failed    int64
	err       error
}

func wholeRelease(b *testing.B, rate string, seeds, i int) {
	runs := make([]releaseRun, seeds)
	var wg sync.WaitGroup
	for s := range seeds {
		a := suite.NewApp(b, fmt.Sprintf("half-%s-%d-%d", strings.TrimPrefix(rate, "0."), i, s+1), 10, nil)
		sim := a.MeshSeeded(80, int64(s+1))
		a.RunController(harness.ParsePolicies(b, wholeReleasePolicy), suite.Env().PrometheusURL)
		wg.Go(func() { runs[s] = watchRelease(a, sim, rate, int64(s+1)) })
	}
	wg.Wait()
	before := 0
	var took []time.Duration
	for _, r := range runs {
		if r.err != nil {
			b.Fatalf("seed %d: %v", r.seed, r.err)
		}
		if r.maxWeight < 50 {
			before++
		}
		took = append(took, r.took)
		b.Logf("errors %s, seed %d: highest canary weight %d%%, rolled back %s after first canary traffic, %d failed canary requests",
			rate, r.seed, r.maxWeight, r.took.Round(time.Second), r.failed)
	}
	slices.Sort(took)
	b.ReportMetric(float64(before), "runs-rolled-back-before-50%")
	b.ReportMetric(float64(len(runs)), "runs")
	b.ReportMetric(took[len(took)/2].Seconds(), "s-to-rollback-median")
}

// watchRelease releases a canary failing rate of its requests and follows
// the route until it is back at 100/0, polling (bounded by 20 minutes).
func watchRelease(a *harness.App, sim *meshsim.Sim, rate string, seed int64) releaseRun {
	r := releaseRun{seed: seed}
	a.Release("payment:v2-bad", map[string]string{"sandbox.meshcanary.io/error-rate": rate})
	var first time.Time
	for deadline := time.Now().Add(20 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		_, c := a.Weights()
		r.maxWeight = max(r.maxWeight, c)
		if c > 0 && first.IsZero() {
			first = time.Now()
		}
		if !first.IsZero() && c == 0 {
			r.took = time.Since(first)
			r.failed = sim.Truth(a.NS(), a.Name()+"-canary").Failed
			return r
		}
		if p := a.Phase(); p == "Succeeded" {
			r.err = fmt.Errorf("promoted a canary failing %s of requests", rate)
			return r
		}
	}
	r.err = errors.New("not rolled back within 20 minutes")
	return r
}

const rollbackPolicy = `
policies:
- name: default
  interval: 10s
  stages:
  - {weight: 50, duration: 1h}
`

// BenchmarkManualRollbackReaction: the annotation written (request sent) to
// the VirtualService at 100/0 (the watch event received), over many
// rollbacks. Set BENCH_ROLLBACKS to change the count (default 50).
func BenchmarkManualRollbackReaction(b *testing.B) {
	benchRollbacks(b, "rollback", rollbackPolicy, func(*harness.PromProxy) {})
}

// BenchmarkManualRollbackReactionPrometheusHanging is the same with every
// Prometheus query hanging unanswered and an analysis due every 2s, so
// analyses are always in flight when the rollback is written.
func BenchmarkManualRollbackReactionPrometheusHanging(b *testing.B) {
	benchRollbacks(b, "hung", strings.Replace(rollbackPolicy, "interval: 10s", "interval: 2s", 1), func(p *harness.PromProxy) { p.SetHanging(true) })
}

func benchRollbacks(b *testing.B, name, pol string, prom func(*harness.PromProxy)) {
	n := 50
	if v, err := strconv.Atoi(os.Getenv("BENCH_ROLLBACKS")); err == nil && v > 0 {
		n = v
	}
	for i := 0; i < b.N; i++ {
		a := suite.NewApp(b, fmt.Sprintf("%s-%d", name, i), 2, nil)
		a.Mesh(50)
		proxy := suite.NewPromProxy(b)
		prom(proxy)
		a.RunController(harness.ParsePolicies(b, pol), proxy.URL())
		var reactions []time.Duration
		for r := 0; r < n; r++ {
			a.Release(fmt.Sprintf("payment:v%d", r+2), nil)
			a.WaitFor("the canary at 50%", time.Minute, func() (bool, string) { _, c := a.Weights(); return c == 50, a.Phase() })
			reactions = append(reactions, timeRollback(b, a, fmt.Sprintf("bench %d", r)))
			a.WaitFor("the rollback to settle", time.Minute, func() (bool, string) {
				return a.Phase() == "RolledBack" && *a.CanaryDep().Spec.Replicas == 0, a.Phase()
			})
		}
		slices.Sort(reactions)
		p50 := reactions[len(reactions)/2]
		p99 := reactions[min(len(reactions)-1, len(reactions)*99/100)]
		b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(reactions[len(reactions)-1].Microseconds())/1000, "max-ms")
		b.Logf("%d manual rollbacks: p50 %s, p99 %s, max %s", n, p50, p99, reactions[len(reactions)-1])
	}
}

// timeRollback writes the rollback annotation and waits for the
// VirtualService's watch event that carries canary weight 0.
func timeRollback(tb testing.TB, a *harness.App, reason string) time.Duration {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	vsc := a.Dyn().Resource(controller.VirtualServiceGVR()).Namespace(a.NS())
	cur := a.VS()
	w, err := vsc.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + a.Name(), ResourceVersion: cur.GetResourceVersion()})
	harness.Must(tb, err)
	defer w.Stop()
	start := time.Now()
	a.Annotate(annotations.Rollback, harness.Ptr(reason))
	for ev := range w.ResultChan() {
		if ev.Type != watch.Modified {
			continue
		}
		u, ok := ev.Object.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		m, err := virtualservice.Find(u.Object, virtualservice.Target{StableSubset: "stable", CanarySubset: "canary", Namespace: a.NS()})
		if err == nil && m.CanaryWeight == 0 {
			return time.Since(start)
		}
	}
	tb.Fatalf("no VirtualService event with canary weight 0 within a minute")
	return 0
}

// promotionPolicy walks a release through short stages so the benchmark
// takes about a minute; the figure (failed requests) comes from the traffic
// shifts, not from the analysis, so minRequests stays at the default (50)
// and the 1% stage simply lasts until it has seen 50 canary requests.
const promotionPolicy = `
policies:
- name: default
  interval: 2s
  checks:
  - {metric: error-rate, max: "1%"}
  stages:
  - {weight: 1, duration: 5s}
  - {weight: 10, duration: 5s}
  - {weight: 50, duration: 5s}
  - {weight: 100, duration: 5s}
`

// BenchmarkPromotionFailedRequests: failed requests caused by traffic
// shifting during a full release of a healthy canary, at 200 requests per
// second, from the first stage through promotion to the canary at zero.
func BenchmarkPromotionFailedRequests(b *testing.B) {
	for i := 0; i < b.N; i++ {
		a := suite.NewApp(b, fmt.Sprintf("promote-%d", i), 10, nil)
		sim := a.Mesh(200)
		a.RunController(harness.ParsePolicies(b, promotionPolicy), suite.Env().PrometheusURL)
		before := sim.TruthByService(a.NS(), a.Name())
		start := time.Now()
		a.Release("payment:v2", nil)
		a.WaitPhase("Succeeded", 3*time.Minute)
		a.WaitFor("the canary at zero", time.Minute, func() (bool, string) { return *a.CanaryDep().Spec.Replicas == 0, "" })
		after := sim.TruthByService(a.NS(), a.Name())
		b.ReportMetric(float64(after.Failed-before.Failed), "failed-requests")
		b.ReportMetric(float64(after.Sent-before.Sent), "requests")
		b.Logf("full promotion in %s: %d requests, %d failed (%d no healthy upstream)",
			time.Since(start).Round(time.Second), after.Sent-before.Sent, after.Failed-before.Failed, after.UH-before.UH)
	}
}

// waitingPolicy keeps the first stage waiting for evidence forever: one
// request a second, a tenth of it to the canary, against minRequests 500.
const waitingPolicy = `
policies:
- name: default
  interval: 2s
  minRequests: 500
  stages:
  - {weight: 10, duration: 2s}
  - {weight: 100, duration: 2s}
`

// BenchmarkReconcilesWhileWaitingForEvidence counts the reconciles of one
// rollout whose stage is past its duration and waits for evidence at low
// traffic, over BENCH_WAIT (default 60s) with a 2s interval, and reports
// them per interval: a busy loop would show thousands per second.
func BenchmarkReconcilesWhileWaitingForEvidence(b *testing.B) {
	wait := time.Minute
	if v, err := time.ParseDuration(os.Getenv("BENCH_WAIT")); err == nil && v > 0 {
		wait = v
	}
	for i := 0; i < b.N; i++ {
		a := suite.NewApp(b, fmt.Sprintf("waiting-%d", i), 2, nil)
		a.Mesh(1)
		rc := a.RunController(harness.ParsePolicies(b, waitingPolicy), suite.Env().PrometheusURL)
		a.Release("payment:v2", nil)
		a.WaitCanaryWeight(10, time.Minute)
		before, start := reconciles(b, rc), time.Now()
		a.WaitFor("the measured wait", wait+10*time.Second, func() (bool, string) { return time.Since(start) >= wait, "" })
		n := reconciles(b, rc) - before
		if a.Phase() != "Progressing" || a.View().State.Stage != 0 {
			b.Fatalf("the stage did not keep waiting: phase %s", a.Phase())
		}
		perInterval := float64(n) / (time.Since(start).Seconds() / 2)
		b.ReportMetric(float64(n), "reconciles")
		b.ReportMetric(perInterval, "reconciles/interval")
		b.Logf("%d reconciles in %s waiting for evidence (interval 2s): %.1f per interval, %.0f per hour at a 10s interval", n, time.Since(start).Round(time.Second), perInterval, perInterval*360)
	}
}

func reconciles(tb testing.TB, rc *harness.Controller) uint64 {
	tb.Helper()
	m := &dto.Metric{}
	harness.Must(tb, rc.Metrics.ReconcileDuration.Write(m))
	return m.GetHistogram().GetSampleCount()
}
