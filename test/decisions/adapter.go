package decisions

import (
	"time"

	"github.com/meshcanary/meshcanary/pkg/metrics"
	"github.com/meshcanary/meshcanary/pkg/policy"
	"github.com/meshcanary/meshcanary/pkg/stages"
)

// samplesOf is both versions' counts over one analysis window as
// Analyzer.Analyze hands them to Evaluate, with the weight the route
// carried during the window.
func samplesOf(c, s Counts, window time.Duration, weight int, checks []policy.Check) metrics.Samples {
	return metrics.Samples{Canary: sample(c, checks), Stable: sample(s, checks), Window: window, CanaryWeight: weight}
}

// analysisOf is the verdict as the controller hands it to Decide.
func analysisOf(res metrics.Result, at time.Time) stages.Analysis {
	return res.Analysis(at)
}
