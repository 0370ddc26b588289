package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshcanary/meshcanary/pkg/apis/meshcanary/v1alpha1"
	"github.com/meshcanary/meshcanary/pkg/release"
	"github.com/meshcanary/meshcanary/pkg/stages"
	"github.com/meshcanary/meshcanary/test/harness"
)

// recordedStates lists the namespace's CanaryReleases in one request, so
// that the states are one consistent snapshot of what the controller had
// recorded, by Deployment name.
func recordedStates(t *testing.T, a *harness.App) map[string]stages.State {
	t.Helper()
	list, err := a.Dyn().Resource(v1alpha1.GVR()).Namespace(a.NS()).List(context.Background(), metav1.ListOptions{})
	harness.Must(t, err)
	out := map[string]stages.State{}
	for i := range list.Items {
		cr, err := release.FromUnstructured(&list.Items[i])
		harness.Must(t, err)
		var st stages.State
		harness.Must(t, release.DecodeJSON(cr.Status.State, &st))
		out[cr.Name] = st
	}
	return out
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	harness.Must(t, g.Write(&m))
	return m.GetGauge().GetValue()
}

// One shared change releases four services at once, and the controller
// has room for two: at no moment are more than two in flight, the other
// two wait with all their traffic on stable and say why, and every one
// ends promoted.
func TestMaxConcurrentReleasesQueuesTheRestAndReleasesThemInTurn(t *testing.T) {
	t.Parallel()
	const limit, n = 2, 4
	first := suite.NewApp(t, "slots0", 1, nil)
	apps := []*harness.App{first}
	for i := 1; i < n; i++ {
		apps = append(apps, suite.NewAppWith(t, fmt.Sprintf("slots%d", i), 1, harness.AppOptions{Namespace: first.NS()}))
	}
	suite.MeshApps(t, apps, 100, 1, 15*time.Minute)
	first.SetMaxConcurrentReleases(limit)
	ctrl := first.RunController(harness.ParsePolicies(t, fastPolicies), suite.Env().PrometheusURL)
	for _, a := range apps {
		a.WaitPhase(string(stages.Idle), time.Minute)
	}

	for _, a := range apps {
		a.Release("payment:v2", nil)
	}
	queuedSeen := map[string]string{} // name → a message it showed while queued
	most := 0
	first.WaitFor("every release promoted", 4*time.Minute, func() (bool, string) {
		states := recordedStates(t, first)
		inFlight, done := 0, 0
		var summary []string
		for name, st := range states {
			summary = append(summary, fmt.Sprintf("%s %s", name, st.Phase))
			switch {
			case stages.InFlight(st):
				inFlight++
			case stages.Queued(st):
				queuedSeen[name] = st.Message
			case st.Phase == stages.Succeeded && st.Revision != "" && !st.Finished.IsZero():
				done++
			}
		}
		if inFlight > limit {
			t.Fatalf("%d releases in flight with --max-concurrent-releases=%d: %v", inFlight, limit, summary)
		}
		if g := gaugeValue(t, ctrl.Metrics.ReleasesInFlight); g > limit {
			t.Fatalf("meshcanary_releases_in_flight is %v, over the limit of %d", g, limit)
		}
		most = max(most, inFlight)
		assertQueuedHaveNoTraffic(t, apps)
		return done == n, strings.Join(summary, ", ")
	})

	if most != limit {
		t.Errorf("at most %d releases were in flight at once; four released together should fill the %d slots", most, limit)
	}
	if len(queuedSeen) < n-limit {
		t.Fatalf("%d releases were seen queued (%v), want at least %d", len(queuedSeen), queuedSeen, n-limit)
	}
	for _, a := range apps {
		msg, ok := queuedSeen[a.Name()]
		if !ok {
			continue
		}
		if !strings.Contains(msg, "waiting for a release slot") || !strings.Contains(msg, "(--max-concurrent-releases)") {
			t.Errorf("%s was queued saying %q, which does not say why", a.Name(), msg)
		}
		a.WaitEvent(stages.ReasonQueued, "waiting for a release slot", 10*time.Second)
		a.WaitEvent(stages.ReasonPromoted, "promoted", 10*time.Second)
	}
	for _, a := range apps {
		if img := a.StableDep().Spec.Template.Spec.Containers[0].Image; img != "payment:v2" {
			t.Errorf("%s: stable runs %s, want payment:v2", a.Name(), img)
		}
	}
	first.WaitFor("the gauges back at zero", 10*time.Second, func() (bool, string) {
		f, q := gaugeValue(t, ctrl.Metrics.ReleasesInFlight), gaugeValue(t, ctrl.Metrics.ReleasesQueued)
		return f == 0 && q == 0, fmt.Sprintf("%v in flight, %v queued", f, q)
	})
}

// assertQueuedHaveNoTraffic fails when a release that is queued has
// canary traffic. The weight is read between two reads of the record: the
// record comes before the weight, so a release still queued after the
// weight was read had written none.
func assertQueuedHaveNoTraffic(t *testing.T, apps []*harness.App) {
	t.Helper()
	for _, a := range apps {
		if !stages.Queued(a.View().State) {
			continue
		}
		_, canary := a.Weights()
		if canary != 0 && stages.Queued(a.View().State) {
			t.Fatalf("%s is queued with canary weight %d%%: a queued release must leave all traffic on stable", a.Name(), canary)
		}
	}
}
