package metrics

import (
	"fmt"
	"math"

	"github.com/meshcanary/meshcanary/pkg/policy"
)

// holdShare holds the canary's counts (k of n) against one bound, the
// interval of stable's share s giving relative bounds their limit. A
// bound fails on decisive evidence that the canary's share is beyond the
// limit most favourable to it (stable's upper end), and passes on
// decisive evidence that it is within the least favourable one (stable's
// lower end): both versions' noise is inside the test. It returns the
// outcome, the limit that failing is judged against, and the evidence.
func holdShare(b bound, k, n float64, s Interval) (outcome, float64, float64) {
	failLimit, passLimit := b.limit, b.limit
	switch b.name {
	case BoundMin:
		e := EvidenceBelow(k, n, b.limit)
		switch {
		case Decisive(e):
			return beyond, b.limit, e
		case Decisive(EvidenceAbove(k, n, b.limit)):
			return within, b.limit, e
		}
		return lean(k/n < b.limit), b.limit, e
	case BoundMaxIncrease:
		failLimit, passLimit = s.Hi+b.limit, s.Lo+b.limit
	case BoundMaxRatio:
		failLimit, passLimit = s.Hi*b.limit, s.Lo*b.limit
	}
	e := EvidenceAbove(k, n, failLimit)
	switch {
	case Decisive(e):
		return beyond, failLimit, e
	case Decisive(EvidenceBelow(k, n, passLimit)):
		return within, failLimit, e
	}
	return lean(k/n > failLimit), failLimit, e
}

// lean is an undecided outcome, leaning beyond the bound when the
// estimate is already past it.
func lean(past bool) outcome {
	if past {
		return leaning
	}
	return undecided
}

func isRelative(b bound) bool { return b.name == BoundMaxIncrease || b.name == BoundMaxRatio }

// shareCheck judges error-rate or success-rate on the 5xx and request
// counts of both versions.
func (e evaluator) shareCheck(c policy.Check) CheckResult {
	m := c.Metric
	cr := e.values(m)
	ev := shareEvidence(m, e.s.Canary, e.s.Stable)
	cr.Evidence = &ev
	if !(e.s.Canary.Requests > 0) {
		cr.Verdict = VerdictInconclusive
		cr.Message = fmt.Sprintf("%s canary served no requests", m)
		return cr
	}
	canary := FormatValue(m, cr.Canary) + " (" + intervalText(ev.CanaryCount, ev.CanaryTotal, ev.Canary) + ")"
	stable := e.stableText(m, cr.Stable, ev)
	missing := e.stableMissing()
	var rs []boundResult
	for _, b := range boundsOf(c) {
		r := boundResult{b: b}
		switch {
		case isRelative(b) && e.stableGone():
			r.outcome = skipped
		case isRelative(b) && missing != "":
			r.outcome = undecided
		default:
			r.outcome, r.limit, r.score = holdShare(b, ev.CanaryCount, ev.CanaryTotal, ev.Stable)
			r.failMsg = shareFailMessage(m, b, canary, stable)
		}
		rs = append(rs, r)
	}
	verdictOf(&cr, rs)
	summarize(&cr, rs, canary, stable, missing)
	return cr
}

func hasRelative(rs []boundResult) bool { return relativeNames(rs) != "" }

func relativeNames(rs []boundResult) string {
	out := ""
	for _, r := range rs {
		if isRelative(r.b) && r.outcome != skipped {
			if out != "" {
				out += " and "
			}
			out += r.b.name
		}
	}
	return out
}

func shareFailMessage(m string, b bound, canary, stable string) string {
	switch b.name {
	case BoundMax:
		return fmt.Sprintf("%s canary %s > max %s (%s)", m, canary, b.raw, stable)
	case BoundMin:
		return fmt.Sprintf("%s canary %s < min %s (%s)", m, canary, b.raw, stable)
	case BoundMaxIncrease:
		return fmt.Sprintf("%s canary %s > %s + maxIncrease %s", m, canary, stable, b.raw)
	}
	return fmt.Sprintf("%s canary %s > maxRatio %s × %s", m, canary, b.raw, stable)
}

// shareEvidence counts 5xx (error-rate) or the other responses
// (success-rate) for both versions, with their intervals.
func shareEvidence(m string, canary, stable Sample) Evidence {
	ev := Evidence{Counted: "5xx", CanaryTotal: canary.Requests, StableTotal: stable.Requests}
	ev.CanaryCount, ev.StableCount = clampCount(canary.Errors, canary.Requests), clampCount(stable.Errors, stable.Requests)
	if m == MetricSuccessRate {
		ev.Counted = "non-5xx"
		ev.CanaryCount, ev.StableCount = ev.CanaryTotal-ev.CanaryCount, ev.StableTotal-ev.StableCount
	}
	ev.Canary, ev.Stable = ShareInterval(ev.CanaryCount, ev.CanaryTotal), ShareInterval(ev.StableCount, ev.StableTotal)
	return ev
}

