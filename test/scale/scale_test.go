package scale

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/test/harness"
)

var suite = harness.NewSuite()

func TestMain(m *testing.M) { suite.Main(m) }

// Every app releases with this policy: 20 s stages at a 10 s interval, so
// that each stage is judged twice and ends on an analysis due at its end.
const (
	stageDuration = 20 * time.Second
	appRPS        = 20
	scalePolicy   = `
policies:
- name: default
  interval: 10s
  minRequests: 20
  stages:
  - {weight: 20, duration: 20s}
  - {weight: 50, duration: 20s}
  - {weight: 100, duration: 20s}
`
)

func stageWeights() []int { return []int{20, 50, 100} }

// sizes is SCALE_N, a comma-separated list of app counts (default 500,1000).
func sizes(tb testing.TB) []int {
	tb.Helper()
	raw := os.Getenv("SCALE_N")
	if raw == "" {
		raw = "500,1000"
	}
	var out []int
	for _, f := range strings.Split(raw, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			tb.Fatalf("SCALE_N: %q: expected app counts such as 500,1000", raw)
		}
		out = append(out, n)
	}
	return out
}

// BenchmarkScale releases N apps at once, each with 20 requests per second,
// and measures the controller while they walk their stages and once they
// are at rest.
func BenchmarkScale(b *testing.B) {
	bin := buildBinary(b)
	for _, n := range sizes(b) {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				report(b, n, run(b, bin, n, i))
			}
		})
	}
}

// figures is what one run measured.
type figures struct {
	took                    time.Duration
	lags                    []time.Duration
	writesPerRolloutStage   float64
	cpuPerRollout, cpuShare float64
	rssMB                   float64
	queriesPer10s           float64
	apiPerRelease           float64
	analysesPerRelease      float64
	idleAPI, idleQueries    float64
	emitted, inAPI, dropped float64
	succeeded               int
	// procs is each process's share of a core while the apps released.
	procs string
	// inside is what the controller saw of itself: its own stage lag,
	// queue wait and work time, and analysis batches.
	inside []string
}

func run(b *testing.B, bin string, n, i int) figures {
	apps := suite.NewApps(b, fmt.Sprintf("s%d-%d", n, i), n, 100, 1)
	suite.MeshApps(b, apps, appRPS, int64(i+1), 30*time.Minute)
	proxy := suite.NewPromProxy(b)
	obs := observe(b)
	ctrl := startController(b, bin, scalePolicy, proxy.URL())
	var f figures
	f.idleAPI, f.idleQueries = atRest(b, ctrl, proxy, n)
	api0, q0, cpu0 := ctrl.metric(b, "meshcanary_kube_api_requests_total", map[string]string{"client": "traffic"}), proxy.Requests(), ctrl.cpuSeconds(b)
	start, procs0 := time.Now(), procCPU()
	obs.count(true)
	releaseAll(b, apps)
	f.succeeded = waitEnded(b, apps)
	f.took = time.Since(start)
	f.procs = cpuShares(procs0, procCPU(), f.took.Seconds())
	obs.count(false)
	f.lags = obs.stageLags(stageWeights(), stageDuration)
	f.writesPerRolloutStage = float64(obs.writes()) / float64(n*len(stageWeights()))
	cpu := ctrl.cpuSeconds(b) - cpu0
	f.cpuPerRollout, f.cpuShare, f.rssMB = cpu/float64(n), cpu/f.took.Seconds(), ctrl.peakRSS(b)
	f.queriesPer10s = float64(proxy.Requests()-q0) / (f.took.Seconds() / 10)
	f.apiPerRelease = (ctrl.metric(b, "meshcanary_kube_api_requests_total", map[string]string{"client": "traffic"}) - api0) / float64(n)
	f.emitted, f.dropped = ctrl.metric(b, "meshcanary_events_emitted_total", nil), ctrl.metric(b, "meshcanary_events_dropped_total", nil)
	f.inAPI = eventsInAPI(b, apps)
	f.analysesPerRelease = ctrl.metric(b, "meshcanary_analysis_verdicts_total", nil) / float64(n)
	for _, h := range []string{"meshcanary_stage_lag_seconds", "workqueue_queue_duration_seconds", "workqueue_work_duration_seconds",
		"meshcanary_analysis_batch_size", "meshcanary_prometheus_query_duration_seconds"} {
		f.inside = append(f.inside, ctrl.histogram(b, h))
	}
	return f
}

