package metrics

import "math"

// Alpha is the error level of every sequential test and confidence
// sequence: the chance that a test of a share within its limit ever turns
// decisive, or that a sequence ever excludes the true share, looked at
// after every interval for as long as a stage lasts. Looking more often
// does not raise it, which is why a stage is judged on its cumulative
// counts at every interval. 0.2 makes a failed verdict 5:1 evidence; the
// default failureLimit of 2 asks for two on separate traffic, 4% at
// worst for a canary exactly at its bound, and makes detection quick.
const Alpha = 0.2

// Mixing prior of the confidence sequences: Jeffreys' Beta(½, ½). It puts
// weight near 0 and 1, where error shares and tail shares live, so that a
// large regression is detected on few requests.
const (
	priorA = 0.5
	priorB = 0.5
)

// Interval is an anytime-valid confidence interval for a share: with
// probability at least 1 − Alpha, every Interval computed from the growing
// counts of one stage contains the true share at once.
type Interval struct {
	Lo, Hi float64
}

// ShareInterval is the confidence sequence's interval for a share after k
// events in n trials (for example 5xx responses among requests). It is the
// set of shares p whose likelihood is not beaten by a factor of 1/Alpha by
// the Beta-mixture likelihood (Robbins' mixture martingale): a test that
// stays valid however often, and whenever, it is looked at. Counts may be
// fractional, as increase() extrapolates them; k is clamped to [0, n].
func ShareInterval(k, n float64) Interval {
	if !(n > 0) || math.IsNaN(k) {
		return Interval{Lo: 0, Hi: 1} // no counts: anything
	}
	k = math.Min(math.Max(k, 0), n)
	limit := math.Log(1 / Alpha)
	mix := logBeta(k+priorA, n-k+priorB) - logBeta(priorA, priorB)
	// excess > 0 means p is excluded.
	excess := func(p float64) float64 {
		return mix - k*safeLog(p) - (n-k)*safeLog(1-p) - limit
	}
	p := k / n
	out := Interval{Lo: 0, Hi: 1}
	if k > 0 {
		out.Lo = bisect(excess, 0, p)
	}
	if k < n {
		out.Hi = bisect(excess, 1, p)
	}
	return out
}

// bisect finds where f changes sign between out (where f > 0, or at the
// edge of [0, 1]) and in (where f ≤ 0): the edge of the interval.
func bisect(f func(float64) float64, out, in float64) float64 {
	for range 60 {
		mid := (out + in) / 2
		if f(mid) > 0 {
			out = mid
		} else {
			in = mid
		}
	}
	return in
}

// safeLog is math.Log that treats log(0) as a very negative finite number, so
// that the likelihood of an impossible share is tiny rather than NaN.
func safeLog(x float64) float64 {
	if x <= 0 {
		return -1e300
	}
	return math.Log(x)
}

func logBeta(a, b float64) float64 {
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	return la + lb - lab
}

// Detectable is the smallest share a check with limit (a max on a share)
// would find decisively above the limit after n trials, were its counts
// the expected ones: what a stage with n requests can catch. +Inf when
// nothing can be caught.
func Detectable(n, limit float64) float64 {
	if !(n > 0) || !Decisive(EvidenceAbove(n, n, limit)) {
		return math.Inf(1)
	}
	lo, hi := limit, 1.0
	for range 50 {
		mid := (lo + hi) / 2
		if Decisive(EvidenceAbove(mid*n, n, limit)) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// Alternatives of the one-sided tests, as steps in log-odds away from the
// limit: from shares barely past it (×1.1 in odds) to far past it (×33).
// Mixing over them, with equal weights, makes the test quick for large
// regressions and still able to see small ones.
func alternatives() [8]float64 { return [8]float64{0.1, 0.2, 0.4, 0.8, 1.2, 1.8, 2.5, 3.5} }

// EvidenceAbove is the evidence, as a betting score (an e-value), that
// the share behind k events in n trials is above limit: the likelihood of
// the counts under shares past limit, mixed over alternatives(), divided
// by their likelihood at limit. Under any share at or below limit it is a
// nonnegative supermartingale in n, so the chance that it ever reaches
// 1/Alpha, however often it is looked at, is at most Alpha (Ville's
// inequality). 1 means no evidence either way; counts may be fractional.
func EvidenceAbove(k, n, limit float64) float64 { return evidence(k, n, limit, 1) }

// EvidenceBelow is EvidenceAbove for a share below limit.
func EvidenceBelow(k, n, limit float64) float64 { return evidence(k, n, limit, -1) }

func evidence(k, n, limit, sign float64) float64 {
	if !(n > 0) || math.IsNaN(k) || math.IsNaN(limit) {
		return 1
	}
	k = math.Min(math.Max(k, 0), n)
	switch {
	case limit <= 0 && sign > 0 && k > 0, limit >= 1 && sign < 0 && k < n:
		return math.Inf(1) // one event beyond a limit of none proves it
	case limit <= 0 || limit >= 1:
		return 1
	}
	base := math.Log(limit / (1 - limit))
	sum := 0.0
	alts := alternatives()
	for _, step := range alts {
		q := 1 / (1 + math.Exp(-(base + sign*step)))
		sum += math.Exp(k*math.Log(q/limit) + (n-k)*math.Log((1-q)/(1-limit)))
	}
	return sum / float64(len(alts))
}

// Decisive reports whether evidence is enough to decide: 1/Alpha.
func Decisive(e float64) bool { return e >= 1/Alpha }