// clampCount keeps an extrapolated count within [0, n].
func clampCount(k, n float64) float64 {
	if math.IsNaN(k) || !(n > 0) {
		return 0
	}
	return math.Min(math.Max(k, 0), n)
}

func (e evaluator) stableText(m string, sv float64, ev Evidence) string {
	switch {
	case e.stableGone():
		return "stable served no requests"
	case e.stableAbsent():
		return "stable no data"
	}
	return "stable " + FormatValue(m, sv) + " (" + intervalText(ev.StableCount, ev.StableTotal, ev.Stable) + ")"
}

// latencyCheck judges a latency quantile on the histograms: "the canary's
// pQ exceeds T" is "more than 1 − Q of its requests were slower than T",
// decided on the counted share slower than T and its interval. For a
// relative bound T comes from stable's quantile, and the canary fails only
// when its share slower than T is also confidently above stable's share
// slower than the same T: a T that stable's noise set too low makes both
// versions look slow, and the comparison between them stays fair.
func (e evaluator) latencyCheck(c policy.Check) CheckResult {
	m := c.Metric
	q, _ := latencyQuantile(m)
	cr := e.values(m)
	hc, hs := sortedHistogram(e.s.Canary.Latency), sortedHistogram(e.s.Stable.Latency)
	if !(hc.total() > 0) {
		cr.Verdict = VerdictInconclusive
		cr.Message = fmt.Sprintf("%s canary served no requests", m)
		return cr
	}
	missing := e.stableMissing()
	if missing == "" && !e.stableGone() && !(hs.total() > 0) {
		missing = "stable has no latency data"
	}
	stable := e.latencyStableText(m, cr.Stable)
	var rs []boundResult
	for _, b := range boundsOf(c) {
		rs = append(rs, e.holdLatency(&cr, b, q, hc, hs, missing, stable))
	}
	verdictOf(&cr, rs)
	canary := FormatValue(m, cr.Canary)
	if cr.Evidence != nil {
		canary += " (" + latencyText(*cr.Evidence) + ")"
	}
	summarize(&cr, rs, canary, stable, missing)
	return cr
}

// holdLatency judges one bound of a latency check; the evidence of the
// first bound judged is kept on cr for people to read.
func (e evaluator) holdLatency(cr *CheckResult, b bound, q float64, hc, hs histogram, missing, stable string) boundResult {
	r := boundResult{b: b, limit: 1 - q}
	t := b.limit
	if isRelative(b) {
		sv := cr.Stable
		switch {
		case e.stableGone() || (b.name == BoundMaxRatio && sv == 0):
			r.outcome = skipped
			return r
		case missing != "" || math.IsNaN(sv):
			return r // undecided
		case b.name == BoundMaxRatio:
			t = sv * b.limit
		default:
			t = sv + b.limit
		}
	}
	ev := Evidence{
		Counted:     "slower than " + FormatSeconds(t),
		CanaryCount: hc.slowerThan(t), CanaryTotal: hc.total(),
		StableCount: hs.slowerThan(t), StableTotal: hs.total(),
		Limit: 1 - q,
	}
	ev.Canary, ev.Stable = ShareInterval(ev.CanaryCount, ev.CanaryTotal), ShareInterval(ev.StableCount, ev.StableTotal)
	if cr.Evidence == nil {
		cr.Evidence = &ev
	}
	// Shares slower than T: pQ > T means a share above 1 − Q.
	switch b.name {
	case BoundMin:
		r.outcome, _, r.score = holdShare(bound{name: BoundMin, limit: 1 - q}, ev.CanaryCount, ev.CanaryTotal, ev.Stable)
		r.failMsg = fmt.Sprintf("%s canary %s < min %s (%s)", cr.Metric, latencyPoint(cr.Metric, cr.Canary, ev), b.raw, stable)
		return r
	case BoundMax:
		r.outcome, _, r.score = holdShare(bound{name: BoundMax, limit: 1 - q}, ev.CanaryCount, ev.CanaryTotal, ev.Stable)
		r.failMsg = fmt.Sprintf("%s canary %s > max %s (%s)", cr.Metric, latencyPoint(cr.Metric, cr.Canary, ev), b.raw, stable)
		return r
	}
	r.outcome, r.score = holdRelativeLatency(1-q, ev)
	r.failMsg = fmt.Sprintf("%s canary %s > %s: %s of canary requests slower vs %s of stable's (%s)", cr.Metric,
		latencyPoint(cr.Metric, cr.Canary, ev), relativeLimitText(b, cr.Stable, t), FormatPercent(ev.CanaryCount/ev.CanaryTotal),
		FormatPercent(ev.StableCount/ev.StableTotal), stable)
	return r
}

