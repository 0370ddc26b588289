package metrics

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/meshcanary/meshcanary/pkg/policy"
	"github.com/meshcanary/meshcanary/pkg/stages"
)

// A stable series that is absent while stable should be serving is
// missing data: relative bounds cannot be judged, and no canary, however
// good or bad its own numbers, passes a window on absolute bounds alone.
func TestEvaluateMissingStableKeepsTheWindowFromPassing(t *testing.T) {
	// 1000 clean requests, 873 at 500ms and 127 at 2s: rank 950 is the
	// 77th of the 127 in (1s, 2.5s], so p95 = 1 + 1.5 × 77/127 = 1.91s.
	slow := timed(repeat(873, 500), repeat(127, 2000))
	fast := timed(logNormal(1000, 40, 0.6))
	tests := []struct {
		name    string
		canary  Sample
		weight  int
		verdict Verdict
		message string
		missing bool
	}{
		{
			name:    "a canary with p95 1.91s at 10% of traffic without stable's series must not pass the default checks",
			canary:  slow,
			weight:  10,
			verdict: VerdictInconclusive,
			message: "inconclusive: error-rate canary 0% (0/1000, 80% interval 0%–0.56%): maxIncrease not judged, stable has no requests while the canary has 10% of traffic; " +
				"latency-p95 canary 1.91s: maxRatio not judged, stable has no requests while the canary has 10% of traffic",
			missing: true,
		},
		{
			name:    "a clean, fast canary at 50% of traffic without stable's series is still inconclusive",
			canary:  fast,
			weight:  50,
			verdict: VerdictInconclusive,
			message: "inconclusive: error-rate canary 0% (0/1000, 80% interval 0%–0.56%): maxIncrease not judged, stable has no requests while the canary has 50% of traffic; " +
				"latency-p95 canary 131ms: maxRatio not judged, stable has no requests while the canary has 50% of traffic",
			missing: true,
		},
		{
			name:    "a canary at 99% of traffic still needs stable's series",
			canary:  fast,
			weight:  99,
			verdict: VerdictInconclusive,
			message: "inconclusive: error-rate canary 0% (0/1000, 80% interval 0%–0.56%): maxIncrease not judged, stable has no requests while the canary has 99% of traffic; " +
				"latency-p95 canary 131ms: maxRatio not judged, stable has no requests while the canary has 99% of traffic",
			missing: true,
		},
		{
			// Only at 100% is a silent stable expected; the default
			// checks then hold the canary to max 5% alone.
			name:    "at 100% of traffic the same slow canary is judged on absolute bounds only",
			canary:  slow,
			weight:  100,
			verdict: VerdictPass,
			message: "all 2 checks passed: error-rate canary 0% (0/1000, 80% interval 0%–0.56%) within max 5% (stable served no requests), " +
				"latency-p95 canary 1.91s within its absolute bounds (none; relative bounds dropped) (stable served no requests)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Evaluate(Samples{Canary: tt.canary, Window: time.Minute, CanaryWeight: tt.weight}, policy.DefaultChecks(), policy.DefaultMinRequests)
			if got.Verdict != tt.verdict || got.Message != tt.message {
				t.Errorf("got %s %q\nwant %s %q", got.Verdict, got.Message, tt.verdict, tt.message)
			}
			if got.Evidence != (tt.verdict == VerdictPass) {
				t.Errorf("Evidence = %v, want %v", got.Evidence, tt.verdict == VerdictPass)
			}
			if got.LowTraffic {
				t.Error("LowTraffic on 1000 canary requests")
			}
			for _, c := range got.Checks {
				if c.Missing != tt.missing {
					t.Errorf("%s Missing = %v, want %v", c.Metric, c.Missing, tt.missing)
				}
			}
		})
	}
}

