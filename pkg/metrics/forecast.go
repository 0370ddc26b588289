package metrics

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/meshcanary/meshcanary/pkg/policy"
	"github.com/meshcanary/meshcanary/pkg/stages"
)

// StageForecast is what one stage of a plan can expect at the request
// rate of the last analysis.
type StageForecast struct {
	Stage    int           `json:"stage"` // 1-based, as people count
	Weight   int           `json:"weight"`
	Duration time.Duration `json:"duration"`
	// CanaryRequests is how many requests the canary can expect in the
	// stage's duration.
	CanaryRequests float64 `json:"canaryRequests"`
	// Needs is how long the stage takes to gather minRequests canary
	// requests at this rate, when that is longer than its duration.
	Needs time.Duration `json:"needs,omitempty"`
	// Detectable is the smallest canary error rate the stage's error-rate
	// check would catch within its duration; +Inf when none, NaN without
	// an error-rate check. Not serialized when not finite.
	Detectable float64 `json:"-"`
}

// Forecast projects the request rate seen in res onto every stage of
// steps. A stage is short of evidence when it cannot expect minRequests
// canary requests within its duration.
func Forecast(res Result, steps []stages.Step, checks []policy.Check, minRequests int) []StageForecast {
	secs := res.Window.Seconds()
	total := res.CanaryRequests + res.StableRequests
	if !(secs > 0) || math.IsNaN(total) {
		return nil
	}
	rate := total / secs
	limit := errorLimit(res, checks)
	out := make([]StageForecast, 0, len(steps))
	for i, st := range steps {
		f := StageForecast{Stage: i + 1, Weight: st.Weight, Duration: st.Duration}
		perSecond := rate * float64(st.Weight) / 100
		f.CanaryRequests = perSecond * st.Duration.Seconds()
		if f.CanaryRequests < float64(minRequests) && perSecond > 0 {
			f.Needs = time.Duration(float64(minRequests) / perSecond * float64(time.Second)).Round(time.Second)
		}
		f.Detectable = math.NaN()
		if !math.IsNaN(limit) {
			f.Detectable = Detectable(f.CanaryRequests, limit)
		}
		out = append(out, f)
	}
	return out
}

// errorLimit is the tightest error share the error-rate check allows the
// canary, with the upper end of stable's interval for relative bounds;
// NaN without an error-rate check.
func errorLimit(res Result, checks []policy.Check) float64 {
	// A canary fails a relative bound only beyond stable's upper end.
	stable := math.NaN()
	if res.StableRequests > 0 {
		for _, cr := range res.Checks {
			if cr.Metric == MetricErrorRate && cr.Evidence != nil {
				stable = cr.Evidence.Stable.Hi
			}
		}
	}
	limit := math.NaN()
	for _, c := range checks {
		if c.Metric != MetricErrorRate {
			continue
		}
		for _, b := range boundsOf(c) {
			l := math.NaN()
			switch b.name {
			case BoundMax:
				l = b.limit
			case BoundMaxIncrease:
				l = stable + b.limit
			case BoundMaxRatio:
				l = stable * b.limit
			}
			if !math.IsNaN(l) && (math.IsNaN(limit) || l < limit) {
				limit = l
			}
		}
	}
	return limit
}

// ShortStages describes the stages of f that cannot gather minRequests
// canary requests within their duration, for an Event and the CLI; empty
// when every stage can.
func ShortStages(f []StageForecast, minRequests int) string {
	var parts []string
	for _, s := range f {
		if s.Needs == 0 {
			continue
		}
		p := fmt.Sprintf("stage %d (%d%%) expects %s canary requests in %s, needs %s for minRequests %d",
			s.Stage, s.Weight, FormatPlain(s.CanaryRequests), s.Duration, s.Needs, minRequests)
		if !math.IsNaN(s.Detectable) {
			p += "; smallest error rate it can catch in its duration: " + detectableText(s.Detectable)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}

func detectableText(d float64) string {
	if math.IsInf(d, 1) {
		return "none"
	}
	return FormatPercent(d)
}
