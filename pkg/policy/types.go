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
	Interval Duration `json:"interval,omitzero"`
	// Lookback is how far back each analysis looks: every Interval, the
	// canary is judged over the last Lookback of traffic, never reaching
	// before the stage began (so no earlier release or stage counts).
	// Longer than Interval gives each verdict more requests (faster,
	// surer detection for a low-traffic canary) at the cost of a verdict
	// trailing the traffic by up to Lookback. Zero means one Interval.
	Lookback Duration `json:"lookback,omitzero"`
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

	// Strategy is "canary" (the default: the stages above) or "blueGreen":
	// the canary (green) is scaled to stable's size at 0% traffic, gates
	// run, traffic switches 100% at once, Monitor follows with the checks,
	// and a failure switches straight back to the still-running stable.
	Strategy string `json:"strategy,omitempty"`
	// Monitor is blue/green's watch window after the switch.
	Monitor Duration `json:"monitor,omitzero"`
	// Window is a cron schedule (5 fields, optional "CRON_TZ=<zone> "
	// prefix): a rollout starts a stage or promotes only in minutes it
	// matches. Rollbacks are always allowed.
	Window string `json:"window,omitempty"`
	// Freeze lists cron schedules of minutes in which nothing advances.
	Freeze []string `json:"freeze,omitempty"`
	// StartAt is a cron schedule: a release's first stage waits for its
	// next match ("0 14 * * *": the plan's 14:00 deploy).
	StartAt string `json:"startAt,omitempty"`
	// StuckAfter reports a stage that has not completed this long after
	// its duration (default 30m).
	StuckAfter Duration `json:"stuckAfter,omitzero"`
	// Rules turn sustained conditions on the canary into actions.
	Rules []Rule `json:"rules,omitempty"`
	// Gates are webhooks and approvals a rollout waits for.
	Gates []Gate `json:"gates,omitempty"`
	// Notify routes rollout events to notification channels.
	Notify []NotifyRoute `json:"notify,omitempty"`
}

// Strategies.
const (
	StrategyCanary    = "canary"
	StrategyBlueGreen = "blueGreen"
)

// Rule is a sustained condition with an action, as in the payment team's
// plan: {when: "error-rate > 1%", for: 5m, action: rollback, notify: [pagerduty, slack]}.
type Rule struct {
	// Name identifies the rule in events; it defaults to When.
	Name string `json:"name,omitempty"`
	// When is "<metric> <op> <value>" on the canary, op one of > >= < <=,
	// value written like a check's threshold.
	When string `json:"when"`
	// For is how long the condition must hold in every analysis interval
	// before the action; 0 acts on the first interval that holds.
	For Duration `json:"for,omitzero"`
	// Action is rollback, pause or alert (notify only: a person decides).
	Action string `json:"action"`
	// Notify names the channels told when the rule acts.
	Notify []string `json:"notify,omitempty"`
}

// Rule actions.
const (
	ActionRollback = "rollback"
	ActionPause    = "pause"
	ActionAlert    = "alert"
)

// Gate is a check outside the metrics that a rollout waits for.
type Gate struct {
	Name string `json:"name"`
	// Type is pre-rollout (before any traffic reaches the canary),
	// pre-stage (before Stage's weight is written), during-stage (runs
	// when Stage starts; the stage cannot complete until it passes) or
	// confirm-promotion (a person approves with meshcanary.io/approve).
	Type string `json:"type"`
	// Stage is the 1-based stage of pre-stage and during-stage gates.
	Stage int `json:"stage,omitempty"`
	// URL receives an HTTP POST with a JSON body describing the rollout;
	// a 2xx answer passes. Not used by confirm-promotion.
	URL string `json:"url,omitempty"`
	// Timeout bounds one attempt (default 1m).
	Timeout Duration `json:"timeout,omitzero"`
	// Retries is how many more attempts a failing gate gets (default 2).
	Retries *int `json:"retries,omitempty"`
	// OnFailure is rollback (default) or hold: keep the weight, retry the
	// gate every analysis interval, and say so.
	OnFailure string `json:"onFailure,omitempty"`
}

// Gate types and failure modes.
const (
	GatePreRollout       = "pre-rollout"
	GatePreStage         = "pre-stage"
	GateDuringStage      = "during-stage"
	GateConfirmPromotion = "confirm-promotion"
	OnFailureRollback    = "rollback"
	OnFailureHold        = "hold"
)

// Stage is one step of traffic to the canary.
type Stage struct {
	// Weight is the canary's share of traffic in percent, 1..100.
	Weight int `json:"weight"`
	// Duration is how long the stage holds, not counting pauses.
	Duration Duration `json:"duration,omitzero"`
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
