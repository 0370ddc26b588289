package metrics

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/meshcanary/meshcanary/pkg/policy"
)

func pct(raw string, fraction float64) *policy.Value {
	return &policy.Value{Raw: raw, Number: fraction, Unit: policy.UnitPercent}
}

func secs(raw string, seconds float64) *policy.Value {
	return &policy.Value{Raw: raw, Number: seconds, Unit: policy.UnitDuration}
}

func num(raw string, n float64) *policy.Value {
	return &policy.Value{Raw: raw, Number: n, Unit: policy.UnitNumber}
}

func ratio(r float64) *float64 { return &r }

// served is a version that served requests, of which errors were 5xx, with
// other metrics given as name, value pairs. It has no latency histogram, so
// latency checks on it compare the point estimates; see timed for one with.
func served(requests, errors float64, values ...any) Sample {
	s := Sample{Requests: requests, Errors: errors, Values: map[string]float64{}}
	for i := 0; i < len(values); i += 2 {
		s.Values[values[i].(string)] = values[i+1].(float64)
	}
	return s
}

func TestEvaluate(t *testing.T) {
	nan := math.NaN()
	const window = 30 * time.Second
	errorRateMax1 := policy.Check{Metric: MetricErrorRate, Max: pct("1%", 0.01)}
	tests := []struct {
		name         string
		canary       Sample
		stable       Sample
		canaryWeight int
		warnings     []string
		checks       []policy.Check
		minRequests  int
		verdict      Verdict
		// message is the whole message; contains, when set instead,
		// parts of it.
		message  string
		contains []string
		// lowTraffic is asserted on every case.
		lowTraffic bool
		// checkVerdicts, bounds and missing, when set, are asserted per
		// check.
		checkVerdicts []Verdict
		bounds        []string
		missing       []bool
	}{
		{
			// 1 of 60 has the interval 0.0031%–13.23%: neither above
			// 1% nor below it. Sixty requests are minRequests, so the
			// window passes on a check that is not yet decided.
			name:          "one 503 among sixty requests is noise, not a regression",
			canary:        served(60, 1),
			stable:        served(1000, 1),
			checks:        []policy.Check{errorRateMax1},
			minRequests:   50,
			verdict:       VerdictInconclusive,
			message:       "inconclusive: error-rate canary 1.67% (1/60, 80% interval 0.01%–10.87%) past max 1% by its estimate, not yet decided (stable 0.1% (1/1000, 80% interval <0.001%–0.84%))",
			checkVerdicts: []Verdict{VerdictInconclusive},
			bounds:        []string{BoundMax},
			missing:       []bool{false},
		},
		{
			name:          "twenty-five errors in five hundred requests fail max 1% with the counts and the interval in the message",
			canary:        served(500, 25),
			stable:        served(5000, 10),
			checks:        []policy.Check{errorRateMax1},
			minRequests:   50,
			verdict:       VerdictFail,
			message:       "error-rate canary 5% (25/500, 80% interval 2.51%–8.67%) > max 1% (stable 0.2% (10/5000, 80% interval 0.05%–0.51%))",
			checkVerdicts: []Verdict{VerdictFail},
			bounds:        []string{BoundMax},
		},
		{
			// Used to be inconclusive below minRequests: a Fail needs no
			// minimum, and 12 of 12 is confidently above 1% (from 66.92%).
			name:          "twelve errors in twelve requests fail max 1% before minRequests is reached",
			canary:        served(12, 12),
			stable:        served(1200, 0),
			checks:        []policy.Check{errorRateMax1},
			minRequests:   50,
			verdict:       VerdictFail,
			message:       "error-rate canary 100% (12/12, 80% interval 75.11%–100%) > max 1% (stable 0% (0/1200, 80% interval 0%–0.48%))",
			lowTraffic:    true,
			checkVerdicts: []Verdict{VerdictFail},
			bounds:        []string{BoundMax},
		},
		{
			name:          "forty requests with five errors fail max 1% before minRequests is reached",
			canary:        served(40, 5),
			stable:        served(1200, 0),
			checks:        []policy.Check{errorRateMax1},
			minRequests:   50,
			verdict:       VerdictFail,
			message:       "error-rate canary 12.5% (5/40, 80% interval 2.88%–30.76%) > max 1% (stable 0% (0/1200, 80% interval 0%–0.48%))",
			lowTraffic:    true,
			checkVerdicts: []Verdict{VerdictFail},
			bounds:        []string{BoundMax},
		},
		{
			// 2 of 10 reach down to 0.94%: a 20% point estimate is not
			// yet evidence against max 1%.
			name:          "a canary with one error in ten requests is not yet decided and not failed",
			canary:        served(10, 1),
			stable:        served(1200, 0),
			checks:        []policy.Check{errorRateMax1},
			minRequests:   50,
			verdict:       VerdictInconclusive,
			message:       "inconclusive: canary served 10 requests < minRequests 50; error-rate canary 10% (1/10, 80% interval 0.19%–45.78%) past max 1% by its estimate, not yet decided (stable 0% (0/1200, 80% interval 0%–0.48%))",
			lowTraffic:    true,
			checkVerdicts: []Verdict{VerdictInconclusive},
			bounds:        []string{BoundMax},
			missing:       []bool{false},
		},
		{
			// 40 of 40 successful: from 87.34%, confidently above 50%.
			name:          "a canary within every bound is still inconclusive below minRequests",
			canary:        served(40, 0),
			stable:        served(1200, 0),
			checks:        []policy.Check{{Metric: MetricSuccessRate, Min: pct("50%", 0.5)}},
			minRequests:   50,
			verdict:       VerdictInconclusive,
			message:       "inconclusive: canary served 40 requests < minRequests 50; success-rate canary 100% (40/40, 80% interval 90.42%–100%) within min 50% (stable 100% (1200/1200, 80% interval 99.52%–100%))",
			lowTraffic:    true,
			checkVerdicts: []Verdict{VerdictPass},
		},
		{
			name:        "fractional request counts are rounded down so the message stays true",
			canary:      served(49.7, 0),
			stable:      served(1000, 0),
			checks:      []policy.Check{errorRateMax1},
			minRequests: 50,
			verdict:     VerdictInconclusive,
			message:     "inconclusive: canary served 49 requests < minRequests 50; error-rate canary 0% (0/49, 80% interval 0%–7.99%) not yet decided against max 1% (stable 0% (0/1000, 80% interval 0%–0.56%))",
			lowTraffic:  true,
		},
		{
			name:          "a canary without any data is inconclusive",
			canary:        served(nan, nan),
			stable:        served(1000, 0),
			checks:        []policy.Check{errorRateMax1},
			minRequests:   50,
			verdict:       VerdictInconclusive,
			contains:      []string{"inconclusive: ", "error-rate canary served no requests"},
			lowTraffic:    true,
			checkVerdicts: []Verdict{VerdictInconclusive},
		},
		{
			name:   "latency 30% above stable fails maxRatio 1.2 with the numbers in the message",
			canary: served(500, 0, MetricLatencyP95, 0.130),
			stable: served(5000, 0, MetricLatencyP95, 0.100),
			checks: []policy.Check{
				{Metric: MetricLatencyP95, Max: secs("500ms", 0.5), MaxRatio: ratio(1.2)},
			},
			minRequests:   50,
			verdict:       VerdictFail,
			message:       "latency-p95 canary 130ms is 1.3x stable 100ms > maxRatio 1.2x",
			checkVerdicts: []Verdict{VerdictFail},
			bounds:        []string{BoundMaxRatio},
		},
		{
			name:   "latency 10% above stable passes maxRatio 1.2",
			canary: served(500, 0, MetricLatencyP95, 0.110),
			stable: served(5000, 0, MetricLatencyP95, 0.100),
			checks: []policy.Check{
				{Metric: MetricLatencyP95, MaxRatio: ratio(1.2)},
			},
			minRequests:   50,
			verdict:       VerdictPass,
			message:       "1 check passed: latency-p95 canary 110ms within maxRatio 1.2x (stable 100ms)",
			checkVerdicts: []Verdict{VerdictPass},
			bounds:        []string{BoundMaxRatio},
		},
		{
			// 3 of 3000 reach up to 0.5%, within max 1%; maxIncrease and
			// maxRatio have nothing to compare with and are dropped.
			name:   "canary at 100% with no stable traffic passes on absolute bounds",
			canary: served(3000, 3, MetricLatencyP95, 0.080),
			stable: served(0, 0),
			checks: []policy.Check{
				{Metric: MetricErrorRate, Max: pct("1%", 0.01), MaxIncrease: pct("0.5%", 0.005)},
				{Metric: MetricLatencyP95, MaxRatio: ratio(1.2)},
			},
			canaryWeight:  100,
			minRequests:   50,
			verdict:       VerdictPass,
			message:       "all 2 checks passed: error-rate canary 0.1% (3/3000, 80% interval 0.01%–0.44%) within max 1% (stable served no requests), latency-p95 canary 80ms within its absolute bounds (none; relative bounds dropped) (stable served no requests)",
			checkVerdicts: []Verdict{VerdictPass, VerdictPass},
			bounds:        []string{BoundMax, ""},
			missing:       []bool{false, false},
		},
		{
			name:   "a canary at 10% whose stable served nothing lacks data for its relative bounds and cannot pass",
			canary: served(3000, 3, MetricLatencyP95, 0.080),
			stable: served(0, 0),
			checks: []policy.Check{
				{Metric: MetricErrorRate, Max: pct("1%", 0.01), MaxIncrease: pct("0.5%", 0.005)},
				{Metric: MetricLatencyP95, MaxRatio: ratio(1.2)},
			},
			canaryWeight:  10,
			minRequests:   50,
			verdict:       VerdictInconclusive,
			message:       "inconclusive: error-rate canary 0.1% (3/3000, 80% interval 0.01%–0.44%): maxIncrease not judged, stable has no requests while the canary has 10% of traffic; latency-p95 canary 80ms: maxRatio not judged, stable has no requests while the canary has 10% of traffic",
			checkVerdicts: []Verdict{VerdictInconclusive, VerdictInconclusive},
			missing:       []bool{true, true},
		},
		{
			name:   "an unset canary weight does not mean 100%: a stable without requests is missing data",
			canary: served(3000, 3, MetricLatencyP95, 0.080),
			stable: served(0, 0),
			checks: []policy.Check{
				{Metric: MetricLatencyP95, Max: secs("1s", 1), MaxRatio: ratio(1.2)},
			},
			minRequests:   50,
			verdict:       VerdictInconclusive,
			message:       "inconclusive: latency-p95 canary 80ms: maxRatio not judged, stable has no requests while the canary has 0% of traffic",
			checkVerdicts: []Verdict{VerdictInconclusive},
			missing:       []bool{true},
		},
		{
			name:   "canary at 100% with no stable traffic still fails its absolute bounds",
			canary: served(3000, 300),
			stable: served(0, 0),
			checks: []policy.Check{
				{Metric: MetricErrorRate, Max: pct("1%", 0.01), MaxRatio: ratio(2)},
			},
			canaryWeight:  100,
			minRequests:   50,
			verdict:       VerdictFail,
			message:       "error-rate canary 10% (300/3000, 80% interval 8.23%–11.97%) > max 1% (stable served no requests)",
			checkVerdicts: []Verdict{VerdictFail},
			bounds:        []string{BoundMax},
			missing:       []bool{false},
		},
		{
			name:   "a canary beyond an absolute bound fails even while stable's series is missing",
			canary: served(3000, 300),
			stable: served(0, 0),
			checks: []policy.Check{
				{Metric: MetricErrorRate, Max: pct("1%", 0.01), MaxRatio: ratio(2)},
			},
			canaryWeight:  50,
			minRequests:   50,
			verdict:       VerdictFail,
			message:       "error-rate canary 10% (300/3000, 80% interval 8.23%–11.97%) > max 1% (stable no data)",
			checkVerdicts: []Verdict{VerdictFail},
			bounds:        []string{BoundMax},
			missing:       []bool{false},
		},
		{
			// Used to be inconclusive while stable had fewer than
			// minRequests: stable no longer needs minRequests.
			name:   "a stable below minRequests is still compared with: a p99 150ms above stable's fails maxIncrease 100ms",
			canary: served(500, 0, MetricLatencyP99, 0.250),
			stable: served(20, 0, MetricLatencyP99, 0.100),
			checks: []policy.Check{
				{Metric: MetricLatencyP99, MaxIncrease: secs("100ms", 0.1), MaxRatio: ratio(1.5)},
			},
			minRequests:   50,
			verdict:       VerdictFail,
			message:       "latency-p99 canary 250ms > stable 100ms + maxIncrease 100ms",
			checkVerdicts: []Verdict{VerdictFail},
			bounds:        []string{BoundMaxIncrease},
		},
		{
			// Used to pass on max alone while stable had fewer than
			// minRequests.
			name:   "a stable below minRequests no longer leaves the decision to the absolute bounds",
			canary: served(500, 0, MetricLatencyP99, 0.250),
			stable: served(20, 0, MetricLatencyP99, 0.100),
			checks: []policy.Check{
				{Metric: MetricLatencyP99, Max: secs("1s", 1), MaxRatio: ratio(1.5)},
			},
			minRequests:   50,
			verdict:       VerdictFail,
			message:       "latency-p99 canary 250ms is 2.5x stable 100ms > maxRatio 1.5x",
			checkVerdicts: []Verdict{VerdictFail},
			bounds:        []string{BoundMaxRatio},
		},
		{
			// Stable's 0 of 5000 reaches up to 0.16%, so maxRatio 2 fails
			// only a canary confidently above 0.31%, and passes only one
			// confidently at 0%: neither is 1 of 500.
			name:   "maxRatio against a stable without errors holds the canary against stable's upper end: one error in five hundred is not yet decided",
			canary: served(500, 1),
			stable: served(5000, 0),
			checks: []policy.Check{
				{Metric: MetricErrorRate, MaxRatio: ratio(2)},
			},
			minRequests:   50,
			verdict:       VerdictPass,
			message:       "no check failing: error-rate canary 0.2% (1/500, 80% interval <0.001%–1.6%) not yet decided against maxRatio 2x (stable 0% (0/5000, 80% interval 0%–0.13%))",
			checkVerdicts: []Verdict{VerdictInconclusive},
			bounds:        []string{BoundMaxRatio},
		},
		{
			name:   "twenty-five errors in five hundred fail maxRatio 2 against a stable without errors",
			canary: served(500, 25),
			stable: served(5000, 0),
			checks: []policy.Check{
				{Metric: MetricErrorRate, MaxRatio: ratio(2)},
			},
			minRequests:   50,
			verdict:       VerdictFail,
			message:       "error-rate canary 5% (25/500, 80% interval 2.51%–8.67%) > maxRatio 2x × stable 0% (0/5000, 80% interval 0%–0.13%)",
			checkVerdicts: []Verdict{VerdictFail},
			bounds:        []string{BoundMaxRatio},
		},
		{
			name:   "a latency the canary has no data for makes the window inconclusive",
			canary: served(500, 0, MetricLatencyP95, nan),
			stable: served(5000, 0, MetricLatencyP95, 0.1),
			checks: []policy.Check{
				errorRateMax1,
				{Metric: MetricLatencyP95, Max: secs("300ms", 0.3)},
			},
			minRequests:   50,
			verdict:       VerdictInconclusive,
			message:       "inconclusive: latency-p95 canary has no data (stable 100ms); error-rate canary 0% (0/500, 80% interval 0%–1.05%) within max 1% (stable 0% (0/5000, 80% interval 0%–0.13%))",
			checkVerdicts: []Verdict{VerdictPass, VerdictInconclusive},
			missing:       []bool{false, true},
		},
		{
			name:   "a missing custom metric is no data, not zero",
			canary: served(500, 0),
			stable: served(5000, 0, "apdex", 0.99),
			checks: []policy.Check{
				{Metric: "apdex", Min: num("0.9", 0.9)},
			},
			minRequests: 50,
			verdict:     VerdictInconclusive,
			message:     "inconclusive: apdex canary has no data (stable 0.99)",
			missing:     []bool{true},
		},
		{
			name:   "a failing check outweighs an inconclusive one",
			canary: served(500, 100, MetricLatencyP95, nan),
			stable: served(5000, 5, MetricLatencyP95, 0.1),
			checks: []policy.Check{
				{Metric: MetricLatencyP95, Max: secs("300ms", 0.3)},
				errorRateMax1,
			},
			minRequests:   50,
			verdict:       VerdictFail,
			message:       "error-rate canary 20% (100/500, 80% interval 14.79%–26%) > max 1% (stable 0.1% (5/5000, 80% interval 0.01%–0.35%))",
			checkVerdicts: []Verdict{VerdictInconclusive, VerdictFail},
			missing:       []bool{true, false},
		},
		{
			name:   "all failing checks are joined into the message",
			canary: served(500, 100, MetricLatencyP95, 0.9),
			stable: served(5000, 5, MetricLatencyP95, 0.1),
			checks: []policy.Check{
				errorRateMax1,
				{Metric: MetricLatencyP95, Max: secs("300ms", 0.3)},
			},
			minRequests: 50,
			verdict:     VerdictFail,
			message:     "error-rate canary 20% (100/500, 80% interval 14.79%–26%) > max 1% (stable 0.1% (5/5000, 80% interval 0.01%–0.35%)); latency-p95 canary 900ms > max 300ms (stable 100ms)",
		},
		{
			// Fails only above stable's 1% + 1% (canary from 0.19%),
			// passes only within stable's 0.00004% + 1% (canary up to
			// 12.29%).
			name:   "three errors in a hundred do not fail maxIncrease 1% over a clean stable given the sample size",
			canary: served(100, 3),
			stable: served(1000, 1),
			checks: []policy.Check{
				{Metric: MetricErrorRate, MaxIncrease: pct("1%", 0.01)},
			},
			minRequests:   50,
			verdict:       VerdictInconclusive,
			message:       "inconclusive: error-rate canary 3% (3/100, 80% interval 0.31%–10.63%) past maxIncrease 1% by its estimate, not yet decided (stable 0.1% (1/1000, 80% interval <0.001%–0.84%))",
			checkVerdicts: []Verdict{VerdictInconclusive},
			bounds:        []string{BoundMaxIncrease},
		},
		{
			// The canary's 1.43% lower end is not above stable's 1%
			// upper end + 1%: the point estimates differ by 2.9%, the
			// evidence does not yet say by more than 1%.
			name:   "thirty errors in a thousand are not yet confidently beyond maxIncrease 1% over one in a thousand",
			canary: served(1000, 30),
			stable: served(1000, 1),
			checks: []policy.Check{
				{Metric: MetricErrorRate, MaxIncrease: pct("1%", 0.01)},
			},
			minRequests:   50,
			verdict:       VerdictInconclusive,
			message:       "inconclusive: error-rate canary 3% (30/1000, 80% interval 1.56%–5.1%) past maxIncrease 1% by its estimate, not yet decided (stable 0.1% (1/1000, 80% interval <0.001%–0.84%))",
			checkVerdicts: []Verdict{VerdictInconclusive},
			bounds:        []string{BoundMaxIncrease},
		},
		{
			// 1.96% > 0.5% + 1%.
			name:   "ninety errors in three thousand exceed maxIncrease 1% over stable's upper end",
			canary: served(3000, 90),
			stable: served(3000, 3),
			checks: []policy.Check{
				{Metric: MetricErrorRate, MaxIncrease: pct("1%", 0.01)},
			},
			minRequests:   50,
			verdict:       VerdictFail,
			message:       "error-rate canary 3% (90/3000, 80% interval 2.05%–4.19%) > stable 0.1% (3/3000, 80% interval 0.01%–0.44%) + maxIncrease 1%",
			checkVerdicts: []Verdict{VerdictFail},
			bounds:        []string{BoundMaxIncrease},
		},
		{
			// 0.5% ≤ 0.0034% + 1%.
			name:   "a canary with stable's error rate passes maxIncrease 1% once both intervals are narrow enough",
			canary: served(3000, 3),
			stable: served(3000, 3),
			checks: []policy.Check{
				{Metric: MetricErrorRate, MaxIncrease: pct("1%", 0.01)},
			},
			minRequests:   50,
			verdict:       VerdictPass,
			message:       "1 check passed: error-rate canary 0.1% (3/3000, 80% interval 0.01%–0.44%) within maxIncrease 1% (stable 0.1% (3/3000, 80% interval 0.01%–0.44%))",
			checkVerdicts: []Verdict{VerdictPass},
			bounds:        []string{BoundMaxIncrease},
		},
		{
			name:   "success-rate below min fails only because its upper end is below min too",
			canary: served(1000, 50),
			stable: served(5000, 5),
			checks: []policy.Check{
				{Metric: MetricSuccessRate, Min: pct("99%", 0.99)},
			},
			minRequests: 50,
			verdict:     VerdictFail,
			message:     "success-rate canary 95% (950/1000, 80% interval 92.44%–96.93%) < min 99% (stable 99.9% (4995/5000, 80% interval 99.65%–99.99%))",
		},
		{
			name:   "success-rate a little below min on a small sample does not fail",
			canary: served(100, 2),
			stable: served(5000, 5),
			checks: []policy.Check{
				{Metric: MetricSuccessRate, Min: pct("99%", 0.99)},
			},
			minRequests:   50,
			verdict:       VerdictInconclusive,
			message:       "inconclusive: success-rate canary 98% (98/100, 80% interval 91.11%–99.9%) past min 99% by its estimate, not yet decided (stable 99.9% (4995/5000, 80% interval 99.65%–99.99%))",
			checkVerdicts: []Verdict{VerdictInconclusive},
		},
		{
			name:   "latency maxIncrease compares seconds",
			canary: served(500, 0, MetricLatencyP50, 0.35),
			stable: served(5000, 0, MetricLatencyP50, 0.2),
			checks: []policy.Check{
				{Metric: MetricLatencyP50, MaxIncrease: secs("100ms", 0.1)},
			},
			minRequests: 50,
			verdict:     VerdictFail,
			message:     "latency-p50 canary 350ms > stable 200ms + maxIncrease 100ms",
		},
		{
			name:   "a latency exactly at its maxIncrease passes despite float rounding",
			canary: served(500, 0, MetricLatencyP50, 0.3),
			stable: served(5000, 0, MetricLatencyP50, 0.1),
			checks: []policy.Check{
				{Metric: MetricLatencyP50, MaxIncrease: secs("200ms", 0.2)},
			},
			minRequests: 50,
			verdict:     VerdictPass,
			message:     "1 check passed: latency-p50 canary 300ms within maxIncrease 200ms (stable 100ms)",
		},
		{
			name:   "request-rate below min fails with the rate per second in the message",
			canary: served(15, 0),
			stable: served(3000, 0),
			checks: []policy.Check{
				{Metric: MetricRequestRate, Min: num("1", 1)},
			},
			minRequests: 10,
			verdict:     VerdictFail,
			message:     "request-rate canary 0.5/s < min 1 (stable 100/s)",
		},
		{
			name:   "a point value is not judged below minRequests, even far beyond its bound",
			canary: served(15, 0, "apdex", 0.1),
			stable: served(3000, 0, "apdex", 0.99),
			checks: []policy.Check{
				{Metric: "apdex", Min: num("0.9", 0.9)},
			},
			minRequests:   50,
			verdict:       VerdictInconclusive,
			message:       "inconclusive: canary served 15 requests < minRequests 50; apdex canary 0.1 not judged below minRequests (stable 0.99)",
			lowTraffic:    true,
			checkVerdicts: []Verdict{VerdictInconclusive},
			missing:       []bool{false},
		},
		{
			name:   "a custom metric below min fails and prints plain numbers",
			canary: served(500, 0, "apdex", 0.85),
			stable: served(5000, 0, "apdex", 0.9931),
			checks: []policy.Check{
				{Metric: "apdex", Min: num("0.9", 0.9)},
			},
			minRequests: 50,
			verdict:     VerdictFail,
			message:     "apdex canary 0.85 < min 0.9 (stable 0.9931)",
		},
		{
			name:   "the first failing bound decides when several fail",
			canary: served(500, 0, MetricLatencyP95, 2.1),
			stable: served(5000, 0, MetricLatencyP95, 0.08),
			checks: []policy.Check{
				{Metric: MetricLatencyP95, Max: secs("1s", 1), MaxIncrease: secs("500ms", 0.5), MaxRatio: ratio(2)},
			},
			minRequests:   50,
			verdict:       VerdictFail,
			message:       "latency-p95 canary 2.1s > max 1s (stable 80ms)",
			checkVerdicts: []Verdict{VerdictFail},
			bounds:        []string{BoundMax},
		},
		{
			// 1 of 1000 reaches up to 0.9975%, just within max 1%.
			name:   "all passing checks are listed in the summary",
			canary: served(1000, 1, MetricLatencyP95, 0.080),
			stable: served(9000, 9, MetricLatencyP95, 0.078),
			checks: []policy.Check{
				errorRateMax1,
				{Metric: MetricLatencyP95, MaxRatio: ratio(1.2)},
			},
			minRequests:   50,
			verdict:       VerdictPass,
			message:       "all 2 checks passed: error-rate canary 0.1% (1/1000, 80% interval <0.001%–0.84%) within max 1% (stable 0.1% (9/9000, 80% interval 0.02%–0.27%)), latency-p95 canary 80ms within maxRatio 1.2x (stable 78ms)",
			checkVerdicts: []Verdict{VerdictPass, VerdictPass},
		},
		{
			// Checks already within come first, the undecided after.
			name:   "a window with enough requests passes when no check fails though one is not yet decided",
			canary: served(60, 1),
			stable: served(1000, 1),
			checks: []policy.Check{
				errorRateMax1,
				{Metric: MetricRequestRate, Min: num("1", 1)},
			},
			minRequests:   50,
			verdict:       VerdictInconclusive,
			message:       "inconclusive: error-rate canary 1.67% (1/60, 80% interval 0.01%–10.87%) past max 1% by its estimate, not yet decided (stable 0.1% (1/1000, 80% interval <0.001%–0.84%)); request-rate canary 2/s within min 1 (stable 33.33/s)",
			checkVerdicts: []Verdict{VerdictInconclusive, VerdictPass},
		},
		{
			name:        "a window without checks passes once the canary has enough traffic",
			canary:      served(100, 0),
			stable:      served(1000, 0),
			minRequests: 50,
			verdict:     VerdictPass,
			message:     "passed: no checks",
		},
		{
			name:          "a canary that served nothing is inconclusive on its shares",
			canary:        served(0, 0),
			stable:        served(1000, 0),
			checks:        []policy.Check{errorRateMax1},
			minRequests:   1,
			verdict:       VerdictInconclusive,
			message:       "inconclusive: canary served 0 requests < minRequests 1; error-rate canary served no requests",
			lowTraffic:    true,
			checkVerdicts: []Verdict{VerdictInconclusive},
		},
		{
			// Nothing is judged on a partial answer: neither the failure
			// 12 of 12 would be nor the pass of a clean request-rate.
			name:   "Prometheus warnings make the window inconclusive, even with a clearly failing canary, and are in the message",
			canary: served(12, 12),
			stable: served(1200, 0),
			checks: []policy.Check{
				errorRateMax1,
				{Metric: MetricRequestRate, Min: num("0.1", 0.1)},
			},
			warnings:      []string{"PromQL warning: partial response", "store eu-1 unavailable"},
			minRequests:   1,
			verdict:       VerdictInconclusive,
			message:       "inconclusive: Prometheus answered with warnings (partial data): PromQL warning: partial response; store eu-1 unavailable",
			checkVerdicts: []Verdict{VerdictInconclusive, VerdictInconclusive},
			missing:       []bool{true, true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Evaluate(Samples{
				Canary: tt.canary, Stable: tt.stable, Window: window,
				CanaryWeight: tt.canaryWeight, Warnings: tt.warnings,
			}, tt.checks, tt.minRequests)
			if got.Verdict != tt.verdict {
				t.Errorf("verdict = %s, want %s", got.Verdict, tt.verdict)
			}
			if tt.contains == nil && got.Message != tt.message {
				t.Errorf("message:\n got %q\nwant %q", got.Message, tt.message)
			}
			for _, part := range tt.contains {
				if !strings.Contains(got.Message, part) {
					t.Errorf("message %q does not contain %q", got.Message, part)
				}
			}
			if got.LowTraffic != tt.lowTraffic {
				t.Errorf("LowTraffic = %v, want %v", got.LowTraffic, tt.lowTraffic)
			}
			// Evidence is what a pass needs and all an inconclusive
			// window lacks.
			if tt.verdict != VerdictFail && got.Evidence != (tt.verdict == VerdictPass) {
				t.Errorf("Evidence = %v with verdict %s", got.Evidence, tt.verdict)
			}
			if len(got.Checks) != len(tt.checks) {
				t.Fatalf("got %d check results, want %d", len(got.Checks), len(tt.checks))
			}
			for i, v := range tt.checkVerdicts {
				if got.Checks[i].Verdict != v {
					t.Errorf("check %d verdict = %s, want %s (%s)", i, got.Checks[i].Verdict, v, got.Checks[i].Message)
				}
			}
			for i, b := range tt.bounds {
				if got.Checks[i].Bound != b {
					t.Errorf("check %d bound = %q, want %q", i, got.Checks[i].Bound, b)
				}
			}
			for i, m := range tt.missing {
				if got.Checks[i].Missing != m {
					t.Errorf("check %d Missing = %v, want %v (%s)", i, got.Checks[i].Missing, m, got.Checks[i].Message)
				}
			}
			if got.CanaryRequests != tt.canary.Requests && !math.IsNaN(tt.canary.Requests) {
				t.Errorf("CanaryRequests = %v, want %v", got.CanaryRequests, tt.canary.Requests)
			}
			if got.Window != window {
				t.Errorf("Window = %v, want %v", got.Window, window)
			}
		})
	}
}