// holdRelativeLatency fails a canary whose share slower than T is
// decisively above 1 − Q and above stable's share; it passes one whose
// share is decisively within either. The evidence returned is the weaker
// of the two needed for failing.
func holdRelativeLatency(limit float64, ev Evidence) (outcome, float64) {
	k, n := ev.CanaryCount, ev.CanaryTotal
	e := math.Min(EvidenceAbove(k, n, limit), EvidenceAbove(k, n, ev.Stable.Hi))
	switch {
	case Decisive(e):
		return beyond, e
	case Decisive(EvidenceBelow(k, n, limit)) || Decisive(EvidenceBelow(k, n, ev.Stable.Lo)):
		return within, e
	}
	return lean(k/n > limit && k/n > ev.Stable.Hi), e
}

func relativeLimitText(b bound, sv, t float64) string {
	if b.name == BoundMaxRatio {
		return fmt.Sprintf("maxRatio %s × stable %s = %s", b.raw, FormatSeconds(sv), FormatSeconds(t))
	}
	return fmt.Sprintf("stable %s + maxIncrease %s = %s", FormatSeconds(sv), b.raw, FormatSeconds(t))
}

func latencyPoint(m string, v float64, ev Evidence) string {
	return FormatValue(m, v) + " (" + latencyText(ev) + ")"
}

// latencyText prints a latency check's counts: "12/400 slower than 240ms,
// 95% interval 1.6%–6.1%".
func latencyText(ev Evidence) string {
	return fmt.Sprintf("%s/%s %s, %d%% interval %s–%s", formatCount(ev.CanaryCount), formatCount(ev.CanaryTotal),
		ev.Counted, int(math.Round(100*(1-Alpha))), FormatPercent(ev.Canary.Lo), FormatPercent(ev.Canary.Hi))
}

func (e evaluator) latencyStableText(m string, sv float64) string {
	switch {
	case e.stableGone():
		return "stable served no requests"
	case e.stableAbsent() || math.IsNaN(sv):
		return "stable no data"
	}
	return "stable " + FormatValue(m, sv)
}

// pointCheck judges a metric that has no counts behind it (request-rate,
// a custom metric, a latency without histogram) on its point values, and
// only once the canary served minRequests requests in the window.
func (e evaluator) pointCheck(c policy.Check) CheckResult {
	m := c.Metric
	cr := e.values(m)
	cv, sv := cr.Canary, cr.Stable
	stable := e.latencyStableText(m, sv)
	switch {
	case math.IsNaN(cv):
		cr.Verdict, cr.Missing = VerdictInconclusive, true
		cr.Message = fmt.Sprintf("%s canary has no data (%s)", m, stable)
		return cr
	case !(e.s.Canary.Requests >= float64(e.minRequests)):
		cr.Verdict = VerdictInconclusive
		cr.Message = fmt.Sprintf("%s canary %s not judged below minRequests (%s)", m, FormatValue(m, cv), stable)
		return cr
	}
	missing := e.stableMissing()
	if missing == "" && !e.stableGone() && math.IsNaN(sv) {
		missing = "stable has no data"
	}
	var rs []boundResult
	for _, b := range boundsOf(c) {
		r := boundResult{b: b, outcome: within}
		switch {
		case isRelative(b) && (e.stableGone() || (b.name == BoundMaxRatio && sv == 0 && missing == "")):
			r.outcome = skipped
		case isRelative(b) && missing != "":
			r.outcome = undecided
		case pointBeyond(b, cv, sv):
			r.outcome = beyond
			r.failMsg = pointFailMessage(m, b, cv, sv, stable)
		}
		rs = append(rs, r)
	}
	verdictOf(&cr, rs)
	summarize(&cr, rs, FormatValue(m, cv), stable, missing)
	return cr
}

func pointBeyond(b bound, cv, sv float64) bool {
	switch b.name {
	case BoundMax:
		return exceeds(cv, b.limit)
	case BoundMin:
		return exceeds(b.limit, cv)
	case BoundMaxIncrease:
		return exceeds(cv-sv, b.limit)
	}
	return exceeds(cv/sv, b.limit)
}

func pointFailMessage(m string, b bound, cv, sv float64, stable string) string {
	switch b.name {
	case BoundMax:
		return fmt.Sprintf("%s canary %s > max %s (%s)", m, FormatValue(m, cv), b.raw, stable)
	case BoundMin:
		return fmt.Sprintf("%s canary %s < min %s (%s)", m, FormatValue(m, cv), b.raw, stable)
	case BoundMaxIncrease:
		return fmt.Sprintf("%s canary %s > stable %s + maxIncrease %s", m, FormatValue(m, cv), FormatValue(m, sv), b.raw)
	}
	return fmt.Sprintf("%s canary %s is %sx stable %s > maxRatio %s", m, FormatValue(m, cv), FormatPlain(cv/sv), FormatValue(m, sv), b.raw)
}
