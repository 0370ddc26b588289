package policy

import "time"

// File is the document read from `meshcanary controller --policies <file>`.
type File struct {
	Policies []Policy `json:"policies"`
}

// Policy says how a release is staged and judged. Zero values are filled by
// Defaults before validation, so a policy that names only its stages is valid.
type Policy struct {
	Name string `json:"name"`
	// Interval is the analysis interval: every Interval the canary is
	// compared with stable over the traffic of that interval.
	Interval Duration `json:"interval,omitempty"`
	// MinRequests is the fewest requests each version must serve in an
	// analysis window for the window to count; fewer makes it inconclusive.
	MinRequests int `json:"minRequests,omitempty"`
	// FailureLimit is how many consecutive failed intervals roll back.
	FailureLimit int `json:"failureLimit,omitempty"`
	// MetricsOutageLimit is how many consecutive intervals without answers
	// from Prometheus roll back.
	MetricsOutageLimit int `json:"metricsOutageLimit,omitempty"`
	// Checks apply to every stage that does not list its own.
	Checks []Check `json:"checks,omitempty"`
	// Metrics are custom metrics by name, usable in checks.
	Metrics map[string]MetricQuery `json:"metrics,omitempty"`
	Stages  []Stage                `json:"stages,omitempty"`
}

// Stage is one step of traffic to the canary.
type Stage struct {
	// Weight is the canary's share of traffic in percent, 1..100.
	Weight int `json:"weight"`
	// Duration is how long the stage holds, not counting pauses.
	Duration Duration `json:"duration,omitempty"`
	// CanaryReplicas fixes the canary's size in this stage; nil means
	// ceil(stable replicas × weight / 100), at least 1.
	CanaryReplicas *int32 `json:"canaryReplicas,omitempty"`
	// Checks, when set, replace the policy's checks for this stage.
	Checks []Check `json:"checks,omitempty"`
}

// Check bounds one metric of the canary, absolutely (Max, Min) and relative to
// stable over the same window (MaxIncrease in the metric's unit, MaxRatio as a
// factor).
type Check struct {
	Metric      string   `json:"metric"`
	Max         *Value   `json:"max,omitempty"`
	Min         *Value   `json:"min,omitempty"`
	MaxIncrease *Value   `json:"maxIncrease,omitempty"`
	MaxRatio    *float64 `json:"maxRatio,omitempty"`
}

// MetricQuery is a custom metric: a PromQL template evaluated once per
// version, with .Namespace, .Workload and .Window (a PromQL duration).
type MetricQuery struct {
	Query string `json:"query"`
}

// Unit is how a threshold was written, which fixes how it compares.
type Unit string

const (
	// UnitNumber is a plain number ("50", 1.2).
	UnitNumber Unit = "number"
	// UnitPercent is a share written with % ("1%"); Value.Number holds the
	// fraction (0.01).
	UnitPercent Unit = "percent"
	// UnitDuration is a Go duration ("2s", "300ms"); Value.Number holds
	// seconds.
	UnitDuration Unit = "duration"
)

// Value is a threshold as the user wrote it and as a number in the metric's
// base unit: fractions for shares, seconds for durations.
type Value struct {
	Raw    string
	Number float64
	Unit   Unit
}

// Duration is a time.Duration written as a Go duration string in YAML.
type Duration struct {
	time.Duration
}
