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
// other metrics given as name, value pairs.
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
			if got := formatValue(tt.metric, tt.v); got != tt.want {
				t.Errorf("formatValue(%s, %v) = %q, want %q", tt.metric, tt.v, got, tt.want)
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