func TestEvaluateLatencyOnHistograms(t *testing.T) {
	// Stable: 2000 requests, log-normal with median 40ms and sigma 0.6.
	// Istio's buckets count 433 up to 25ms, 1290 up to 50ms, 1873 up to
	// 100ms, 1998 up to 250ms and all 2000 up to 500ms, so
	//   p50 = 25 + 25 × (1000 − 433)/(1290 − 433)   = 41.54ms,
	//   p95 = 100 + 150 × (1900 − 1873)/(1998 − 1873) = 132.4ms.
	// Against maxRatio 1.5 (T = 198.6ms) stable has 2000 − (1873 + 125 ×
	// 98.6/150) = 44.83 slower, 95% interval 1.22%–3.71%; against
	// maxIncrease 100ms on p50 (T = 141.54ms) 2000 − (1873 + 125 ×
	// 41.54/150) = 92.38 slower, 3.07%–6.59%.
	stable := timed(logNormal(2000, 40, 0.6))
	p95 := func(v policy.Check) policy.Check { v.Metric = MetricLatencyP95; return v }
	p50 := func(v policy.Check) policy.Check { v.Metric = MetricLatencyP50; return v }
	tests := []struct {
		name        string
		canary      Sample
		check       policy.Check
		minRequests int
		verdict     Verdict
		// checkVerdict is the check's own verdict, which may be
		// Inconclusive (not yet decided) in a passing window.
		checkVerdict Verdict
		bound        string
		message      string
	}{
		{
			// 18 requests from stable's distribution (one of them at
			// 126ms) and two more at 140ms and 180ms: 17 up to 100ms and 3
			// in (100ms, 250ms], so p95 = 100 + 150 × 2/3 = 200ms, 1.51×
			// stable's 132.4ms. Requests slower than 1.5 × 132.4 = 198.6ms
			// are 20 − (17 + 3 × 98.6/150) = 1.03 of 20, interval
			// 0.02%–33.31%: nowhere near confidently above 5%.
			name:         "a healthy canary with twenty requests is not rolled back because its p95 lands higher inside the same bucket as stable's",
			canary:       timed(logNormal(18, 40, 0.6), []float64{140, 180}),
			check:        p95(policy.Check{MaxRatio: ratio(1.5)}),
			minRequests:  20,
			verdict:      VerdictInconclusive,
			checkVerdict: VerdictInconclusive,
			bound:        BoundMaxRatio,
			message:      "inconclusive: latency-p95 canary 200ms (1/20 slower than 199ms, 80% interval 0.07%–27.51%) past maxRatio 1.5x by its estimate, not yet decided (stable 132ms)",
		},
		{
			// Median 250ms: 1 request up to 100ms, 10 up to 250ms, 18 up
			// to 500ms, 20 up to 1s; p95 = 500 + 500 × 1/2 = 750ms.
			// Slower than 198.6ms: 20 − (1 + 9 × 98.6/150) = 13.08 of 20,
			// interval from 31.83%: above 5% and above stable's 3.71%.
			name:         "a canary whose latency moved from 40ms to 250ms fails maxRatio with the numbers in the message",
			canary:       timed(logNormal(20, 250, 0.6)),
			check:        p95(policy.Check{MaxRatio: ratio(1.5)}),
			minRequests:  20,
			verdict:      VerdictFail,
			checkVerdict: VerdictFail,
			bound:        BoundMaxRatio,
			message:      "latency-p95 canary 750ms (13/20 slower than 199ms, 80% interval 36.84%–87.78%) > maxRatio 1.5x × stable 132ms = 199ms: 65.42% of canary requests slower vs 2.24% of stable's (stable 132ms)",
		},
		{
			// Median 200ms: 129 up to 250ms, 187 up to 500ms, 199 up to
			// 1s; p95 = 500 + 500 × 3/12 = 625ms. Slower than 300ms:
			// 200 − (129 + 58 × 50/250) = 59.4 of 200, from 19.55%.
			name:         "a canary whose p95 is clearly above max fails max",
			canary:       timed(logNormal(200, 200, 0.6)),
			check:        p95(policy.Check{Max: secs("300ms", 0.3)}),
			minRequests:  50,
			verdict:      VerdictFail,
			checkVerdict: VerdictFail,
			bound:        BoundMax,
			message:      "latency-p95 canary 625ms (59/200 slower than 300ms, 80% interval 20.72%–39.88%) > max 300ms (stable 132ms)",
		},
		{
			// 94 fast requests (all under 250ms) and 6 at 600ms: p95 =
			// 500 + 500 × 1/6 = 583ms is above max, but 6 of 100 slower
			// than 300ms reach down to 1.07% < 5%.
			name:         "a few slow requests among many fast ones do not fail max",
			canary:       timed(logNormal(94, 40, 0.6), repeat(6, 600)),
			check:        p95(policy.Check{Max: secs("300ms", 0.3)}),
			minRequests:  50,
			verdict:      VerdictInconclusive,
			checkVerdict: VerdictInconclusive,
			bound:        BoundMax,
			message:      "inconclusive: latency-p95 canary 583ms (6/100 slower than 300ms, 80% interval 1.43%–15.26%) past max 300ms by its estimate, not yet decided (stable 132ms)",
		},
		{
			// The same 6% twenty times over: 1878 up to 250ms and 2 of
			// the fast ones in (250ms, 500ms], so 2000 − (1878 + 2 × 50/250)
			// = 121.6 slower than 300ms, interval 4.28%–8.29%. A Wilson
			// interval looked at once failed this; a sequence that may be
			// looked at every interval needs more.
			name:         "the same share of slow requests among two thousand is not yet confidently above 5%",
			canary:       timed(logNormal(1880, 40, 0.6), repeat(120, 600)),
			check:        p95(policy.Check{Max: secs("300ms", 0.3)}),
			minRequests:  50,
			verdict:      VerdictInconclusive,
			checkVerdict: VerdictInconclusive,
			bound:        BoundMax,
			message:      "inconclusive: latency-p95 canary 583ms (121/2000 slower than 300ms, 80% interval 4.45%–8.04%) past max 300ms by its estimate, not yet decided (stable 132ms)",
		},
		{
			// Ten times more: 18779 fast ones up to 250ms and 21 in
			// (250ms, 500ms], so 1200 + 21 × 200/250 = 1216.8 slower than
			// 300ms, from 5.42% > 5%.
			name:         "the same share of slow requests among twenty thousand fails max",
			canary:       timed(logNormal(18800, 40, 0.6), repeat(1200, 600)),
			check:        p95(policy.Check{Max: secs("300ms", 0.3)}),
			minRequests:  50,
			verdict:      VerdictFail,
			checkVerdict: VerdictFail,
			bound:        BoundMax,
			message:      "latency-p95 canary 583ms (1216/20000 slower than 300ms, 80% interval 5.48%–6.73%) > max 300ms (stable 132ms)",
		},
		{
			// A canary answering from an empty cache: 500 requests around
			// 0.4ms, 386 of them up to 0.5ms, so p50 = 0.5 × 250/386 =
			// 324µs. None is slower than 5ms: up to 1.33% < 50%.
			name:         "min on a latency fails when the canary is clearly faster than min",
			canary:       timed(logNormal(500, 0.4, 0.3)),
			check:        p50(policy.Check{Min: secs("5ms", 0.005)}),
			minRequests:  50,
			verdict:      VerdictFail,
			checkVerdict: VerdictFail,
			bound:        BoundMin,
			message:      "latency-p50 canary 324µs (0/500 slower than 5ms, 80% interval 0%–1.05%) < min 5ms (stable 42ms)",
		},
		{
			// Same on p95: 0 of 500 slower than 5ms, up to 1.33% < 5%.
			// p95 = 0.5 + 0.5 × (475 − 386)/(499 − 386) = 894µs.
			name:         "min on p95 fails when five hundred requests are all faster than min",
			canary:       timed(logNormal(500, 0.4, 0.3)),
			check:        p95(policy.Check{Min: secs("5ms", 0.005)}),
			minRequests:  50,
			verdict:      VerdictFail,
			checkVerdict: VerdictFail,
			bound:        BoundMin,
			message:      "latency-p95 canary 894µs (0/500 slower than 5ms, 80% interval 0%–1.05%) < min 5ms (stable 132ms)",
		},
		{
			// 0 of 20 slower than 5ms reach up to 22.4%: such a canary's
			// p95 may well be above 5ms.
			name:         "min on p95 does not fail on twenty requests all faster than min",
			canary:       timed(logNormal(20, 0.4, 0.3)),
			check:        p95(policy.Check{Min: secs("5ms", 0.005)}),
			minRequests:  20,
			verdict:      VerdictInconclusive,
			checkVerdict: VerdictInconclusive,
			bound:        BoundMin,
			message:      "inconclusive: latency-p95 canary 900µs (0/20 slower than 5ms, 80% interval 0%–16.83%) past min 5ms by its estimate, not yet decided (stable 132ms)",
		},
		{
			// 1999 of 2000 slower than 5ms: from 99.48%, far above 5%.
			name:         "min passes a canary as fast as stable",
			canary:       timed(logNormal(2000, 40, 0.6)),
			check:        p95(policy.Check{Min: secs("5ms", 0.005)}),
			minRequests:  50,
			verdict:      VerdictPass,
			checkVerdict: VerdictPass,
			bound:        BoundMin,
			message:      "1 check passed: latency-p95 canary 132ms (1999/2000 slower than 5ms, 80% interval 99.56%–100%) within min 5ms (stable 132ms)",
		},
		{
			// Median 250ms, 50 requests: 3 up to 100ms, 25 up to 250ms,
			// so p50 = 250ms. Slower than 41.54 + 100 = 141.54ms:
			// 50 − (3 + 22 × 41.54/150) = 40.9 of 50, from 60.74%: above
			// 50% and above stable's 6.59%.
			name:         "a canary whose p50 rose far more than maxIncrease fails with both point estimates in the message",
			canary:       timed(logNormal(50, 250, 0.6)),
			check:        p50(policy.Check{MaxIncrease: secs("100ms", 0.1)}),
			minRequests:  20,
			verdict:      VerdictFail,
			checkVerdict: VerdictFail,
			bound:        BoundMaxIncrease,
			message:      "latency-p50 canary 250ms (40/50 slower than 142ms, 80% interval 64.1%–93.4%) > stable 42ms + maxIncrease 100ms = 142ms: 81.81% of canary requests slower vs 4.62% of stable's (stable 42ms)",
		},
		{
			// Median 150ms, 20 requests: 5 up to 100ms, 16 up to 250ms, so
			// p50 = 100 + 150 × 5/11 = 168ms, 127ms above stable. Slower
			// than 141.54ms: 20 − (5 + 11 × 41.54/150) = 11.95 of 20,
			// from 26.92% < 50%: not clearly past the bound.
			name:         "a p50 just past stable plus maxIncrease on twenty requests does not fail",
			canary:       timed(logNormal(20, 150, 0.6)),
			check:        p50(policy.Check{MaxIncrease: secs("100ms", 0.1)}),
			minRequests:  20,
			verdict:      VerdictInconclusive,
			checkVerdict: VerdictInconclusive,
			bound:        BoundMaxIncrease,
			message:      "inconclusive: latency-p50 canary 168ms (11/20 slower than 142ms, 80% interval 31.61%–83.99%) past maxIncrease 100ms by its estimate, not yet decided (stable 42ms)",
		},
		{
			// The 750ms canary's p95 is above max 700ms, but only
			// 20 − (18 + 2 × 200/500) = 1.2 of its 20 requests were slower
			// than 700ms (from 0.04% < 5%), so max is not decided and the
			// clear maxRatio failure decides.
			name:         "a point estimate just above max gives way to a clear maxRatio failure",
			canary:       timed(logNormal(20, 250, 0.6)),
			check:        p95(policy.Check{Max: secs("700ms", 0.7), MaxRatio: ratio(1.5)}),
			minRequests:  20,
			verdict:      VerdictFail,
			checkVerdict: VerdictFail,
			bound:        BoundMaxRatio,
			message:      "latency-p95 canary 750ms (13/20 slower than 199ms, 80% interval 36.84%–87.78%) > maxRatio 1.5x × stable 132ms = 199ms: 65.42% of canary requests slower vs 2.24% of stable's (stable 132ms)",
		},
		{
			// Median 120ms, three times stable's 40ms: of 300 requests
			// 114 up to 100ms and 267 up to 250ms, so p95 = 250 + 250 ×
			// 18/30 = 400ms, and 300 − (114 + 153 × 98.6/150) = 85.43
			// are slower than 198.6ms, from 20.05%: above 5% and above
			// stable's 3.71%.
			name:         "a three-fold latency shift fails maxRatio 1.5 on a few hundred requests",
			canary:       timed(logNormal(300, 120, 0.6)),
			check:        p95(policy.Check{MaxRatio: ratio(1.5)}),
			minRequests:  50,
			verdict:      VerdictFail,
			checkVerdict: VerdictFail,
			bound:        BoundMaxRatio,
			message:      "latency-p95 canary 400ms (85/300 slower than 199ms, 80% interval 21%–36.84%) > maxRatio 1.5x × stable 132ms = 199ms: 28.48% of canary requests slower vs 2.24% of stable's (stable 132ms)",
		},
		{
			// Used to be inconclusive: a canary at 60% of traffic, stable
			// at 2000 requests below minRequests 2100. Stable's interval
			// carries its uncertainty; it needs no minimum.
			name:         "relative bounds on a histogram no longer wait for stable to serve minRequests",
			canary:       timed(logNormal(3000, 250, 0.6)),
			check:        p95(policy.Check{MaxRatio: ratio(1.5)}),
			minRequests:  2100,
			verdict:      VerdictFail,
			checkVerdict: VerdictFail,
			bound:        BoundMaxRatio,
			message:      "latency-p95 canary 826ms (1948/3000 slower than 199ms, 80% interval 61.95%–67.9%) > maxRatio 1.5x × stable 132ms = 199ms: 64.96% of canary requests slower vs 2.24% of stable's (stable 132ms)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Evaluate(Samples{Canary: tt.canary, Stable: stable, Window: time.Minute}, []policy.Check{tt.check}, tt.minRequests)
			if got.Verdict != tt.verdict {
				t.Errorf("verdict = %s, want %s", got.Verdict, tt.verdict)
			}
			if got.Message != tt.message {
				t.Errorf("message:\n got %q\nwant %q", got.Message, tt.message)
			}
			c := got.Checks[0]
			if c.Verdict != tt.checkVerdict {
				t.Errorf("check verdict = %s, want %s", c.Verdict, tt.checkVerdict)
			}
			if c.Bound != tt.bound {
				t.Errorf("bound = %q, want %q", c.Bound, tt.bound)
			}
			if c.Evidence == nil {
				t.Fatal("a latency check on histograms carries no Evidence")
			}
			if c.Evidence.CanaryTotal != tt.canary.Requests || c.Evidence.StableTotal != stable.Requests {
				t.Errorf("evidence totals = %v/%v, want the histograms' %v/%v", c.Evidence.CanaryTotal, c.Evidence.StableTotal,
					tt.canary.Requests, stable.Requests)
			}
			// The result carries the point estimates, as without a
			// histogram.
			if c.Canary != tt.canary.Values[tt.check.Metric] || c.Stable != stable.Values[tt.check.Metric] {
				t.Errorf("values = %v/%v, want the point quantiles %v/%v", c.Canary, c.Stable,
					tt.canary.Values[tt.check.Metric], stable.Values[tt.check.Metric])
			}
		})
	}
}

