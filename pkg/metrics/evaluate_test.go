package metrics

import (
	"math"
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
		name        string
		canary      Sample
		stable      Sample
		checks      []policy.Check
		minRequests int
		verdict     Verdict
		message     string
		// checkVerdicts and bounds, when set, are asserted per check.
		checkVerdicts []Verdict
		bounds        []string
	}{
		{
			name:          "one 503 among sixty requests is noise, not a regression",
			canary:        served(60, 1),
			stable:        served(1000, 1),
			checks:        []policy.Check{errorRateMax1},
			minRequests:   50,
			verdict:       VerdictPass,
			message:       "1 check passed: error-rate canary 1.67% (stable 0.1%)",
			checkVerdicts: []Verdict{VerdictPass},
			bounds:        []string{BoundMax},
		},
		{
			name:          "twenty-five errors in five hundred requests fail max 1% with the lower bound in the message",
			canary:        served(500, 25),
			stable:        served(5000, 10),
			checks:        []policy.Check{errorRateMax1},
			minRequests:   50,
			verdict:       VerdictFail,
			message:       "error-rate canary 5% (95% lower bound 3.62%) > max 1% (stable 0.2%)",
			checkVerdicts: []Verdict{VerdictFail},
			bounds:        []string{BoundMax},
		},
		{
			name:          "a canary below minRequests is inconclusive even with errors",
			canary:        served(12, 12),
			stable:        served(1200, 0),
			checks:        []policy.Check{errorRateMax1},
			minRequests:   50,
			verdict:       VerdictInconclusive,
			message:       "inconclusive: canary served 12 requests < minRequests 50",
			checkVerdicts: []Verdict{VerdictInconclusive},
			bounds:        []string{""},
		},
		{
			name:        "fractional request counts are rounded down so the message stays true",
			canary:      served(49.7, 0),
			stable:      served(1000, 0),
			checks:      []policy.Check{errorRateMax1},
			minRequests: 50,
			verdict:     VerdictInconclusive,
			message:     "inconclusive: canary served 49 requests < minRequests 50",
		},
		{
			name:        "a canary without any data is inconclusive",
			canary:      served(nan, nan),
			stable:      served(1000, 0),
			checks:      []policy.Check{errorRateMax1},
			minRequests: 50,
			verdict:     VerdictInconclusive,
			message:     "inconclusive: no data for canary requests",
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
			message:       "1 check passed: latency-p95 canary 110ms (stable 100ms)",
			checkVerdicts: []Verdict{VerdictPass},
			bounds:        []string{BoundMaxRatio},
		},
		{
			name:   "canary at 100% with no stable traffic passes on absolute bounds",
			canary: served(3000, 3, MetricLatencyP95, 0.080),
			stable: served(0, 0),
			checks: []policy.Check{
				{Metric: MetricErrorRate, Max: pct("1%", 0.01), MaxIncrease: pct("0.5%", 0.005)},
				{Metric: MetricLatencyP95, MaxRatio: ratio(1.2)},
			},
			minRequests:   50,
			verdict:       VerdictPass,
			message:       "all 2 checks passed: error-rate canary 0.1% (stable served no requests), latency-p95 canary 80ms (stable served no requests)",
			checkVerdicts: []Verdict{VerdictPass, VerdictPass},
			bounds:        []string{BoundMax, ""},
		},
		{
			name:   "canary at 100% with no stable traffic still fails its absolute bounds",
			canary: served(3000, 300),
			stable: served(0, 0),
			checks: []policy.Check{
				{Metric: MetricErrorRate, Max: pct("1%", 0.01), MaxRatio: ratio(2)},
			},
			minRequests: 50,
			verdict:     VerdictFail,
			message:     "error-rate canary 10% (95% lower bound 9.13%) > max 1% (stable served no requests)",
		},
		{
			name:   "a relative-only check is inconclusive when stable served too few requests",
			canary: served(500, 0, MetricLatencyP99, 0.250),
			stable: served(20, 0, MetricLatencyP99, 0.100),
			checks: []policy.Check{
				{Metric: MetricLatencyP99, MaxIncrease: secs("100ms", 0.1), MaxRatio: ratio(1.5)},
			},
			minRequests:   50,
			verdict:       VerdictInconclusive,
			message:       "inconclusive: latency-p99 canary 250ms: maxIncrease and maxRatio not applicable, stable served 20 requests < minRequests 50",
			checkVerdicts: []Verdict{VerdictInconclusive},
			bounds:        []string{""},
		},
		{
			name:   "stable below minRequests leaves the decision to the absolute bounds",
			canary: served(500, 0, MetricLatencyP99, 0.250),
			stable: served(20, 0, MetricLatencyP99, 0.100),
			checks: []policy.Check{
				{Metric: MetricLatencyP99, Max: secs("1s", 1), MaxRatio: ratio(1.5)},
			},
			minRequests:   50,
			verdict:       VerdictPass,
			message:       "1 check passed: latency-p99 canary 250ms (stable 100ms)",
			checkVerdicts: []Verdict{VerdictPass},
			bounds:        []string{BoundMax},
		},
		{
			name:   "maxRatio is not applicable when stable's value is zero",
			canary: served(500, 1),
			stable: served(5000, 0),
			checks: []policy.Check{
				{Metric: MetricErrorRate, MaxRatio: ratio(2)},
			},
			minRequests:   50,
			verdict:       VerdictInconclusive,
			message:       "inconclusive: error-rate canary 0.2%: maxRatio not applicable, stable is 0%",
			checkVerdicts: []Verdict{VerdictInconclusive},
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
			message:       "inconclusive: latency-p95 canary has no data (stable 100ms)",
			checkVerdicts: []Verdict{VerdictPass, VerdictInconclusive},
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
			message:       "error-rate canary 20% (95% lower bound 17.22%) > max 1% (stable 0.1%)",
			checkVerdicts: []Verdict{VerdictInconclusive, VerdictFail},
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
			message:     "error-rate canary 20% (95% lower bound 17.22%) > max 1% (stable 0.1%); latency-p95 canary 900ms > max 300ms (stable 100ms)",
		},
		{
			name:   "three errors in a hundred stay within maxIncrease 1% of a clean stable given the sample size",
			canary: served(100, 3),
			stable: served(1000, 1),
			checks: []policy.Check{
				{Metric: MetricErrorRate, MaxIncrease: pct("1%", 0.01)},
			},
			minRequests:   50,
			verdict:       VerdictPass,
			message:       "1 check passed: error-rate canary 3% (stable 0.1%)",
			checkVerdicts: []Verdict{VerdictPass},
			bounds:        []string{BoundMaxIncrease},
		},
		{
			name:   "thirty errors in a thousand exceed maxIncrease 1% over stable's upper bound",
			canary: served(1000, 30),
			stable: served(1000, 1),
			checks: []policy.Check{
				{Metric: MetricErrorRate, MaxIncrease: pct("1%", 0.01)},
			},
			minRequests: 50,
			verdict:     VerdictFail,
			message:     "error-rate canary 3% (95% lower bound 2.23%) > stable 0.1% (95% upper bound 0.45%) + maxIncrease 1%",
			bounds:      []string{BoundMaxIncrease},
		},
		{
			name:   "success-rate below min fails only because its upper bound is below min too",
			canary: served(1000, 50),
			stable: served(5000, 5),
			checks: []policy.Check{
				{Metric: MetricSuccessRate, Min: pct("99%", 0.99)},
			},
			minRequests: 50,
			verdict:     VerdictFail,
			message:     "success-rate canary 95% (95% upper bound 96.02%) < min 99% (stable 99.9%)",
		},
		{
			name:   "success-rate a little below min on a small sample passes",
			canary: served(100, 2),
			stable: served(5000, 5),
			checks: []policy.Check{
				{Metric: MetricSuccessRate, Min: pct("99%", 0.99)},
			},
			minRequests: 50,
			verdict:     VerdictPass,
			message:     "1 check passed: success-rate canary 98% (stable 99.9%)",
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
			message:     "1 check passed: latency-p50 canary 300ms (stable 100ms)",
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
			name:   "all passing checks are listed in the summary",
			canary: served(1000, 1, MetricLatencyP95, 0.080),
			stable: served(9000, 9, MetricLatencyP95, 0.078),
			checks: []policy.Check{
				errorRateMax1,
				{Metric: MetricLatencyP95, MaxRatio: ratio(1.2)},
			},
			minRequests: 50,
			verdict:     VerdictPass,
			message:     "all 2 checks passed: error-rate canary 0.1% (stable 0.1%), latency-p95 canary 80ms (stable 78ms)",
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
			name:        "a canary that served nothing with minRequests zero is inconclusive on its shares",
			canary:      served(0, 0),
			stable:      served(1000, 0),
			checks:      []policy.Check{errorRateMax1},
			minRequests: 0,
			verdict:     VerdictInconclusive,
			message:     "inconclusive: error-rate canary has no data (stable 0%)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Evaluate(Samples{Canary: tt.canary, Stable: tt.stable, Window: window}, tt.checks, tt.minRequests)
			if got.Verdict != tt.verdict {
				t.Errorf("verdict = %s, want %s", got.Verdict, tt.verdict)
			}
			if got.Message != tt.message {
				t.Errorf("message:\n got %q\nwant %q", got.Message, tt.message)
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
	stable := timed(logNormal(2000, 40, 0.6))
	p95 := func(v policy.Check) policy.Check { v.Metric = MetricLatencyP95; return v }
	p50 := func(v policy.Check) policy.Check { v.Metric = MetricLatencyP50; return v }
	tests := []struct {
		name        string
		canary      Sample
		check       policy.Check
		minRequests int
		verdict     Verdict
		bound       string
		message     string
	}{
		{
			// 18 requests from stable's distribution (one of them at
			// 126ms) and two more at 140ms and 180ms: 17 up to 100ms and 3
			// in (100ms, 250ms], so p95 = 100 + 150 × 2/3 = 200ms, 1.51×
			// stable's 132.4ms. Requests slower than 1.5 × 132.4 = 198.6ms
			// are 20 − (17 + 3 × 98.6/150) = 1.03 of 20, whose Wilson
			// lower bound 0.012 is far below 5%.
			name:        "a healthy canary with twenty requests is not rolled back because its p95 lands higher inside the same bucket as stable's",
			canary:      timed(logNormal(18, 40, 0.6), []float64{140, 180}),
			check:       p95(policy.Check{MaxRatio: ratio(1.5)}),
			minRequests: 20,
			verdict:     VerdictPass,
			bound:       BoundMaxRatio,
			message:     "1 check passed: latency-p95 canary 200ms (stable 132ms)",
		},
		{
			// Median 250ms: 1 request up to 100ms, 10 up to 250ms, 18 up
			// to 500ms, 20 up to 1s; p95 = 500 + 500 × 1/2 = 750ms.
			// Slower than 198.6ms: 20 − (1 + 9 × 98.6/150) = 13.08 of 20,
			// Wilson lower bound 0.47 > 5%.
			name:        "a canary whose latency moved from 40ms to 250ms fails maxRatio with the numbers in the message",
			canary:      timed(logNormal(20, 250, 0.6)),
			check:       p95(policy.Check{MaxRatio: ratio(1.5)}),
			minRequests: 20,
			verdict:     VerdictFail,
			bound:       BoundMaxRatio,
			message:     "latency-p95 canary 750ms is 5.665x stable 132ms > maxRatio 1.5x",
		},
		{
			// Median 200ms: 129 up to 250ms, 187 up to 500ms, 199 up to
			// 1s; p95 = 500 + 500 × 3/12 = 625ms. Slower than 300ms:
			// 200 − (129 + 58 × 50/250) = 59.4 of 200, lower bound 0.25.
			name:        "a canary whose p95 is clearly above max fails max",
			canary:      timed(logNormal(200, 200, 0.6)),
			check:       p95(policy.Check{Max: secs("300ms", 0.3)}),
			minRequests: 50,
			verdict:     VerdictFail,
			bound:       BoundMax,
			message:     "latency-p95 canary 625ms > max 300ms (stable 132ms)",
		},
		{
			// 94 fast requests (all under 250ms) and 6 at 600ms: p95 =
			// 500 + 500 × 1/6 = 583ms is above max, but 6 of 100 slower
			// than 300ms has a Wilson lower bound of 0.031 < 5%.
			name:        "a few slow requests among many fast ones do not fail max",
			canary:      timed(logNormal(94, 40, 0.6), repeat(6, 600)),
			check:       p95(policy.Check{Max: secs("300ms", 0.3)}),
			minRequests: 50,
			verdict:     VerdictPass,
			bound:       BoundMax,
			message:     "1 check passed: latency-p95 canary 583ms (stable 132ms)",
		},
		{
			// The same 6% twenty times over: 1878 up to 250ms and 2 of
			// the fast ones in (250ms, 500ms], so 2000 − (1878 + 2 × 50/250)
			// = 121.6 slower than 300ms, Wilson lower bound 0.0526 > 5%.
			name:        "the same share of slow requests among two thousand fails max",
			canary:      timed(logNormal(1880, 40, 0.6), repeat(120, 600)),
			check:       p95(policy.Check{Max: secs("300ms", 0.3)}),
			minRequests: 50,
			verdict:     VerdictFail,
			bound:       BoundMax,
			message:     "latency-p95 canary 583ms > max 300ms (stable 132ms)",
		},
		{
			// A canary answering from an empty cache: 500 requests around
			// 0.4ms, 386 of them up to 0.5ms, so p50 = 0.5 × 250/386 =
			// 324µs. None is slower than 5ms; the Wilson upper bound of
			// 0 of 500 is 0.0054 < 50%.
			name:        "min on a latency fails when the canary is clearly faster than min",
			canary:      timed(logNormal(500, 0.4, 0.3)),
			check:       p50(policy.Check{Min: secs("5ms", 0.005)}),
			minRequests: 50,
			verdict:     VerdictFail,
			bound:       BoundMin,
			message:     "latency-p50 canary 324µs < min 5ms (stable 42ms)",
		},
		{
			// Same on p95: 0 of 500 slower than 5ms, upper bound 0.0054
			// < 5%. p95 = 0.5 + 0.5 × (475 − 386)/(499 − 386) = 894µs.
			name:        "min on p95 fails when five hundred requests are all faster than min",
			canary:      timed(logNormal(500, 0.4, 0.3)),
			check:       p95(policy.Check{Min: secs("5ms", 0.005)}),
			minRequests: 50,
			verdict:     VerdictFail,
			bound:       BoundMin,
			message:     "latency-p95 canary 894µs < min 5ms (stable 132ms)",
		},
		{
			// 0 of 20 slower than 5ms has a Wilson upper bound of 0.119:
			// up to 12% of such a canary's requests could be slower, so
			// its p95 may well be above 5ms.
			name:        "min on p95 does not fail on twenty requests all faster than min",
			canary:      timed(logNormal(20, 0.4, 0.3)),
			check:       p95(policy.Check{Min: secs("5ms", 0.005)}),
			minRequests: 20,
			verdict:     VerdictPass,
			bound:       BoundMin,
			message:     "1 check passed: latency-p95 canary 900µs (stable 132ms)",
		},
		{
			name:        "min passes a canary as fast as stable",
			canary:      timed(logNormal(2000, 40, 0.6)),
			check:       p95(policy.Check{Min: secs("5ms", 0.005)}),
			minRequests: 50,
			verdict:     VerdictPass,
			bound:       BoundMin,
			message:     "1 check passed: latency-p95 canary 132ms (stable 132ms)",
		},
		{
			// Median 250ms, 50 requests: 3 up to 100ms, 25 up to 250ms,
			// so p50 = 250ms. Slower than 41.54 + 100 = 141.54ms:
			// 50 − (3 + 22 × 41.54/150) = 40.9 of 50, lower bound 0.71 >
			// 50%.
			name:        "a canary whose p50 rose far more than maxIncrease fails with both point estimates in the message",
			canary:      timed(logNormal(50, 250, 0.6)),
			check:       p50(policy.Check{MaxIncrease: secs("100ms", 0.1)}),
			minRequests: 20,
			verdict:     VerdictFail,
			bound:       BoundMaxIncrease,
			message:     "latency-p50 canary 250ms > stable 42ms + maxIncrease 100ms",
		},
		{
			// Median 150ms, 20 requests: 5 up to 100ms, 16 up to 250ms, so
			// p50 = 100 + 150 × 5/11 = 168ms, 127ms above stable. Slower
			// than 141.54ms: 20 − (5 + 11 × 41.54/150) = 11.95 of 20,
			// lower bound 0.42 < 50%: not clearly past the bound.
			name:        "a p50 just past stable plus maxIncrease on twenty requests passes",
			canary:      timed(logNormal(20, 150, 0.6)),
			check:       p50(policy.Check{MaxIncrease: secs("100ms", 0.1)}),
			minRequests: 20,
			verdict:     VerdictPass,
			bound:       BoundMaxIncrease,
			message:     "1 check passed: latency-p50 canary 168ms (stable 42ms)",
		},
		{
			// The 750ms canary's p95 is above max 700ms, but only
			// 20 − (18 + 2 × 200/500) = 1.2 of its 20 requests were slower
			// than 700ms (lower bound 0.015 < 5%), so max passes and the
			// clear maxRatio failure decides.
			name:        "a point estimate just above max gives way to a clear maxRatio failure",
			canary:      timed(logNormal(20, 250, 0.6)),
			check:       p95(policy.Check{Max: secs("700ms", 0.7), MaxRatio: ratio(1.5)}),
			minRequests: 20,
			verdict:     VerdictFail,
			bound:       BoundMaxRatio,
			message:     "latency-p95 canary 750ms is 5.665x stable 132ms > maxRatio 1.5x",
		},
		{
			// A canary at 60% of traffic, stable at 2000 requests below
			// minRequests 2100.
			name:        "relative bounds on a histogram still need enough stable requests",
			canary:      timed(logNormal(3000, 250, 0.6)),
			check:       p95(policy.Check{MaxRatio: ratio(1.5)}),
			minRequests: 2100,
			verdict:     VerdictInconclusive,
			message:     "inconclusive: latency-p95 canary 826ms: maxRatio not applicable, stable served 2000 requests < minRequests 2100",
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
			if c.Bound != tt.bound {
				t.Errorf("bound = %q, want %q", c.Bound, tt.bound)
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
	if r := Evaluate(Samples{Canary: canary, Stable: stable, Window: time.Minute}, check, 20); r.Verdict != VerdictPass {
		t.Fatalf("with histograms: %s %q, want Pass", r.Verdict, r.Message)
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
			Message: "error-rate canary 5% (95% lower bound 3.62%) > max 1% (stable 0.2%)"},
		{Metric: MetricLatencyP95, Canary: 0.13, Stable: 0.1, Bound: BoundMaxRatio, Threshold: "1.2x", Verdict: VerdictFail,
			Message: "latency-p95 canary 130ms is 1.3x stable 100ms > maxRatio 1.2x"},
		{Metric: MetricRequestRate, Canary: 500.0 / 60, Stable: 5000.0 / 60, Bound: BoundMin, Threshold: "1", Verdict: VerdictPass,
			Message: "request-rate canary 8.333/s (stable 83.33/s)"},
	}
	if len(got.Checks) != len(want) {
		t.Fatalf("got %d checks, want %d", len(got.Checks), len(want))
	}
	for i := range want {
		if got.Checks[i] != want[i] {
			t.Errorf("check %d:\n got %+v\nwant %+v", i, got.Checks[i], want[i])
		}
	}
}

func TestEvaluateWithoutCanaryTrafficStillReportsValues(t *testing.T) {
	got := Evaluate(Samples{
		Canary: served(12, 12),
		Stable: served(1200, 0),
		Window: 30 * time.Second,
	}, []policy.Check{{Metric: MetricErrorRate, Max: pct("1%", 0.01)}}, 50)
	c := got.Checks[0]
	if c.Canary != 1 || c.Stable != 0 || c.Verdict != VerdictInconclusive {
		t.Errorf("got %+v, want canary 1, stable 0, inconclusive", c)
	}
	const msg = "error-rate canary 100% (stable 0%) not judged: canary served 12 requests < minRequests 50"
	if c.Message != msg {
		t.Errorf("message:\n got %q\nwant %q", c.Message, msg)
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

func TestShareIntervalMatchesWilson(t *testing.T) {
	// Reference values computed by hand from the Wilson formula, z = 1.645.
	tests := []struct {
		name             string
		requests, errors float64
		lo, hi           float64
	}{
		{"one error in sixty", 60, 1, 0.00373, 0.07132},
		{"twenty-five errors in five hundred", 500, 25, 0.03625, 0.06860},
		{"no errors in a thousand still leaves room above zero", 1000, 0, 0, 0.00270},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lo, hi := shareInterval(served(tt.requests, tt.errors), MetricErrorRate)
			if math.Abs(lo-tt.lo) > 5e-5 || math.Abs(hi-tt.hi) > 5e-5 {
				t.Errorf("interval = [%.5f, %.5f], want [%.5f, %.5f]", lo, hi, tt.lo, tt.hi)
			}
			slo, shi := shareInterval(served(tt.requests, tt.errors), MetricSuccessRate)
			if math.Abs(slo-(1-hi)) > 1e-12 || math.Abs(shi-(1-lo)) > 1e-12 {
				t.Errorf("success interval = [%v, %v], want the error interval mirrored", slo, shi)
			}
		})
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
