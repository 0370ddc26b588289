package metrics

import (
	"fmt"
	"math"
	"strings"

	"github.com/meshcanary/meshcanary/pkg/policy"
)

// Evaluate judges the counts of one stage so far (or of one window, for a
// caller that passes windows). It is pure so that every rule can be tested
// without Prometheus; see the package documentation for the rules.
func Evaluate(s Samples, checks []policy.Check, minRequests int) Result {
	res := Result{
		CanaryRequests: s.Canary.Requests,
		StableRequests: s.Stable.Requests,
		Window:         s.Window,
	}
	e := evaluator{s: s, minRequests: minRequests}
	if len(s.Warnings) > 0 {
		return e.partial(res, checks)
	}
	// At least one request, whatever minRequests says: a canary that
	// served nothing has shown nothing.
	res.LowTraffic = !(s.Canary.Requests >= float64(max(minRequests, 1)))
	var failed, open, passed []string
	missing, leaning := math.IsNaN(s.Canary.Requests), false
	for _, c := range checks {
		cr := e.check(c)
		res.Checks = append(res.Checks, cr)
		missing, leaning = missing || cr.Missing, leaning || cr.Leaning
		switch cr.Verdict {
		case VerdictFail:
			failed = append(failed, cr.Message)
		case VerdictPass:
			passed = append(passed, cr.Message)
		default:
			open = append(open, cr.Message)
		}
	}
	res.Evidence = !res.LowTraffic && !missing && !leaning
	res.AwaitingEvidence = (res.LowTraffic || leaning) && !missing && len(failed) == 0
	switch {
	case len(failed) > 0:
		res.Verdict, res.Message = VerdictFail, strings.Join(failed, "; ")
	case !res.Evidence:
		res.Verdict = VerdictInconclusive
		res.Message = "inconclusive: " + strings.Join(append(e.shortOf(res), append(open, passed...)...), "; ")
	default:
		res.Verdict, res.Message = VerdictPass, passMessage(passed, open)
		res.Confident = len(open) == 0
	}
	return res
}

// shortOf says why the evidence is not enough yet, when traffic is why.
func (e evaluator) shortOf(res Result) []string {
	switch {
	case math.IsNaN(e.s.Canary.Requests):
		return []string{"no data for canary requests"}
	case !res.LowTraffic:
		return nil
	}
	return []string{fmt.Sprintf("canary served %s requests < minRequests %d", formatCount(e.s.Canary.Requests), e.minRequests)}
}

// passMessage states a window that no check fails on enough evidence:
// the checks already confidently within their bounds, and the others.
func passMessage(passed, open []string) string {
	switch {
	case len(passed)+len(open) == 0:
		return "passed: no checks"
	case len(open) == 0 && len(passed) == 1:
		return "1 check passed: " + passed[0]
	case len(open) == 0:
		return fmt.Sprintf("all %d checks passed: %s", len(passed), strings.Join(passed, ", "))
	}
	return "no check failing: " + strings.Join(append(passed, open...), "; ")
}

// partial is a window Prometheus answered only in part: nothing in it is
// judged, so neither a pass nor a failure rests on missing series.
func (e evaluator) partial(res Result, checks []policy.Check) Result {
	why := "Prometheus answered with warnings (partial data): " + strings.Join(e.s.Warnings, "; ")
	for _, c := range checks {
		cr := e.values(c.Metric)
		cr.Verdict, cr.Missing = VerdictInconclusive, true
		cr.Message = c.Metric + " not judged: " + why
		res.Checks = append(res.Checks, cr)
	}
	res.Verdict = VerdictInconclusive
	res.Message = "inconclusive: " + why
	return res
}

type evaluator struct {
	s           Samples
	minRequests int
}

func (e evaluator) values(metric string) CheckResult {
	return CheckResult{
		Metric: metric,
		Canary: value(e.s.Canary, metric, e.s.Window),
		Stable: value(e.s.Stable, metric, e.s.Window),
	}
}

func (e evaluator) check(c policy.Check) CheckResult {
	if isShare(c.Metric) {
		return e.shareCheck(c)
	}
	if _, ok := latencyQuantile(c.Metric); ok && len(e.s.Canary.Latency) > 0 {
		return e.latencyCheck(c)
	}
	return e.pointCheck(c)
}