// The healthy twenty-request canary above is the one that used to be rolled
// back: the same point estimates without a histogram fail maxRatio 1.5.
func TestEvaluateLatencyWithoutHistogramComparesPointEstimates(t *testing.T) {
	stable := timed(logNormal(2000, 40, 0.6))
	canary := timed(logNormal(18, 40, 0.6), []float64{140, 180})
	check := []policy.Check{{Metric: MetricLatencyP95, MaxRatio: ratio(1.5)}}
	// With histograms it does not fail: the one slow request puts its
	// estimate just past the bound, so the stage waits for more evidence.
	if r := Evaluate(Samples{Canary: canary, Stable: stable, Window: time.Minute}, check, 20); r.Verdict != VerdictInconclusive || !r.AwaitingEvidence {
		t.Fatalf("with histograms: %s %q, want Inconclusive awaiting evidence", r.Verdict, r.Message)
	}
	canary.Latency, stable.Latency = nil, nil
	got := Evaluate(Samples{Canary: canary, Stable: stable, Window: time.Minute}, check, 20)
	const msg = "latency-p95 canary 200ms is 1.511x stable 132ms > maxRatio 1.5x"
	if got.Verdict != VerdictFail || got.Message != msg {
		t.Errorf("without histograms: %s %q, want Fail %q", got.Verdict, got.Message, msg)
	}
}

