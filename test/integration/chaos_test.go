package integration

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/meshcanary/meshcanary/pkg/stages"
	"github.com/meshcanary/meshcanary/test/harness"
)

// chaosApp is one of the releases the controllers are killed under.
type chaosApp struct {
	app  *harness.App
	log  *weightLog
	ctrl *harness.Controller
	bad  bool
}

// TestKillingTheControllerAtRandomMomentsNeverBreaksARelease kills every
// controller abruptly, as SIGKILL would, eight times at seeded random
// moments while six releases run (three healthy, three with 10% errors),
// and restarts it at once. Healthy releases must still be promoted, bad
// ones rolled back without reaching 100%, and no stage may be skipped or
// shortened.
func TestKillingTheControllerAtRandomMomentsNeverBreaksARelease(t *testing.T) {
	t.Parallel()
	pol := harness.ParsePolicies(t, strings.ReplaceAll(fastPolicies, "duration: 4s", "duration: 6s"))
	rng := rand.New(rand.NewPCG(7, 11))
	var apps []*chaosApp
	for i := range 6 {
		c := &chaosApp{bad: i%2 == 1}
		c.app = suite.NewApp(t, fmt.Sprintf("chaos-%d", i), 2, nil)
		c.app.Mesh(80)
		c.ctrl = c.app.RunController(pol, suite.Env().PrometheusURL)
		c.log = recordWeights(t, c.app)
		apps = append(apps, c)
	}
	for _, c := range apps {
		behaviour := map[string]string(nil)
		if c.bad {
			behaviour = map[string]string{"sandbox.meshcanary.io/error-rate": "0.1"}
		}
		c.app.Release("payment:v2", behaviour)
	}
	for kill := range 8 {
		wait := time.Duration(500+rng.IntN(2500)) * time.Millisecond
		at := time.Now()
		harness.WaitFor(t, fmt.Sprintf("kill %d in %s", kill+1, wait), wait+5*time.Second, func() (bool, string) { return time.Since(at) >= wait, "" })
		for _, c := range apps {
			c.ctrl.Stop()
			c.ctrl = c.app.RunController(pol, suite.Env().PrometheusURL)
		}
	}
	for _, c := range apps {
		c.checkEnded(t)
	}
}

func (c *chaosApp) checkEnded(t *testing.T) {
	t.Helper()
	want := "Succeeded"
	if c.bad {
		want = "RolledBack"
	}
	c.app.WaitPhase(want, 3*time.Minute)
	c.log.caughtUp(c.app, 0)
	seq := c.log.sequence()
	allowed := map[int]int{0: 10, 10: 50, 50: 100, 100: 0}
	for i := 1; i < len(seq); i++ {
		if seq[i] != 0 && seq[i] != allowed[seq[i-1]] {
			t.Errorf("%s: weights %v: a stage was skipped", c.app.Name(), seq)
		}
		if c.bad && seq[i] == 100 {
			t.Errorf("%s: a release with 10%% errors reached 100%%: %v", c.app.Name(), seq)
		}
	}
	entries := c.log.get()
	for i := 0; i+1 < len(entries); i++ {
		if entries[i].canary == 0 || entries[i+1].canary == 0 {
			continue
		}
		// The log's watch and the controller's see a change up to tens of
		// milliseconds apart; a shortened stage would be short by far more
		// (the time the controller was down).
		if held := entries[i+1].at.Sub(entries[i].at); held < 6*time.Second-150*time.Millisecond {
			t.Errorf("%s: stage at %d%% held %s, want at least its 6s", c.app.Name(), entries[i].canary, held)
		}
	}
	st := c.app.View().State
	if c.bad && st.DecidedBy != stages.DecidedByAnalysis {
		t.Errorf("%s: rolled back by %s (%s), want analysis", c.app.Name(), st.DecidedBy, st.Message)
	}
}
