package metrics

import "math"

// Alpha is the error level of every confidence sequence a check uses: the
// chance that a sequence, looked at after every interval for as long as a
// stage lasts, ever excludes the true share. Looking more often does not
// raise it, which is why a stage can be judged on its cumulative counts at
// every interval.
const Alpha = 0.05

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
// would confidently find above the limit after n trials: the share p whose
// expected count pn puts the interval's lower end above limit. It says what
// a stage with n requests can catch; +Inf when nothing can be caught.
func Detectable(n, limit float64) float64 {
	if !(n > 0) {
		return math.Inf(1)
	}
	if ShareInterval(n, n).Lo <= limit {
		return math.Inf(1)
	}
	lo, hi := limit, 1.0
	for range 50 {
		mid := (lo + hi) / 2
		if ShareInterval(mid*n, n).Lo > limit {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}