func TestEvaluateCheckResultCarriesValuesAndThreshold(t *testing.T) {
	got := Evaluate(Samples{
		Canary: served(500, 25, MetricLatencyP95, 0.13),
		Stable: served(5000, 10, MetricLatencyP95, 0.1),
		Window: time.Minute,
	}, []policy.Check{
		{Metric: MetricErrorRate, Max: pct("1%", 0.01)},
		{Metric: MetricLatencyP95, MaxRatio: ratio(1.2)},
		{Metric: MetricRequestRate, Min: num("1", 1)},
	}, 50)
	want := []CheckResult{
		{Metric: MetricErrorRate, Canary: 0.05, Stable: 0.002, Bound: BoundMax, Threshold: "1%", Verdict: VerdictFail,
			Message: "error-rate canary 5% (25/500, 80% interval 2.51%–8.67%) > max 1% (stable 0.2% (10/5000, 80% interval 0.05%–0.51%))"},
		{Metric: MetricLatencyP95, Canary: 0.13, Stable: 0.1, Bound: BoundMaxRatio, Threshold: "1.2x", Verdict: VerdictFail,
			Message: "latency-p95 canary 130ms is 1.3x stable 100ms > maxRatio 1.2x"},
		{Metric: MetricRequestRate, Canary: 500.0 / 60, Stable: 5000.0 / 60, Bound: BoundMin, Threshold: "1", Verdict: VerdictPass,
			Message: "request-rate canary 8.333/s within min 1 (stable 83.33/s)"},
	}
	// Shares carry their counts and intervals; point values carry none.
	wantEvidence := []*Evidence{
		{
			Counted:     "5xx",
			CanaryCount: 25, CanaryTotal: 500,
			StableCount: 10, StableTotal: 5000,
			Canary: ShareInterval(25, 500), Stable: ShareInterval(10, 5000),
			Limit: 0.01, Score: EvidenceAbove(25, 500, 0.01),
		},
		nil,
		nil,
	}
	if len(got.Checks) != len(want) {
		t.Fatalf("got %d checks, want %d", len(got.Checks), len(want))
	}
	for i := range want {
		c := got.Checks[i]
		ev := c.Evidence
		c.Evidence = nil
		if c != want[i] {
			t.Errorf("check %d:\n got %+v\nwant %+v", i, c, want[i])
		}
		switch {
		case (ev == nil) != (wantEvidence[i] == nil):
			t.Errorf("check %d evidence = %+v, want %+v", i, ev, wantEvidence[i])
		case ev != nil && *ev != *wantEvidence[i]:
			t.Errorf("check %d evidence:\n got %+v\nwant %+v", i, *ev, *wantEvidence[i])
		}
	}
}