// For maxRatio and maxIncrease on a latency, T comes from stable's point
// quantile. When stable's few requests put that quantile low by chance,
// the canary's share slower than T is high, but so may stable's be: the
// canary fails only when its share is confidently above stable's as well
// as above 1 − Q.
func TestEvaluateRelativeLatencyAgainstANoisyStable(t *testing.T) {
	// Stable: 40 requests, only one of them slower than 100ms: 10 at
	// 20ms, 20 at 40ms, 9 at 80ms and 1 at 200ms. p95 = 50 + 50 × 8/9 =
	// 94.4ms, so T = 1.5 × 94.4 = 141.7ms, and 1 × (250 − 141.7)/150 =
	// 0.72 of stable's 40 are slower than T: up to 17.32%.
	stable := timed(repeat(10, 20), repeat(20, 40), repeat(9, 80), repeat(1, 200))
	check := []policy.Check{{Metric: MetricLatencyP95, MaxRatio: ratio(1.5)}}
	tests := []struct {
		name         string
		canary       Sample
		verdict      Verdict
		checkVerdict Verdict
		message      string
	}{
		{
			// The canary's 4000 requests have an eighth above 100ms, as
			// stable's population likely has too: p95 = 100 + 150 ×
			// 300/500 = 190ms, 2× stable's estimate, and 500 × 108.3/150 =
			// 361 slower than T, from 7.39%: confidently above 5% but
			// not above stable's 17.32%.
			name:         "a canary like stable is not failed because stable's p95 came out low by chance",
			canary:       timed(repeat(1000, 20), repeat(1800, 40), repeat(700, 80), repeat(500, 200)),
			verdict:      VerdictPass,
			checkVerdict: VerdictInconclusive,
			message:      "no check failing: latency-p95 canary 190ms (361/4000 slower than 142ms, 80% interval 7.54%–10.68%) not yet decided against maxRatio 1.5x (stable 94ms)",
		},
		{
			// Half of 400 above 100ms: 200 × 108.3/150 = 144.4 slower
			// than T, from 27.99%, above 5% and above 17.32%.
			name:         "a canary clearly slower than even a noisy stable still fails",
			canary:       timed(repeat(40, 20), repeat(80, 40), repeat(80, 80), repeat(200, 200)),
			verdict:      VerdictFail,
			checkVerdict: VerdictFail,
			message:      "latency-p95 canary 235ms (144/400 slower than 142ms, 80% interval 28.91%–43.76%) > maxRatio 1.5x × stable 94ms = 142ms: 36.11% of canary requests slower vs 1.81% of stable's (stable 94ms)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Evaluate(Samples{Canary: tt.canary, Stable: stable, Window: time.Minute, CanaryWeight: 10}, check, 50)
			if got.Verdict != tt.verdict || got.Message != tt.message {
				t.Errorf("got %s %q\nwant %s %q", got.Verdict, got.Message, tt.verdict, tt.message)
			}
			c := got.Checks[0]
			if c.Verdict != tt.checkVerdict {
				t.Errorf("check verdict = %s, want %s", c.Verdict, tt.checkVerdict)
			}
			// The comparison with stable is what decides: on its own,
			// the canary's share is confidently above 1 − Q in both.
			ev := c.Evidence
			if ev == nil {
				t.Fatal("no evidence")
			}
			if !(ev.Canary.Lo > 0.05) {
				t.Errorf("canary's share from %v is not above 5%%: the case does not test the comparison with stable", ev.Canary.Lo)
			}
			if math.Abs(ev.StableCount-0.72222) > 1e-4 || ev.StableTotal != 40 {
				t.Errorf("stable's count = %v of %v, want 0.722 of 40", ev.StableCount, ev.StableTotal)
			}
		})
	}
}

