package stages

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// chaos drives the core through seeded random sequences of releases, the
// human actions people take (rollbacks, promotions, pauses, undo of either
// Deployment, edits of the route, plan edits), failed writes, restarts and
// lost state, and checks the safety invariants after every step.
type chaos struct {
	*world
	rng *rand.Rand
	log []string
	// rejected is the canary revision of the last release that was rolled
	// back or aborted; it must never get traffic again.
	rejected string
	// passedStages counts passing verdicts per stage of the release in flight.
	passed map[int]int
	manual bool
	prev   State
	// given is the state the step's decision started from: prev, unless
	// the step lost or corrupted it.
	given State
	revs  int
}

func (c *chaos) step() {
	c.prev = c.st
	op := c.rng.IntN(100)
	fail := failNone
	if c.rng.IntN(8) == 0 {
		fail = failAt(1 + c.rng.IntN(4))
	}
	verdicts := []Verdict{Pass, Pass, Pass, Pass, Inconclusive, Fail, Outage}
	v := verdicts[c.rng.IntN(len(verdicts))]
	switch {
	case op < 6:
		c.revs++
		c.release(fmt.Sprintf("v%d", c.revs+1))
		c.note("new canary revision %s", c.obs.Canary.Revision)
	case op < 8:
		c.obs.Commands.Rollback = "chaos"
		c.note("rollback command")
	case op < 10:
		c.obs.Commands.Promote, c.manual = true, true
		c.note("promote command")
	case op < 12:
		c.obs.Commands.Pause = !c.obs.Commands.Pause
		c.note("pause=%v", c.obs.Commands.Pause)
	case op < 13:
		c.obs.Canary.Revision = c.obs.Stable.Revision // kubectl rollout undo of the canary
		c.note("canary undone to stable's revision")
	case op < 14:
		c.obs.Stable.Revision = fmt.Sprintf("old%d", c.rng.IntN(3)) // kubectl rollout undo of stable
		c.note("stable undone to %s", c.obs.Stable.Revision)
	case op < 16:
		c.obs.Weight = []int{0, 0, 30, 100}[c.rng.IntN(4)]
		c.note("route edited to %d", c.obs.Weight)
	case op < 17:
		// With its record gone the core may release a rejected revision
		// again (from its first stage): that is the specified outcome.
		c.st, c.rejected = State{}, ""
		c.obs.StateLost = "unreadable"
		c.note("state lost")
	case op < 18:
		c.st.Stage, c.rejected = -1, ""
		c.note("state edited to stage -1")
	case op < 19:
		c.obs.Plan.Steps = []Step{{Weight: 100, Duration: time.Minute}}
		c.note("plan shrunk")
	case op < 20:
		c.obs.Commands.Retry = true
		c.note("retry command")
	case op < 23:
		// Other rollouts take and free release slots.
		c.obs.Slots = Slots{Limit: 1, InFlight: c.rng.IntN(2), Ahead: c.rng.IntN(2)}
		c.note("release slots %+v", c.obs.Slots)
	}
	before := c.obs
	c.given = c.st
	d := time.Duration(c.rng.IntN(15)+1) * time.Second
	dec := c.tickFailing(d, v, fail)
	c.obs.StateLost = ""
	c.note("t+%s verdict %s fail %d → phase %s stage %d weight %d (route %d) %s", d, v, fail, c.st.Phase, c.st.Stage, c.st.Weight, c.obs.Weight, c.st.Message)
	c.check(before, dec, fail)
}

func (c *chaos) note(format string, args ...any) {
	c.log = append(c.log, fmt.Sprintf(format, args...))
	if len(c.log) > 40 {
		c.log = c.log[1:]
	}
}

func (c *chaos) fatalf(format string, args ...any) {
	c.t.Helper()
	for _, l := range c.log {
		c.t.Log(l)
	}
	c.t.Fatalf(format, args...)
}

