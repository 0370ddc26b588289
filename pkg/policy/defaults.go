package policy

import "time"

// Defaults every policy starts from. They are deliberately conservative: a
// release that nobody tuned should move slowly and roll back early.
const (
	DefaultPolicyName         = "default"
	DefaultInterval           = time.Minute
	DefaultMinRequests        = 50
	DefaultFailureLimit       = 2
	DefaultMetricsOutageLimit = 5
	DefaultStageDuration      = 5 * time.Minute
)

// DefaultWeights are the stages of a policy that lists none.
func DefaultWeights() []int {
	return []int{1, 10, 50, 100}
}

// DefaultChecks are the checks of a policy that lists none. Both compare the
// canary with stable, because no absolute latency suits every service; the
// error-rate ceiling only catches a canary that fails outright while stable
// is also unwell.
func DefaultChecks() []Check {
	return []Check{
		{
			Metric:      MetricErrorRate,
			Max:         &Value{Raw: "5%", Number: 0.05, Unit: UnitPercent},
			MaxIncrease: &Value{Raw: "1%", Number: 0.01, Unit: UnitPercent},
		},
		{
			Metric:   MetricLatencyP95,
			MaxRatio: new(1.5),
		},
	}
}

// Defaults fills what the user left out. It runs before Validate so that
// validation sees exactly the policy the controller will run, and it never
// overwrites a value that was set, even an invalid one, so Validate can
// still report it.
func Defaults(p *Policy) {
	if p.Interval.Duration == 0 {
		p.Interval.Duration = DefaultInterval
	}
	if p.MinRequests == 0 {
		p.MinRequests = DefaultMinRequests
	}
	if p.FailureLimit == 0 {
		p.FailureLimit = DefaultFailureLimit
	}
	if p.MetricsOutageLimit == 0 {
		p.MetricsOutageLimit = DefaultMetricsOutageLimit
	}
	if len(p.Checks) == 0 {
		p.Checks = DefaultChecks()
	}
	if len(p.Stages) == 0 {
		for _, w := range DefaultWeights() {
			p.Stages = append(p.Stages, Stage{Weight: w})
		}
	}
	for i := range p.Stages {
		if p.Stages[i].Duration.Duration == 0 {
			p.Stages[i].Duration.Duration = DefaultStageDuration
		}
	}
}

// Default returns the built-in policy used by Deployments that name none.
func Default() Policy {
	p := Policy{Name: DefaultPolicyName}
	Defaults(&p)
	return p
}
