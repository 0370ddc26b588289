package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/stages"
	"github.com/meshcanary/meshcanary/test/harness"
)

// releaseToFirstStage starts a controller with hour-long stages, so the
// release stays at its first stage (10%) for as long as a test acts on it,
// releases image and waits until the canary carries that 10%.
func releaseToFirstStage(t *testing.T, a *harness.App, image string) *weightLog {
	t.Helper()
	a.RunController(harness.ParsePolicies(t, strings.ReplaceAll(fastPolicies, "duration: 4s", "duration: 1h")), suite.Env().PrometheusURL)
	a.WaitPhase("Idle", 30*time.Second)
	log := recordWeights(t, a)
	a.Release(image, nil)
	a.WaitCanaryWeight(10, time.Minute)
	return log
}

func (l *weightLog) sawAfter(first, then int) bool {
	seq := l.sequence()
	for i, w := range seq {
		if w == first {
			for _, x := range seq[i+1:] {
				if x == then {
					return true
				}
			}
		}
	}
	return false
}

func checkEnded(t *testing.T, a *harness.App, result stages.Result, by string) {
	t.Helper()
	a.WaitFor("the canary scaled to zero", 30*time.Second, func() (bool, string) {
		r := *a.CanaryDep().Spec.Replicas
		return r == 0, fmt.Sprint(r)
	})
	st := a.View().State
	if st.Result != result || st.DecidedBy != by {
		t.Errorf("release ended %s decided by %s, want %s by %s (%s)", st.Result, st.DecidedBy, result, by, st.Message)
	}
	if s, c := a.Weights(); s != 100 || c != 0 {
		t.Errorf("weights %d/%d after the release ended", s, c)
	}
}

func TestKubectlRolloutUndoOfStableDuringAReleaseAbortsIt(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "undo-mid", 2, nil)
	// A plain deploy of both first (the canary follows so that no release
	// is wanted), so stable has a revision to go back to.
	a.Kubectl("set", "image", "deployment/undo-mid", "deployment/undo-mid-canary", "app=payment:v1b")
	a.Kubectl("rollout", "status", "deployment/undo-mid", "--timeout=60s")
	log := releaseToFirstStage(t, a, "payment:v2")

	a.Kubectl("rollout", "undo", "deployment/undo-mid")
	a.WaitPhase("RolledBack", 30*time.Second)
	checkEnded(t, a, stages.ResultAborted, stages.DecidedByStableChanged)
	a.WaitEvent(stages.ReasonStableChanged, "does not write it back", 10*time.Second)
	if img := a.StableDep().Spec.Template.Spec.Containers[0].Image; img != "payment:v1" {
		t.Errorf("stable runs %s: the person's undo was written back", img)
	}
	if got := fmt.Sprint(log.sequence()); got != "[0 10 0]" {
		t.Errorf("weights %s, want [0 10 0]", got)
	}
}

func TestKubectlRolloutUndoOfStableAfterAPromotionIsRecordedAsReverted(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "undo-after", 2, nil)
	a.Mesh(100)
	a.RunController(harness.ParsePolicies(t, fastPolicies), suite.Env().PrometheusURL)
	a.Release("payment:v2", nil)
	a.WaitPhase("Succeeded", 3*time.Minute)
	a.WaitFor("the canary scaled to zero", 30*time.Second, func() (bool, string) { return *a.CanaryDep().Spec.Replicas == 0, "" })
	before := len(a.Events())

	a.Kubectl("rollout", "undo", "deployment/undo-after")
	a.WaitFor("a reverted entry in the history", 30*time.Second, func() (bool, string) {
		h := a.View().History
		return len(h) == 2 && h[1].Result == string(stages.ResultReverted), fmt.Sprint(h)
	})
	a.WaitFor("the summary rewritten after the undo rewound it", 10*time.Second, func() (bool, string) {
		ann := a.StableDep().Annotations
		_, stale := ann[annotations.State]
		return ann[annotations.Phase] == "Succeeded" && !stale, ann[annotations.Phase]
	})
	if h := a.View().History; h[0].Result != string(stages.ResultPromoted) {
		t.Errorf("the promotion was lost from the history: %+v", h)
	}
	for _, e := range a.Events()[before:] {
		if e.Reason == stages.ReasonRolledBack || e.Reason == stages.ReasonRolloutStarted {
			t.Errorf("after a person's undo: %s %s", e.Reason, e.Message)
		}
	}
	if *a.CanaryDep().Spec.Replicas != 0 || a.Phase() != "Succeeded" {
		t.Errorf("canary %d replicas, phase %s", *a.CanaryDep().Spec.Replicas, a.Phase())
	}
}

