package integration

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/meshcanary/meshcanary/pkg/metrics"
	"github.com/meshcanary/meshcanary/pkg/policy"
	"github.com/meshcanary/meshcanary/test/harness"
)

// The batched query (each rollout's window pinned with @, the parts joined
// with `or`) must mean to the real Prometheus what each rollout's own
// query means: three apps with different traffic, analysed over windows
// ending at different moments, get from one query per family exactly the
// counts they get alone.
func TestABatchedAnalysisCountsWhatEachAnalysisCountsAlone(t *testing.T) {
	t.Parallel()
	var apps []*harness.App
	rates := []float64{10, 30, 60}
	for i, rps := range rates {
		a := suite.NewApp(t, fmt.Sprintf("batch%d", i), 1, nil)
		a.Mesh(rps)
		apps = append(apps, a)
	}
	pc, err := promapi.NewClient(promapi.Config{Address: suite.Env().PrometheusURL})
	harness.Must(t, err)
	var queries atomic.Int64
	an := metrics.NewAnalyzer(promv1.NewAPI(pc), metrics.Options{OnQuery: func(metrics.QueryStat) { queries.Add(1) }})
	checks := []policy.Check{{Metric: metrics.MetricErrorRate}, {Metric: metrics.MetricLatencyP95}}
	requests := func() []metrics.Request {
		now := time.Now()
		var reqs []metrics.Request
		for i, a := range apps {
			reqs = append(reqs, metrics.Request{
				Namespace: a.NS(), Stable: a.Name(), Canary: a.Name() + "-canary",
				// Ends well back (scrapes are every second, but a loaded
				// machine ingests late), each its own moment, so that the
				// data under them no longer changes between the two looks.
				Window: 20 * time.Second, At: now.Add(-time.Duration(10+i) * time.Second),
				CanaryWeight: 0, Checks: checks, MinRequests: 1,
			})
		}
		return reqs
	}
	ctx := context.Background()
	var reqs []metrics.Request
	var batched []metrics.Answer
	// Each window must be full of its app's traffic, or the apps' counts
	// differ by when their meshes started rather than by their rates.
	harness.WaitFor(t, "Prometheus to hold a full window of every app's traffic", 3*time.Minute, func() (bool, string) {
		reqs = requests()
		queries.Store(0)
		batched = an.AnalyzeAll(ctx, reqs)
		for i, b := range batched {
			if b.Err != nil || b.Result.StableRequests < rates[i]*20*0.7 {
				return false, fmt.Sprintf("app %d: %v requests, %v", i, b.Result.StableRequests, b.Err)
			}
		}
		return true, ""
	})
	if n := queries.Load(); n != 3 {
		t.Errorf("the batch sent %d queries, want one per family (3)", n)
	}
	for i, req := range reqs {
		alone, err := an.Analyze(ctx, req)
		harness.Must(t, err)
		b := batched[i].Result
		if !near(b.StableRequests, alone.StableRequests) || !near(b.Checks[1].Stable, alone.Checks[1].Stable) {
			t.Errorf("app %d: batched %v requests, p95 %v; alone %v, %v", i, b.StableRequests, b.Checks[1].Stable, alone.StableRequests, alone.Checks[1].Stable)
		}
	}
	// 60 rps against 10: a full window holds six times as many; a mix-up
	// of the parts would put the small count on the busy app.
	if r0, r2 := batched[0].Result.StableRequests, batched[2].Result.StableRequests; r2 < 3*r0 {
		t.Errorf("the 60 rps app counted %v requests against the 10 rps app's %v: the parts were mixed up", r2, r0)
	}
}

// near is equality up to the rounding of summing the same samples in
// another order, and to one late sample at a window's edge.
func near(a, b float64) bool {
	return math.Abs(a-b) <= 0.01*math.Max(math.Abs(a), math.Abs(b))+1e-12
}
