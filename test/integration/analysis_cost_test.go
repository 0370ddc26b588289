package integration

import (
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/meshcanary/meshcanary/test/harness"
)

// Each analysis is asked of Prometheus once: a finished analysis must be
// found by the reconcile it wakes, whatever the clocks do between the
// reconcile that asked and the one that takes it. Three stages of 20 s at
// a 10 s interval are judged twice each.
func TestEachAnalysisIsRunOnce(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "ledger", 1, nil)
	a.Mesh(20)
	rc := a.RunController(harness.ParsePolicies(t, `
policies:
- name: default
  interval: 10s
  minRequests: 20
  stages:
  - {weight: 20, duration: 20s}
  - {weight: 50, duration: 20s}
  - {weight: 100, duration: 20s}
`), suite.Env().PrometheusURL)
	a.Release("ledger:v2", nil)
	a.WaitPhase("Succeeded", 3*time.Minute)
	total := 0.0
	for _, v := range []string{"Pass", "Fail", "Inconclusive"} {
		var m dto.Metric
		harness.Must(t, rc.Metrics.Verdicts.WithLabelValues(a.NS(), a.Name(), v).Write(&m))
		total += m.GetCounter().GetValue()
	}
	if total < 3 || total > 9 {
		t.Errorf("%v analyses for three stages of two intervals each, want 6 (at most 9 when Prometheus lags)", total)
	}
}
