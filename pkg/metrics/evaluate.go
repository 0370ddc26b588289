package metrics

import (
	"math"
	"strconv"

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
	// CanaryWeight is the canary's share of traffic in percent during the
	// window. Only at 100 may stable legitimately have served nothing; at
	// any lower weight a stable without requests is missing data, never a
	// reason to drop the comparison with it.
	CanaryWeight int
	// Warnings are what Prometheus said about its answers (a partial
	// response among them); any makes the window inconclusive.
	Warnings []string
}

// Verdict is the outcome of a check or a window.
type Verdict string

// Inconclusive means the evidence does not decide yet, or data is missing;
// it is no evidence against the canary. Result.Evidence tells the two apart.
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
	// Evidence is what a share or latency verdict rests on; nil for
	// checks decided on point values (request-rate, custom metrics).
	Evidence *Evidence
	// Missing says the check lacked data (not merely evidence).
	Missing bool
	// Leaning says the check is undecided with the canary's estimate
	// already past a bound: the window cannot pass on it.
	Leaning bool
}

// Evidence is the counts behind a check and their anytime-valid intervals.
type Evidence struct {
	// Counted names what is counted: "5xx" for error-rate and
	// success-rate, "slower than 240ms" for a latency check.
	Counted                  string
	CanaryCount, CanaryTotal float64
	StableCount, StableTotal float64
	// Canary and Stable are the intervals of each version's share of
	// counted requests (for success-rate, of successful ones).
	Canary, Stable Interval
	// Limit is the share the deciding bound held the canary against.
	Limit float64
	// Score is the evidence that the canary's share is beyond Limit (see
	// EvidenceAbove): the bound fails at 1/Alpha.
	Score float64
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
	// Evidence says the window is enough to complete a stage on: the
	// canary served at least minRequests requests in it, no check lacked
	// data and none leans past its bound. A Fail needs no minimum: strong
	// evidence decides early.
	Evidence bool
	// LowTraffic says the canary served fewer than minRequests requests.
	LowTraffic bool
	// AwaitingEvidence says an Inconclusive window lacks only evidence
	// (too few canary requests, or a check leaning past its bound but not
	// yet decided), not data.
	AwaitingEvidence bool
	// Confident says every check passed on decisive evidence, not merely
	// failed to fail: only that clears an earlier failed verdict.
	Confident bool
	// Forecast is what the remaining stages can expect at this window's
	// request rate; the controller fills it in.
	Forecast []StageForecast
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
	if p > 0 && p < 0.001 {
		return "<0.001%" // an interval's end near zero, not a measured share
	}
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