func TestEvaluateBelowMinRequestsStillReportsValues(t *testing.T) {
	// 1 of 12 reaches down to 0.035%: not confidently above 1%, and too
	// few requests to pass on.
	got := Evaluate(Samples{
		Canary: served(12, 1),
		Stable: served(1200, 0),
		Window: 30 * time.Second,
	}, []policy.Check{{Metric: MetricErrorRate, Max: pct("1%", 0.01)}}, 50)
	if got.Verdict != VerdictInconclusive || !got.LowTraffic || got.Evidence {
		t.Errorf("got %s LowTraffic=%v Evidence=%v, want Inconclusive for low traffic", got.Verdict, got.LowTraffic, got.Evidence)
	}
	c := got.Checks[0]
	if c.Canary != 1.0/12 || c.Stable != 0 || c.Verdict != VerdictInconclusive || c.Missing {
		t.Errorf("got %+v, want canary 1/12, stable 0, inconclusive and not missing", c)
	}
	const msg = "error-rate canary 8.33% (1/12, 80% interval 0.14%–40.22%) past max 1% by its estimate, not yet decided (stable 0% (0/1200, 80% interval 0%–0.48%))"
	if c.Message != msg {
		t.Errorf("message:\n got %q\nwant %q", c.Message, msg)
	}
	if c.Evidence == nil || c.Evidence.CanaryCount != 1 || c.Evidence.CanaryTotal != 12 {
		t.Errorf("evidence = %+v, want 1 of 12 counted", c.Evidence)
	}
}

