package metrics

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/meshcanary/meshcanary/pkg/policy"
)

// Sample is what one version served in a window. Requests and Errors (5xx)
// are counts; error-rate, success-rate and request-rate are derived from
// them, and Values holds the other metrics by name (latencies in seconds,
// custom metrics as answered). NaN or missing means no data.
type Sample struct {
	Requests, Errors float64
	Values           map[string]float64
	// Latency is the request duration histogram (seconds), when latency
	// checks asked for it; latency checks are then decided on it.
	Latency []Bucket
}

// Samples is both versions over the same window.
type Samples struct {
	Canary, Stable Sample
	Window         time.Duration
}

// Verdict is the outcome of a check or a window.
type Verdict string

// Inconclusive means the window could not be judged either way (too little
// traffic, no data), which is no evidence against the canary.
const (
	VerdictPass         Verdict = "Pass"
	VerdictFail         Verdict = "Fail"
	VerdictInconclusive Verdict = "Inconclusive"
)

// Bound names, as in policy.Check.
const (
	BoundMax         = "max"
	BoundMin         = "min"
	BoundMaxIncrease = "maxIncrease"
	BoundMaxRatio    = "maxRatio"
)

// CheckResult is one check over one window.
type CheckResult struct {
	Metric string
	// Canary and Stable are point estimates, NaN when there is no data.
	Canary, Stable float64
	// Bound is the bound that decided: the failing one if any, else the
	// first that applied; empty when none did.
	Bound string
	// Threshold is Bound's limit as the user wrote it.
	Threshold string
	Verdict   Verdict
	Message   string
}

// Result is one window's verdict.
type Result struct {
	Verdict                        Verdict
	Checks                         []CheckResult
	CanaryRequests, StableRequests float64
	Window                         time.Duration
	// Message is one line for humans: the failing checks, why the window is
	// inconclusive, or what passed.
	Message string
	// Observed holds the values of Request.Observe's metrics.
	Observed map[string]Observed
}

// Observed is a metric measured for both versions without a verdict.
type Observed struct {
	Canary, Stable float64
	// CanaryRequests says how much traffic stands behind the canary's value.
	CanaryRequests float64
}

// Threshold is one bound of one check in the metric's base unit.
type Threshold struct {
	Metric, Bound string
	Value         float64
}

// Thresholds lists every bound of checks, in check order and then in the
// order max, min, maxIncrease, maxRatio.
func Thresholds(checks []policy.Check) []Threshold {
	var out []Threshold
	for _, c := range checks {
		for _, b := range boundsOf(c) {
			out = append(out, Threshold{Metric: c.Metric, Bound: b.name, Value: b.limit})
		}
	}
	return out
}

// wilsonZ is the one-sided 95% normal quantile: a share bound fails only
// when it fails with 95% confidence.
const wilsonZ = 1.645

type bound struct {
	name  string
	limit float64
	raw   string // as the user wrote it
}

func boundsOf(c policy.Check) []bound {
	var bs []bound
	add := func(name string, v *policy.Value) {
		if v == nil {
			return
		}
		raw := v.Raw
		if raw == "" { // built in code rather than parsed from a policy
			raw = FormatValue(c.Metric, v.Number)
		}
		bs = append(bs, bound{name: name, limit: v.Number, raw: raw})
	}
	add(BoundMax, c.Max)
	add(BoundMin, c.Min)
	add(BoundMaxIncrease, c.MaxIncrease)
	if c.MaxRatio != nil {
		bs = append(bs, bound{name: BoundMaxRatio, limit: *c.MaxRatio, raw: FormatPlain(*c.MaxRatio) + "x"})
	}
	return bs
}

