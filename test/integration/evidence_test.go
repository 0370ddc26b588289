package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/stages"
	"github.com/meshcanary/meshcanary/test/harness"
)

// waitMessage waits for the CanaryRelease's message (its last verdict) to
// say what: the Deployment's copy and the Events change only when the
// verdict does, and the first verdict of a stage may come before
// Prometheus has scraped its traffic.
func waitMessage(a *harness.App, what string) {
	a.WaitFor("the release's message to say "+what, 30*time.Second, func() (bool, string) {
		msg := a.CanaryRelease().Status.Message
		return strings.Contains(msg, what), msg
	})
}

// holdsAtFirstStage checks that a release stays at its first stage, at 10%,
// for several stage durations.
func holdsAtFirstStage(t *testing.T, a *harness.App, why string) {
	t.Helper()
	started := time.Now()
	a.WaitFor("three stage durations to pass", time.Minute, func() (bool, string) { return time.Since(started) > 12*time.Second, "" })
	d := a.StableDep()
	if p, s := d.Annotations[annotations.Phase], d.Annotations[annotations.Stage]; p != "Progressing" || s != "1/3" {
		t.Fatalf("%s: phase %s stage %s (%s), want Progressing at 1/3", why, p, s, d.Annotations[annotations.Message])
	}
	if _, c := a.Weights(); c != 10 {
		t.Fatalf("%s: canary weight %d, want 10", why, c)
	}
}

func TestAMissingStableSeriesHoldsTheReleaseAsInconclusive(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "vault", 10, nil)
	a.Mesh(200)
	proxy := suite.NewPromProxy(t)
	proxy.DropWorkload(a.Name()) // stable's telemetry is missing
	a.RunController(harness.ParsePolicies(t, fastPolicies), proxy.URL())
	// A canary 20 times slower than stable: only the comparison with
	// stable can catch it, and stable's series are missing.
	a.Release("vault:v2-slow", map[string]string{"sandbox.meshcanary.io/latency": "1900ms"})
	a.WaitCanaryWeight(10, time.Minute)
	waitMessage(a, "stable has no requests while the canary has 10%")
	holdsAtFirstStage(t, a, "stable's series missing")

	proxy.DropWorkload("")
	a.WaitPhase("RolledBack", time.Minute)
	if msg := a.StableDep().Annotations[annotations.Message]; !strings.Contains(msg, "latency-p95 canary") {
		t.Errorf("rolled back without the latency comparison in the message: %q", msg)
	}
}

func TestAPartialPrometheusAnswerHoldsTheReleaseAsInconclusive(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "clearing", 10, nil)
	a.Mesh(200)
	proxy := suite.NewPromProxy(t)
	proxy.SetWarning("partial response: store 127.0.0.1:10901 unavailable")
	a.RunController(harness.ParsePolicies(t, fastPolicies), proxy.URL())
	a.Release("clearing:v2", nil)
	a.WaitCanaryWeight(10, time.Minute)
	waitMessage(a, "partial response: store 127.0.0.1:10901 unavailable")
	holdsAtFirstStage(t, a, "answers partial")

	proxy.SetWarning("")
	a.WaitPhase("Succeeded", 2*time.Minute)
}

func TestALowTrafficReleaseWaitsForEvidenceAndSaysSo(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "reports", 10, nil)
	a.Mesh(2) // the canary at 10% sees one request every five seconds
	a.RunController(harness.ParsePolicies(t, fastPolicies), suite.Env().PrometheusURL)
	a.Release("reports:v2", nil)
	a.WaitCanaryWeight(10, time.Minute)
	ev := a.WaitEvent(stages.ReasonLowTraffic, "minRequests 10", 30*time.Second)
	if !strings.Contains(ev.Message, "stage 1 (10%) expects") {
		t.Errorf("LowTraffic event does not say what the first stage can expect: %q", ev.Message)
	}
	a.WaitEvent(stages.ReasonAnalysisInconclusive, "minRequests", 30*time.Second)
	holdsAtFirstStage(t, a, "low traffic")
	if f := a.View().Analysis; f == nil || len(f.Forecast) == 0 || f.Forecast[0].NeedsSeconds <= 4 {
		t.Errorf("status has no forecast saying the stage needs more than its 4s: %+v", f)
	}
}

func TestStrongEvidenceRollsBackALowTrafficCanaryEarly(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "invoices", 10, nil)
	a.Mesh(10) // the canary at 10% sees one request a second
	a.RunController(harness.ParsePolicies(t, fastPolicies), suite.Env().PrometheusURL)
	a.Release("invoices:v2", map[string]string{"sandbox.meshcanary.io/error-rate": "0.5"})
	a.WaitPhase("RolledBack", time.Minute)
	if msg := a.StableDep().Annotations[annotations.Message]; !strings.Contains(msg, "error-rate canary") {
		t.Errorf("message %q", msg)
	}
}