func TestKubectlRolloutUndoOfTheCanaryEndsTheRelease(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "undo-canary", 2, nil)
	releaseToFirstStage(t, a, "payment:v2")
	a.Kubectl("rollout", "undo", "deployment/undo-canary-canary")
	a.WaitPhase("RolledBack", 30*time.Second)
	checkEnded(t, a, stages.ResultAborted, stages.DecidedByCanaryReverted)
}

func TestWeightsAPersonWritesAreRestoredUnlessTheyMoveAllTrafficToStable(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "hand-weights", 2, nil)
	releaseToFirstStage(t, a, "payment:v2")
	setWeights := func(stable, canary int) {
		a.Kubectl("patch", "virtualservice", "hand-weights", "--type=json", "-p",
			fmt.Sprintf(`[{"op":"replace","path":"/spec/http/1/route/0/weight","value":%d},{"op":"replace","path":"/spec/http/1/route/1/weight","value":%d}]`, stable, canary))
	}
	setWeights(70, 30)
	a.WaitEvent(stages.ReasonWeightsRestored, "restored 10%", 20*time.Second)
	a.WaitCanaryWeight(10, 10*time.Second)
	setWeights(100, 0)
	a.WaitPhase("RolledBack", 20*time.Second)
	checkEnded(t, a, stages.ResultManualRollback, stages.DecidedByVirtualServiceEdit)
}

func TestRollbackIsActedOnWhileTheConfigurationIsInvalid(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "invalid-rollback", 2, nil)
	releaseToFirstStage(t, a, "payment:v2")
	a.Kubectl("annotate", "deployment/invalid-rollback", annotations.StageDuration+"=soon", "--overwrite")
	a.WaitPhase("Invalid", 20*time.Second)
	a.Kubectl("annotate", "deployment/invalid-rollback", annotations.Rollback+"=bad build", "--overwrite")
	a.WaitCanaryWeight(0, 10*time.Second)
	a.Kubectl("annotate", "deployment/invalid-rollback", annotations.StageDuration+"-")
	a.WaitPhase("RolledBack", 20*time.Second)
	checkEnded(t, a, stages.ResultManualRollback, stages.DecidedByAnnotation)
}

func TestRetryReleasesARolledBackRevisionAgainFromTheFirstStage(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "retry", 2, nil)
	log := releaseToFirstStage(t, a, "payment:v2")
	a.Kubectl("annotate", "deployment/retry", annotations.Rollback+"=flaky dependency", "--overwrite")
	a.WaitPhase("RolledBack", 20*time.Second)
	a.WaitFor("the canary scaled to zero", 30*time.Second, func() (bool, string) { return *a.CanaryDep().Spec.Replicas == 0, "" })
	a.Kubectl("annotate", "deployment/retry", annotations.Retry+"=true", "--overwrite")
	a.WaitEvent(stages.ReasonRetried, "started again", 20*time.Second)
	a.WaitCanaryWeight(10, time.Minute)
	if st := a.View().State; st.Phase != stages.Progressing || st.Stage != 0 {
		t.Errorf("state %+v", st)
	}
	if !log.sawAfter(0, 10) {
		t.Errorf("weights %v", log.sequence())
	}
}

func TestAPlanEditMidReleaseAppliesToTheNextRelease(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "plan-edit", 2, nil)
	releaseToFirstStage(t, a, "payment:v2")
	a.Kubectl("annotate", "deployment/plan-edit", annotations.Stages+"=100", "--overwrite")
	a.WaitEvent(stages.ReasonPlanChanged, "applies to the next release", 20*time.Second)
	if _, c := a.Weights(); c != 10 || a.Phase() != "Progressing" || a.StableDep().Annotations[annotations.Stage] != "1/3" {
		t.Errorf("canary %d%%, phase %s, stage %s", c, a.Phase(), a.StableDep().Annotations[annotations.Stage])
	}
}

func TestALostCanaryReleaseSendsTrafficToStableFirstAndStartsOver(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "lost-state", 2, nil)
	log := releaseToFirstStage(t, a, "payment:v2")
	a.Kubectl("delete", "canaryrelease", "lost-state")
	a.WaitEvent(stages.ReasonStateLost, "traffic returns to stable", 20*time.Second)
	a.WaitCanaryWeight(10, time.Minute)
	if !log.sawAfter(10, 0) || !log.sawAfter(0, 10) {
		t.Errorf("weights %v: traffic did not return to stable before the release started over", log.sequence())
	}
}