// Evaluate judges one window. It is pure so that every rule can be tested
// without Prometheus; see the package documentation for the rules.
func Evaluate(s Samples, checks []policy.Check, minRequests int) Result {
	res := Result{
		CanaryRequests: s.Canary.Requests,
		StableRequests: s.Stable.Requests,
		Window:         s.Window,
	}
	e := evaluator{s: s, minRequests: minRequests}

	if short := e.canaryShort(); short != "" {
		for _, c := range checks {
			cr := e.values(c.Metric)
			cr.Verdict = VerdictInconclusive
			cr.Message = fmt.Sprintf("%s canary %s (%s) not judged: %s",
				c.Metric, FormatValue(c.Metric, cr.Canary), e.stableDesc(c.Metric, cr.Stable), short)
			res.Checks = append(res.Checks, cr)
		}
		res.Verdict = VerdictInconclusive
		res.Message = "inconclusive: " + short
		return res
	}

	var failed, inconclusive, passed []string
	for _, c := range checks {
		cr := e.check(c)
		res.Checks = append(res.Checks, cr)
		switch cr.Verdict {
		case VerdictFail:
			failed = append(failed, cr.Message)
		case VerdictInconclusive:
			inconclusive = append(inconclusive, cr.Message)
		default:
			passed = append(passed, cr.Message)
		}
	}
	switch {
	case len(failed) > 0:
		res.Verdict = VerdictFail
		res.Message = strings.Join(failed, "; ")
	case len(inconclusive) > 0:
		res.Verdict = VerdictInconclusive
		res.Message = "inconclusive: " + strings.Join(inconclusive, "; ")
	case len(passed) == 0:
		res.Verdict = VerdictPass
		res.Message = "passed: no checks"
	case len(passed) == 1:
		res.Verdict = VerdictPass
		res.Message = "1 check passed: " + passed[0]
	default:
		res.Verdict = VerdictPass
		res.Message = fmt.Sprintf("all %d checks passed: %s", len(passed), strings.Join(passed, ", "))
	}
	return res
}

type evaluator struct {
	s           Samples
	minRequests int
}

// canaryShort says why the canary's traffic is too little to judge, or "".
func (e evaluator) canaryShort() string {
	n := e.s.Canary.Requests
	switch {
	case math.IsNaN(n):
		return "no data for canary requests"
	case n < float64(e.minRequests):
		return fmt.Sprintf("canary served %s requests < minRequests %d", formatCount(n), e.minRequests)
	}
	return ""
}

func (e evaluator) values(metric string) CheckResult {
	return CheckResult{
		Metric: metric,
		Canary: value(e.s.Canary, metric, e.s.Window),
		Stable: value(e.s.Stable, metric, e.s.Window),
	}
}

// stableZero is the canary-at-100% case: stable served nothing, so there is
// nothing to compare with.
func (e evaluator) stableZero() bool { return e.s.Stable.Requests == 0 }

func (e evaluator) stableDesc(metric string, sv float64) string {
	switch {
	case e.stableZero():
		return "stable served no requests"
	case math.IsNaN(sv):
		return "stable no data"
	}
	return "stable " + FormatValue(metric, sv)
}

// stableUnusable says why relative bounds cannot use stable, or "".
func (e evaluator) stableUnusable(metric string, sv float64) string {
	n := e.s.Stable.Requests
	switch {
	case math.IsNaN(n):
		return "stable has no data"
	case n < float64(e.minRequests):
		return fmt.Sprintf("stable served %s requests < minRequests %d", formatCount(n), e.minRequests)
	case math.IsNaN(sv):
		return "stable has no data"
	}
	return ""
}