func TestForecast(t *testing.T) {
	// 1000 requests in 100s: 10 per second in all. The upper end of
	// stable's interval is 0.1%, so error-rate max 5% and maxIncrease 1%
	// fail the canary only above 1.1%.
	res := Result{
		Window:         100 * time.Second,
		CanaryRequests: 100,
		StableRequests: 900,
		Checks: []CheckResult{{Metric: MetricErrorRate, Canary: 0.01, Stable: 0.0005,
			Evidence: &Evidence{Stable: Interval{Lo: 0.0001, Hi: 0.001}}}},
	}
	steps := []stages.Step{
		{Weight: 1, Duration: 5 * time.Minute},
		{Weight: 10, Duration: 5 * time.Minute},
		{Weight: 50, Duration: 5 * time.Minute},
		{Weight: 100, Duration: time.Minute},
		{Weight: 1, Duration: 5 * time.Second},
	}
	checks := policy.DefaultChecks()
	got := Forecast(res, steps, checks, 50)
	// Detectable values as the failing test decides them (TestDetectable
	// checks that each is detected); they shrink as stages see more.
	want := []struct {
		canary     float64
		needs      time.Duration
		detectable float64
	}{
		{30, 500 * time.Second, 0.077256},     // 0.1/s × 300s; 50 take 500s
		{300, 0, 0.028253},                    // 1/s × 300s
		{1500, 0, 0.018578},                   // 5/s × 300s
		{600, 0, 0.023008},                    // 10/s × 60s
		{0.5, 500 * time.Second, math.Inf(1)}, // half a request catches nothing
	}
	if len(got) != len(want) {
		t.Fatalf("got %d stages, want %d", len(got), len(want))
	}
	for i, w := range want {
		f := got[i]
		if f.Stage != i+1 || f.Weight != steps[i].Weight || f.Duration != steps[i].Duration {
			t.Errorf("stage %d = %d %d%% %v, want %d %d%% %v", i, f.Stage, f.Weight, f.Duration, i+1, steps[i].Weight, steps[i].Duration)
		}
		if math.Abs(f.CanaryRequests-w.canary) > 1e-9 || f.Needs != w.needs {
			t.Errorf("stage %d expects %v requests, needs %v; want %v and %v", i+1, f.CanaryRequests, f.Needs, w.canary, w.needs)
		}
		if math.IsInf(w.detectable, 1) != math.IsInf(f.Detectable, 1) || (!math.IsInf(w.detectable, 1) && math.Abs(f.Detectable-w.detectable) > 1e-5) {
			t.Errorf("stage %d detectable = %v, want %v", i+1, f.Detectable, w.detectable)
		}
	}
	const short = "stage 1 (1%) expects 30 canary requests in 5m0s, needs 8m20s for minRequests 50; smallest error rate it can catch in its duration: 7.73%; " +
		"stage 5 (1%) expects 0.5 canary requests in 5s, needs 8m20s for minRequests 50; smallest error rate it can catch in its duration: none"
	if s := ShortStages(got, 50); s != short {
		t.Errorf("ShortStages:\n got %q\nwant %q", s, short)
	}
}