func TestANonsensicalStatusNeverCrashesTheController(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "bad-status", 2, nil)
	log := releaseToFirstStage(t, a, "payment:v2")
	a.Kubectl("patch", "canaryrelease", "bad-status", "--subresource=status", "--type=merge",
		"-p", `{"status":{"state":{"stage":-1}}}`)
	a.WaitEvent(stages.ReasonStateLost, "stage -1", 20*time.Second)
	a.WaitFor("the release started over at its first stage", time.Minute, func() (bool, string) {
		return log.sawAfter(10, 0) && log.sawAfter(0, 10), fmt.Sprint(log.sequence())
	})
	if st := a.View().State; st.Stage != 0 || st.Phase != stages.Progressing {
		t.Errorf("state %+v", st)
	}
}

func TestARollbackNeverWaitsForAHangingPrometheus(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "hung-prom", 2, nil)
	proxy := suite.NewPromProxy(t)
	proxy.SetHanging(true)
	a.RunController(harness.ParsePolicies(t, strings.ReplaceAll(fastPolicies, "duration: 4s", "duration: 1h")), proxy.URL())
	a.Release("payment:v2", nil)
	a.WaitCanaryWeight(10, time.Minute)
	a.WaitFor("an analysis query hanging in Prometheus", 30*time.Second, func() (bool, string) {
		return proxy.Hung() > 0, fmt.Sprint(proxy.Hung())
	})
	a.Kubectl("annotate", "deployment/hung-prom", annotations.Rollback+"=prometheus is stuck", "--overwrite")
	// Well inside the controller's 30s analysis timeout: the rollback did
	// not queue behind the hung query.
	a.WaitCanaryWeight(0, 10*time.Second)
	if proxy.Hung() == 0 {
		t.Errorf("the hung query ended before the rollback: the test did not test anything")
	}
	a.WaitPhase("RolledBack", 10*time.Second)
}

// promoteWithStablePaused releases v2 to its first stage, pauses stable's
// rollout and promotes: the controller gives stable the release's template,
// which the paused rollout never finishes, so the release stays in
// Promoting for as long as the test needs.
func promoteWithStablePaused(t *testing.T, a *harness.App) {
	t.Helper()
	releaseToFirstStage(t, a, "payment:v2")
	a.Kubectl("rollout", "pause", "deployment/"+a.Name())
	a.Kubectl("annotate", "deployment/"+a.Name(), annotations.Promote+"=true", "--overwrite")
	a.WaitFor("stable given the release's template", 30*time.Second, func() (bool, string) {
		st := a.View().State
		return st.Phase == stages.Promoting && st.StableUpdated, string(st.Phase)
	})
}

func TestAChangeOfStableDuringPromotionStopsIt(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "promo-stop", 2, nil)
	promoteWithStablePaused(t, a)
	a.Kubectl("set", "image", "deployment/promo-stop", "app=payment:v1")
	a.WaitPhase("RolledBack", 30*time.Second)
	a.Kubectl("rollout", "resume", "deployment/promo-stop")
	checkEnded(t, a, stages.ResultAborted, stages.DecidedByStableChanged)
	if img := a.StableDep().Spec.Template.Spec.Containers[0].Image; img != "payment:v1" {
		t.Errorf("stable runs %s: the person's change was written back", img)
	}
}

func TestAnEnabledValueOtherThanTrueOrFalseIsReportedNotIgnored(t *testing.T) {
	t.Parallel()
	a := suite.NewAppWith(t, "enabled-yes", 2, harness.AppOptions{NotOptedIn: true, Annotations: map[string]string{annotations.Enabled: "yes"}})
	a.RunController(harness.ParsePolicies(t, fastPolicies), suite.Env().PrometheusURL)
	a.WaitPhase("Invalid", 30*time.Second)
	a.WaitEvent(stages.ReasonInvalidConfiguration, annotations.Enabled, 10*time.Second)
	if _, c := a.Weights(); c != 0 {
		t.Errorf("canary weight %d", c)
	}
}

func TestARollbackDuringPromotionPutsStableBack(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "promo-rollback", 2, nil)
	promoteWithStablePaused(t, a)
	a.Kubectl("annotate", "deployment/promo-rollback", annotations.Rollback+"=v2 breaks checkout", "--overwrite")
	a.WaitPhase("RolledBack", 30*time.Second)
	a.WaitFor("stable's template put back", 30*time.Second, func() (bool, string) {
		img := a.StableDep().Spec.Template.Spec.Containers[0].Image
		return img == "payment:v1", img
	})
	a.Kubectl("rollout", "resume", "deployment/promo-rollback")
	checkEnded(t, a, stages.ResultManualRollback, stages.DecidedByAnnotation)
	if st := a.View().State; st.RestoreStable {
		t.Errorf("the restore is still pending: %+v", st)
	}
}