func (e evaluator) check(c policy.Check) CheckResult {
	m := c.Metric
	cr := e.values(m)
	cv, sv := cr.Canary, cr.Stable
	if math.IsNaN(cv) {
		cr.Verdict = VerdictInconclusive
		cr.Message = fmt.Sprintf("%s canary has no data (%s)", m, e.stableDesc(m, sv))
		return cr
	}

	// For shares the counts decide: the canary gets the end of its interval
	// most favourable to it, and so does the comparison with stable.
	cLo, cHi, sHi := cv, cv, sv
	share := isShare(m)
	if share {
		cLo, cHi = shareInterval(e.s.Canary, m)
		_, sHi = shareInterval(e.s.Stable, m)
	}

	// For latencies with a histogram, "the canary's pQ exceeds T" is
	// decided as "more than 1−Q of its requests were slower than T", with
	// the share's Wilson lower bound: a few slow requests from a small
	// canary are not enough, a clear shift is.
	q, latency := latencyQuantile(m)
	hist := sortedHistogram(e.s.Canary.Latency)
	useHist := latency && hist.total() > 0
	slowShare := func(t float64) (lo, hi float64) { return wilson(hist.slowerThan(t), hist.total()) }

	unusable := e.stableUnusable(m, sv)
	var skipped []string
	var skipReason string
	applied := false
	for _, b := range boundsOf(c) {
		var fails bool
		var msg string
		switch b.name {
		case BoundMax:
			fails = exceeds(cLo, b.limit)
			if useHist {
				lo, _ := slowShare(b.limit)
				fails = exceeds(lo, 1-q)
			}
			msg = fmt.Sprintf("%s canary %s > max %s (%s)", m, e.canaryDesc(m, cv, cLo, "lower"), b.raw, e.stableDesc(m, sv))
		case BoundMin:
			fails = exceeds(b.limit, cHi)
			if useHist {
				_, hi := slowShare(b.limit)
				fails = exceeds(1-q, hi)
			}
			msg = fmt.Sprintf("%s canary %s < min %s (%s)", m, e.canaryDesc(m, cv, cHi, "upper"), b.raw, e.stableDesc(m, sv))
		case BoundMaxIncrease, BoundMaxRatio:
			if e.stableZero() {
				continue // canary took all traffic; see doc.go
			}
			reason := unusable
			if reason == "" && b.name == BoundMaxRatio && sv == 0 {
				reason = "stable is " + FormatValue(m, sv)
			}
			if reason != "" {
				skipped = append(skipped, b.name)
				skipReason = reason
				continue
			}
			stable := e.canaryDesc(m, sv, sHi, "upper")
			if useHist {
				t := sv + b.limit
				if b.name == BoundMaxRatio {
					t = sv * b.limit
				}
				lo, _ := slowShare(t)
				histFails := exceeds(lo, 1-q)
				if b.name == BoundMaxIncrease {
					msg = fmt.Sprintf("%s canary %s > stable %s + maxIncrease %s", m, FormatValue(m, cv), FormatValue(m, sv), b.raw)
				} else {
					msg = fmt.Sprintf("%s canary %s is %sx stable %s > maxRatio %s", m, FormatValue(m, cv), FormatPlain(cv/sv), FormatValue(m, sv), b.raw)
				}
				fails = histFails
			} else if b.name == BoundMaxIncrease {
				fails = exceeds(cLo-sHi, b.limit)
				msg = fmt.Sprintf("%s canary %s > stable %s + maxIncrease %s", m, e.canaryDesc(m, cv, cLo, "lower"), stable, b.raw)
			} else {
				fails = exceeds(cLo/sHi, b.limit)
				msg = fmt.Sprintf("%s canary %s is %sx stable %s > maxRatio %s", m, e.canaryDesc(m, cv, cLo, "lower"), FormatPlain(cv/sv), stable, b.raw)
			}
		}
		if fails {
			cr.Bound, cr.Threshold = b.name, b.raw
			cr.Verdict = VerdictFail
			cr.Message = msg
			return cr
		}
		if !applied {
			applied = true
			cr.Bound, cr.Threshold = b.name, b.raw
		}
	}
	if !applied && len(skipped) > 0 {
		cr.Verdict = VerdictInconclusive
		cr.Message = fmt.Sprintf("%s canary %s: %s not applicable, %s", m, FormatValue(m, cv), strings.Join(skipped, " and "), skipReason)
		return cr
	}
	cr.Verdict = VerdictPass
	cr.Message = fmt.Sprintf("%s canary %s (%s)", m, FormatValue(m, cv), e.stableDesc(m, sv))
	return cr
}

// canaryDesc prints a point estimate and, for shares, the interval end that
// decided, so the message shows why a small sample did or did not fail.
func (e evaluator) canaryDesc(metric string, point, decided float64, end string) string {
	if !isShare(metric) {
		return FormatValue(metric, point)
	}
	return fmt.Sprintf("%s (95%% %s bound %s)", FormatValue(metric, point), end, FormatValue(metric, decided))
}

