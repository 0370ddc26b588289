package scale

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// quantile is the ⌈len·q⌉-th smallest of sorted, 0 when empty.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*q+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// report publishes one run's figures as benchmark metrics and as a
// markdown row (appended to SCALE_OUT when set) for docs/performance.md.
func report(b *testing.B, n int, f figures) {
	if f.succeeded != n {
		b.Errorf("%d of %d healthy releases were promoted", f.succeeded, n)
	}
	p50, p99, worst := quantile(f.lags, 0.5), quantile(f.lags, 0.99), quantile(f.lags, 1)
	b.ReportMetric(p50.Seconds(), "stage-lag-p50-s")
	b.ReportMetric(p99.Seconds(), "stage-lag-p99-s")
	b.ReportMetric(f.writesPerRolloutStage, "deployment-writes/rollout/stage")
	b.ReportMetric(f.cpuPerRollout*1000, "cpu-ms/rollout")
	b.ReportMetric(f.rssMB, "peak-rss-MB")
	b.ReportMetric(f.emitted-f.inAPI-f.dropped, "events-unaccounted")
	row := fmt.Sprintf("| %d | %d/%d | %.2f / %.2f / %.2f s (%d stage ends) | %.2f | %.0f%% of a core, %.0f ms per rollout / %.0f MB | %.1f (%.1f analyses per release) | %.1f | %.0f emitted, %.0f in the API, %.0f dropped | %.0f / %.0f | %s |\n",
		n, f.succeeded, n, p50.Seconds(), p99.Seconds(), worst.Seconds(), len(f.lags), f.writesPerRolloutStage,
		100*f.cpuShare, 1000*f.cpuPerRollout, f.rssMB, f.queriesPer10s, f.analysesPerRelease, f.apiPerRelease,
		f.emitted, f.inAPI, f.dropped, f.idleAPI, f.idleQueries, f.took.Round(time.Second))
	b.Logf("CPU while releasing, share of one core: %s", f.procs)
	for _, line := range f.inside {
		b.Logf("controller: %s", line)
	}
	b.Logf("N | promoted | stage lag p50 / p99 / max | Deployment writes per rollout per stage | controller CPU / peak RSS | Prometheus queries per 10 s | API requests per release | Events | idle API requests / queries in 30 s | all released in\n%s", row)
	if path := os.Getenv("SCALE_OUT"); path != "" {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			_, _ = f.WriteString(row)
			_ = f.Close()
		}
	}
}