// check asserts the invariants after one step.
func (c *chaos) check(before Observation, dec Decision, fail failAt) {
	c.t.Helper()
	if dec.Consumed.Retry && dec.State.Phase.Active() && dec.State.Started.Equal(c.now) {
		c.rejected = "" // a person asked for the revision again
	}
	if c.obs.Weight < 0 || c.obs.Weight > 100 {
		c.fatalf("route weight %d: stable and canary no longer sum to 100", c.obs.Weight)
	}
	if dec.SetWeight != nil && *dec.SetWeight > 0 && fail != failPersist && fail != failWeight {
		if before.Canary.Available == 0 {
			c.fatalf("weight %d written to a canary without available pods", *dec.SetWeight)
		}
		if before.Canary.Revision == c.rejected {
			c.fatalf("weight %d written to rejected revision %s", *dec.SetWeight, c.rejected)
		}
	}
	if fail == failNone && c.obs.Weight > 0 && c.obs.Canary.Available == 0 {
		c.fatalf("route sends %d%% to a canary with no available pods", c.obs.Weight)
	}
	if fail == failPersist {
		return
	}
	st := c.st
	// A lost or corrupted record is not a release in flight: it starts
	// over, and waits for a slot like any new release.
	running := InFlight(c.given) && before.StateLost == "" && stateProblem(c.given) == ""
	if running && Queued(st) && st.Finished.Equal(c.given.Finished) {
		// Queuing the next release is fine once this one ended (the
		// watch event after its last write decides again).
		c.fatalf("a release in flight was held for a release slot")
	}
	if !running && !before.Slots.Free() && InFlight(st) {
		c.fatalf("a release started without a release slot (%+v)", before.Slots)
	}
	if Queued(st) && ((dec.SetWeight != nil && *dec.SetWeight > 0) || (dec.ScaleCanary != nil && *dec.ScaleCanary > 0)) {
		c.fatalf("a queued release moved traffic or scaled the canary")
	}
	if st.Phase == RolledBack && c.prev.Phase != RolledBack {
		c.rejected = st.Revision
	}

	if st.Revision != c.prev.Revision || st.Started != c.prev.Started {
		c.passed, c.manual = map[int]int{}, c.obs.Commands.Promote
	}
	if a := c.obs.Analysis; a != nil && a.Verdict == Pass && dec.State.Phase.Active() {
		c.passed[c.prev.Stage]++
	}
	if st.Stage > c.prev.Stage && st.Revision == c.prev.Revision && st.Started.Equal(c.prev.Started) && c.prev.Phase.Active() {
		if st.Stage != c.prev.Stage+1 {
			c.fatalf("stage skipped: %d → %d", c.prev.Stage, st.Stage)
		}
		steps := EffectivePlan(c.prev, c.obs.Plan).Steps
		if c.prev.Stage < len(steps) {
			if el := StageElapsed(c.prev, c.now); el < steps[c.prev.Stage].Duration {
				c.fatalf("stage %d shortened: advanced after %s of %s", c.prev.Stage+1, el, steps[c.prev.Stage].Duration)
			}
		}
	}
	if st.Phase == Succeeded && c.prev.Phase != Succeeded && st.Result == ResultPromoted && !c.manual {
		for i := range st.Steps {
			if c.passed[i] == 0 {
				c.fatalf("promoted without a passing verdict in stage %d (%v)", i+1, c.passed)
			}
		}
	}
}

func TestRandomizedReleasesKeepTheInvariants(t *testing.T) {
	ended := map[Result]int{}
	for seed := uint64(1); seed <= 200; seed++ {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			c := &chaos{world: newWorld(t), rng: rand.New(rand.NewPCG(seed, 0x6d657368)), passed: map[int]int{}}
			for i := 0; i < 400; i++ {
				c.step()
				if c.st.Finished != c.prev.Finished && !c.st.Finished.IsZero() {
					ended[c.st.Result]++
				}
			}
		})
	}
	// The sequences must reach the outcomes whose invariants they check.
	for _, r := range []Result{ResultPromoted, ResultManualPromoted, ResultRolledBack, ResultManualRollback, ResultAborted} {
		if ended[r] < 10 {
			t.Errorf("only %d releases ended %s across the seeds (%v)", ended[r], r, ended)
		}
	}
}