// stableAbsent says stable served nothing in the window.
func (e evaluator) stableAbsent() bool { return !(e.s.Stable.Requests > 0) }

// stableGone is the canary-at-100% case: stable legitimately served
// nothing, so relative bounds have nothing to compare with and are dropped.
func (e evaluator) stableGone() bool { return e.stableAbsent() && e.s.CanaryWeight >= 100 }

// stableMissing is stable without data while it should be serving: the
// relative bounds cannot be judged, and the check is missing data.
func (e evaluator) stableMissing() string {
	if !e.stableAbsent() || e.stableGone() {
		return ""
	}
	return fmt.Sprintf("stable has no requests while the canary has %d%% of traffic", e.s.CanaryWeight)
}

// outcome is what one bound says about the canary.
type outcome int

const (
	undecided outcome = iota
	// leaning is undecided with the estimate already past the bound: no
	// failure yet, but no reason to move on either.
	leaning
	within
	beyond
	skipped // not applicable (stable gone at 100%, a zero stable for a ratio)
)

// boundResult is one bound's outcome with its message when it failed.
type boundResult struct {
	b       bound
	outcome outcome
	failMsg string
	limit   float64
	// score is the evidence that the canary is beyond the bound.
	score float64
}

// verdictOf folds the bounds of one check: any bound beyond fails the
// check, all applicable bounds within pass it, and anything else
// continues.
func verdictOf(cr *CheckResult, rs []boundResult) {
	applied, allWithin := 0, true
	for _, r := range rs {
		if r.outcome == skipped {
			continue
		}
		if r.outcome == beyond {
			cr.Bound, cr.Threshold, cr.Verdict, cr.Message = r.b.name, r.b.raw, VerdictFail, r.failMsg
			if cr.Evidence != nil {
				cr.Evidence.Limit, cr.Evidence.Score = r.limit, r.score
			}
			return
		}
		if applied == 0 {
			cr.Bound, cr.Threshold = r.b.name, r.b.raw
			if cr.Evidence != nil {
				cr.Evidence.Limit, cr.Evidence.Score = r.limit, r.score
			}
		}
		applied++
		allWithin = allWithin && r.outcome == within
		cr.Leaning = cr.Leaning || r.outcome == leaning
	}
	cr.Verdict = VerdictInconclusive
	if allWithin {
		cr.Verdict = VerdictPass
	}
}

// boundNames lists the applicable bounds of a check as people read them.
func boundNames(rs []boundResult) string {
	var out []string
	for _, r := range rs {
		if r.outcome != skipped {
			out = append(out, r.b.name+" "+r.b.raw)
		}
	}
	if len(out) == 0 {
		return "its absolute bounds (none; relative bounds dropped)"
	}
	return strings.Join(out, " and ")
}

// summarize writes the message of a check that did not fail. When stable
// is missing (why), relative bounds were not judged, so the check cannot
// pass: it is missing data.
func summarize(cr *CheckResult, rs []boundResult, canary, stable, missing string) {
	switch {
	case cr.Verdict == VerdictFail:
		return
	case missing != "" && hasRelative(rs):
		cr.Verdict, cr.Missing = VerdictInconclusive, true
		cr.Message = fmt.Sprintf("%s canary %s: %s not judged, %s", cr.Metric, canary, relativeNames(rs), missing)
		return
	}
	switch {
	case cr.Verdict == VerdictPass:
		cr.Message = fmt.Sprintf("%s canary %s within %s (%s)", cr.Metric, canary, boundNames(rs), stable)
	case cr.Leaning:
		cr.Message = fmt.Sprintf("%s canary %s past %s by its estimate, not yet decided (%s)", cr.Metric, canary, boundNames(rs), stable)
	default:
		cr.Message = fmt.Sprintf("%s canary %s not yet decided against %s (%s)", cr.Metric, canary, boundNames(rs), stable)
	}
}

// intervalText prints counts and their interval: "5/40, 80% interval
// 2.9%–30.8%".
func intervalText(k, n float64, iv Interval) string {
	return fmt.Sprintf("%s/%s, %d%% interval %s–%s", formatCount(k), formatCount(n),
		int(math.Round(100*(1-Alpha))), FormatPercent(iv.Lo), FormatPercent(iv.Hi))
}