// atRest lets the controller take in the N opted-in Deployments, then
// counts its API requests and Prometheus queries over 30 s of nothing
// happening.
func atRest(b *testing.B, ctrl *controllerProcess, proxy *harness.PromProxy, n int) (api, queries float64) {
	b.Helper()
	harness.WaitFor(b, "a CanaryRelease for every app", 5*time.Minute, func() (bool, string) {
		got := ctrl.metric(b, "meshcanary_rollout_phase", map[string]string{"phase": "Idle"})
		return got >= float64(n), fmt.Sprintf("%v of %d idle", got, n)
	})
	api0, q0 := ctrl.metric(b, "meshcanary_kube_api_requests_total", map[string]string{"client": "traffic"}), proxy.Requests()
	quiet := time.Now()
	harness.WaitFor(b, "30 s at rest", time.Minute, func() (bool, string) { return time.Since(quiet) >= 30*time.Second, "" })
	return ctrl.metric(b, "meshcanary_kube_api_requests_total", map[string]string{"client": "traffic"}) - api0, float64(proxy.Requests() - q0)
}

// releaseAll starts every app's release at once: a new image on every
// canary Deployment, 16 writes in flight.
func releaseAll(b *testing.B, apps []*harness.App) {
	b.Helper()
	kube, _ := suite.Clients(b)
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
		"containers": []map[string]any{{"name": "app", "image": "payment:v2"}}}}}})
	var wg sync.WaitGroup
	errs := make(chan error, len(apps))
	next := make(chan *harness.App)
	for range 16 {
		wg.Go(func() {
			for a := range next {
				_, err := kube.AppsV1().Deployments(a.NS()).Patch(context.Background(), a.Name()+annotations.CanarySuffix,
					types.StrategicMergePatchType, patch, metav1.PatchOptions{})
				errs <- err
			}
		})
	}
	for _, a := range apps {
		next <- a
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		harness.Must(b, err)
	}
}

// waitEnded waits until every app's release has ended and returns how
// many were promoted.
func waitEnded(b *testing.B, apps []*harness.App) int {
	b.Helper()
	kube, _ := suite.Clients(b)
	namespaces := map[string]bool{}
	for _, a := range apps {
		namespaces[a.NS()] = true
	}
	succeeded := 0
	harness.WaitFor(b, "every release to end", 30*time.Minute, func() (bool, string) {
		ended, ok := 0, 0
		for ns := range namespaces {
			list, err := kube.AppsV1().Deployments(ns).List(context.Background(), metav1.ListOptions{})
			if err != nil {
				return false, err.Error()
			}
			for _, d := range list.Items {
				switch d.Annotations[annotations.Phase] {
				case "Succeeded":
					ended, ok = ended+1, ok+1
				case "RolledBack", "Invalid":
					ended++
				}
			}
		}
		succeeded = ok
		return ended == len(apps), fmt.Sprintf("%d of %d ended", ended, len(apps))
	})
	return succeeded
}

// eventsInAPI sums the count of every Event the controller wrote about
// the apps: the correlator folds repeated Events into one with a count.
func eventsInAPI(b *testing.B, apps []*harness.App) float64 {
	b.Helper()
	kube, _ := suite.Clients(b)
	namespaces := map[string]bool{}
	for _, a := range apps {
		namespaces[a.NS()] = true
	}
	total := 0.0
	for ns := range namespaces {
		list, err := kube.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "source=meshcanary"})
		harness.Must(b, err)
		for _, e := range list.Items {
			total += float64(max(e.Count, 1))
		}
	}
	return total
}