func TestThresholds(t *testing.T) {
	got := Thresholds([]policy.Check{
		{Metric: MetricErrorRate, Max: pct("1%", 0.01), MaxIncrease: pct("0.5%", 0.005)},
		{Metric: MetricLatencyP95, Min: secs("1ms", 0.001), MaxRatio: ratio(1.2)},
	})
	want := []Threshold{
		{MetricErrorRate, BoundMax, 0.01},
		{MetricErrorRate, BoundMaxIncrease, 0.005},
		{MetricLatencyP95, BoundMin, 0.001},
		{MetricLatencyP95, BoundMaxRatio, 1.2},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("threshold %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestFormatting(t *testing.T) {
	tests := []struct {
		name, metric string
		v            float64
		want         string
	}{
		{"shares keep up to two decimals", MetricErrorRate, 0.048, "4.8%"},
		{"a quarter percent keeps both decimals", MetricErrorRate, 0.0025, "0.25%"},
		{"long shares are rounded", MetricErrorRate, 1.0 / 60, "1.67%"},
		{"tiny shares do not read as zero", MetricErrorRate, 0.00001, "0.001%"},
		{"latencies are Go durations", MetricLatencyP95, 0.08, "80ms"},
		{"seconds keep a decimal", MetricLatencyP99, 2.1, "2.1s"},
		{"milliseconds are rounded", MetricLatencyP50, 0.0781234, "78ms"},
		{"fast latencies keep precision", MetricLatencyP50, 0.00153, "1.5ms"},
		{"request-rate is per second", MetricRequestRate, 12.5, "12.5/s"},
		{"custom metrics are plain numbers", "apdex", 0.993, "0.993"},
		{"large plain numbers have no exponent", "bytes", 123456.7, "123457"},
		{"no data is said so", MetricLatencyP95, math.NaN(), "no data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FormatValue(tt.metric, tt.v); got != tt.want {
				t.Errorf("FormatValue(%s, %v) = %q, want %q", tt.metric, tt.v, got, tt.want)
			}
		})
	}
}

func TestThresholdTextFallsBackToTheMetricsUnitWhenNotWrittenByAUser(t *testing.T) {
	got := Evaluate(Samples{
		Canary: served(500, 0, MetricLatencyP95, 0.3),
		Stable: served(5000, 0, MetricLatencyP95, 0.1),
		Window: time.Minute,
	}, []policy.Check{{Metric: MetricLatencyP95, Max: &policy.Value{Number: 0.25}}}, 50)
	const msg = "latency-p95 canary 300ms > max 250ms (stable 100ms)"
	if c := got.Checks[0]; c.Threshold != "250ms" || c.Message != msg {
		t.Errorf("got threshold %q message %q, want 250ms and %q", c.Threshold, c.Message, msg)
	}
}