func TestForecastEdges(t *testing.T) {
	res := Result{Window: 100 * time.Second, CanaryRequests: 100, StableRequests: 900,
		Checks: []CheckResult{{Metric: MetricErrorRate, Stable: 0.001}}}
	steps := []stages.Step{{Weight: 1, Duration: 5 * time.Minute}}
	tests := []struct {
		name   string
		res    Result
		steps  []stages.Step // steps above when nil
		checks []policy.Check
		// detectable of the one stage; nil when Forecast answers nil.
		detectable *float64
		short      string
	}{
		{
			name:       "without an error-rate check nothing is said about what a stage can catch",
			res:        res,
			checks:     []policy.Check{{Metric: MetricLatencyP95, MaxRatio: ratio(1.5)}},
			detectable: new(math.NaN()),
			short:      "stage 1 (1%) expects 30 canary requests in 5m0s, needs 8m20s for minRequests 50",
		},
		{
			// The canary took all 3000 requests in 100s: 1% of 30/s for
			// a minute is 18 requests, and minRequests take 166.7s.
			// Only max 5% applies: 18 requests catch 20.42%, not the
			// smaller share that maxIncrease 1% over stable's 0% would
			// claim.
			name: "without stable requests relative bounds set no limit",
			res: Result{Window: 100 * time.Second, CanaryRequests: 3000, StableRequests: 0,
				Checks: []CheckResult{{Metric: MetricErrorRate, Stable: 0}}},
			steps:      []stages.Step{{Weight: 1, Duration: time.Minute}},
			checks:     policy.DefaultChecks(),
			detectable: new(0.204158),
			short:      "stage 1 (1%) expects 18 canary requests in 1m0s, needs 2m47s for minRequests 50; smallest error rate it can catch in its duration: 20.42%",
		},
		{
			name:   "a result without a window forecasts nothing",
			res:    Result{CanaryRequests: 100, StableRequests: 900},
			checks: policy.DefaultChecks(),
		},
		{
			name:   "a result without request counts forecasts nothing",
			res:    Result{Window: time.Minute, CanaryRequests: math.NaN()},
			checks: policy.DefaultChecks(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := steps
			if tt.steps != nil {
				st = tt.steps
			}
			got := Forecast(tt.res, st, tt.checks, 50)
			if tt.detectable == nil {
				if got != nil {
					t.Errorf("Forecast = %+v, want nil", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("got %d stages, want 1", len(got))
			}
			d := got[0].Detectable
			if math.IsNaN(*tt.detectable) != math.IsNaN(d) || (!math.IsNaN(d) && math.Abs(d-*tt.detectable) > 1e-5) {
				t.Errorf("detectable = %v, want %v", d, *tt.detectable)
			}
			if s := ShortStages(got, 50); s != tt.short {
				t.Errorf("ShortStages:\n got %q\nwant %q", s, tt.short)
			}
		})
	}
}

func TestShortStagesIsEmptyWhenEveryStageGathersMinRequests(t *testing.T) {
	f := []StageForecast{
		{Stage: 2, Weight: 10, Duration: 5 * time.Minute, CanaryRequests: 300, Detectable: 0.04},
		{Stage: 3, Weight: 50, Duration: 5 * time.Minute, CanaryRequests: 1500, Detectable: math.NaN()},
	}
	if s := ShortStages(f, 50); s != "" {
		t.Errorf("ShortStages = %q, want empty", s)
	}
}

func TestResultAnalysis(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		res  Result
		want stages.Analysis
	}{
		{
			name: "a passing window is a Pass",
			res:  Result{Verdict: VerdictPass, Message: "1 check passed: x", Evidence: true},
			want: stages.Analysis{Verdict: stages.Pass, Message: "1 check passed: x", At: at},
		},
		{
			name: "a failing window is a Fail, low traffic or not",
			res:  Result{Verdict: VerdictFail, Message: "error-rate canary 100%", LowTraffic: true},
			want: stages.Analysis{Verdict: stages.Fail, Message: "error-rate canary 100%", At: at},
		},
		{
			name: "an inconclusive window awaiting evidence says so",
			res:  Result{Verdict: VerdictInconclusive, Message: "inconclusive: canary served 3 requests < minRequests 50", LowTraffic: true, AwaitingEvidence: true},
			want: stages.Analysis{Verdict: stages.Inconclusive, Message: "inconclusive: canary served 3 requests < minRequests 50", At: at, AwaitingEvidence: true},
		},
		{
			name: "a decisive pass is confident",
			res:  Result{Verdict: VerdictPass, Message: "1 check passed: x", Evidence: true, Confident: true},
			want: stages.Analysis{Verdict: stages.Pass, Message: "1 check passed: x", At: at, Confident: true},
		},
		{
			name: "an inconclusive window for missing data is not low traffic",
			res:  Result{Verdict: VerdictInconclusive, Message: "inconclusive: Prometheus answered with warnings (partial data): w"},
			want: stages.Analysis{Verdict: stages.Inconclusive, Message: "inconclusive: Prometheus answered with warnings (partial data): w", At: at},
		},
		{
			name: "a result without a verdict is never taken for a pass",
			res:  Result{},
			want: stages.Analysis{Verdict: stages.Inconclusive, At: at},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.res.Analysis(at); got != tt.want {
				t.Errorf("Analysis:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// Evaluate's LowTraffic and Evidence flags as the controller reads them.
func TestEvaluateEvidenceAndLowTraffic(t *testing.T) {
	errorRateMax5 := []policy.Check{{Metric: MetricErrorRate, Max: pct("5%", 0.05)}}
	tests := []struct {
		name       string
		canary     Sample
		stable     Sample
		weight     int
		checks     []policy.Check
		verdict    Verdict
		evidence   bool
		lowTraffic bool
		contains   string
	}{
		{
			name:       "a clean canary below minRequests is low on traffic and has no evidence",
			canary:     served(49, 0),
			stable:     served(4900, 0),
			checks:     errorRateMax5,
			verdict:    VerdictInconclusive,
			lowTraffic: true,
			contains:   "inconclusive: canary served 49 requests < minRequests 50; ",
		},
		{
			name:     "at minRequests exactly the same canary passes with evidence",
			canary:   served(50, 0),
			stable:   served(5000, 0),
			checks:   errorRateMax5,
			verdict:  VerdictPass,
			evidence: true,
			contains: "1 check passed: ",
		},
		{
			name:       "a failure below minRequests is a Fail still flagged as low traffic",
			canary:     served(20, 20),
			stable:     served(2000, 0),
			checks:     errorRateMax5,
			verdict:    VerdictFail,
			lowTraffic: true,
			contains:   "error-rate canary 100% (20/20",
		},
		{
			name:     "missing data leaves enough traffic without evidence and not low on traffic",
			canary:   served(500, 0),
			stable:   served(0, 0),
			weight:   10,
			checks:   []policy.Check{{Metric: MetricErrorRate, Max: pct("5%", 0.05), MaxIncrease: pct("1%", 0.01)}},
			verdict:  VerdictInconclusive,
			contains: "maxIncrease not judged, stable has no requests while the canary has 10% of traffic",
		},
		{
			name:       "missing data and low traffic together: low traffic is said first",
			canary:     served(10, 0),
			stable:     served(0, 0),
			weight:     10,
			checks:     []policy.Check{{Metric: MetricErrorRate, Max: pct("5%", 0.05), MaxIncrease: pct("1%", 0.01)}},
			verdict:    VerdictInconclusive,
			lowTraffic: true,
			contains:   "inconclusive: canary served 10 requests < minRequests 50; error-rate canary 0% (0/10",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Evaluate(Samples{Canary: tt.canary, Stable: tt.stable, Window: time.Minute, CanaryWeight: tt.weight}, tt.checks, 50)
			if got.Verdict != tt.verdict || got.Evidence != tt.evidence || got.LowTraffic != tt.lowTraffic {
				t.Errorf("got %s Evidence=%v LowTraffic=%v, want %s %v %v (%s)", got.Verdict, got.Evidence, got.LowTraffic,
					tt.verdict, tt.evidence, tt.lowTraffic, got.Message)
			}
			if !strings.Contains(got.Message, tt.contains) {
				t.Errorf("message %q does not contain %q", got.Message, tt.contains)
			}
		})
	}
}

func TestEvaluateNeverPassesWithoutCanaryRequests(t *testing.T) {
	check := []policy.Check{{Metric: MetricErrorRate, Max: pct("1%", 0.01)}}
	tests := []struct {
		name        string
		canary      Sample
		minRequests int
		want        string
	}{
		{"a canary that served nothing does not pass even when minRequests is zero", served(0, 0), 0, "canary served 0 requests < minRequests 0"},
		{"a canary request count without data is missing data, not low traffic", served(math.NaN(), 0), 50, "no data for canary requests"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Evaluate(Samples{Canary: tt.canary, Stable: served(1000, 0), Window: time.Minute, CanaryWeight: 10}, check, tt.minRequests)
			if res.Verdict != VerdictInconclusive || res.Evidence || !strings.Contains(res.Message, tt.want) {
				t.Errorf("got %s evidence %v %q, want Inconclusive saying %q", res.Verdict, res.Evidence, res.Message, tt.want)
			}
		})
	}
}