// exceeds reports v > limit, tolerating float rounding so that a value equal
// to its limit as written (0.3 − 0.1 against 0.2) passes.
func exceeds(v, limit float64) bool {
	return v > limit+1e-9*math.Max(1, math.Abs(limit))
}

func isShare(metric string) bool {
	return metric == MetricErrorRate || metric == MetricSuccessRate
}

// value is a version's point estimate of metric, NaN when there is no data.
func value(s Sample, metric string, window time.Duration) float64 {
	switch metric {
	case MetricErrorRate, MetricSuccessRate:
		if !(s.Requests > 0) {
			return math.NaN()
		}
		p := clamp01(s.Errors / s.Requests)
		if metric == MetricSuccessRate {
			return 1 - p
		}
		return p
	case MetricRequestRate:
		if window <= 0 {
			return math.NaN()
		}
		return s.Requests / float64(windowSeconds(window))
	}
	v, ok := s.Values[metric]
	if !ok {
		return math.NaN()
	}
	return v
}

// shareInterval is the Wilson score interval of a share metric. increase()
// extrapolates, so counts are fractional and errors may exceed requests a
// little; the share is clamped rather than rejected.
func shareInterval(s Sample, metric string) (lo, hi float64) {
	n := s.Requests
	if !(n > 0) || math.IsNaN(s.Errors) {
		return math.NaN(), math.NaN()
	}
	lo, hi = wilson(s.Errors, n)
	if metric == MetricSuccessRate {
		return 1 - hi, 1 - lo
	}
	return lo, hi
}

func clamp01(x float64) float64 {
	return math.Min(1, math.Max(0, x))
}

// FormatValue prints a value in the unit people think in for its metric:
// percentages for shares, durations for latencies, a rate per second. The
// CLI, notifications and messages all print through it so they agree.
func FormatValue(metric string, v float64) string {
	switch {
	case math.IsNaN(v):
		return "no data"
	case isShare(metric):
		return FormatPercent(v)
	case metric == MetricRequestRate:
		return FormatPlain(v) + "/s"
	}
	if _, ok := latencyQuantile(metric); ok {
		return FormatSeconds(v)
	}
	return FormatPlain(v)
}

// FormatPercent prints a fraction as a percentage with at most two decimals,
// keeping two significant digits for tiny non-zero shares so they do not
// read as 0%.
func FormatPercent(f float64) string {
	p := f * 100
	r := math.Round(p*100) / 100
	if r == 0 && p != 0 {
		return strconv.FormatFloat(p, 'g', 2, 64) + "%"
	}
	return strconv.FormatFloat(r+0, 'f', -1, 64) + "%" // +0 turns -0 into 0
}

// FormatSeconds prints seconds as a Go duration rounded to about three
// significant digits: 80ms, 2.1s, 1.5ms.
func FormatSeconds(sec float64) string {
	if math.IsInf(sec, 0) {
		return strconv.FormatFloat(sec, 'f', -1, 64) + "s"
	}
	d := time.Duration(sec * float64(time.Second))
	a := d.Abs()
	switch {
	case a >= time.Second:
		d = d.Round(10 * time.Millisecond)
	case a >= 10*time.Millisecond:
		d = d.Round(time.Millisecond)
	case a >= time.Millisecond:
		d = d.Round(100 * time.Microsecond)
	default:
		d = d.Round(time.Microsecond)
	}
	return d.String()
}

// FormatPlain prints a number with four significant digits and no exponent.
func FormatPlain(v float64) string {
	if math.IsNaN(v) {
		return "no data"
	}
	if math.IsInf(v, 0) || math.Abs(v) >= 1000 {
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	}
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 4, 64), 64)
	return strconv.FormatFloat(r+0, 'f', -1, 64)
}

// formatCount prints a request count rounded down, so that "12 < 13" style
// messages stay true for the fractional counts increase() extrapolates.
func formatCount(n float64) string {
	return strconv.FormatFloat(math.Floor(n), 'f', 0, 64)
}
