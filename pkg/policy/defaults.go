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
	DefaultStrategy           = StrategyCanary
	// DefaultMonitor is how long blue/green watches the switched traffic:
	// long enough for several analysis intervals at the default interval.
	DefaultMonitor = 10 * time.Minute
	// DefaultStuckAfter gives a stage half an hour past its duration before
	// it is reported, so that pauses for a slow scale-up do not page anyone.
	DefaultStuckAfter = 30 * time.Minute
	// DefaultGateTimeout bounds one webhook attempt: CI jobs answer within
	// seconds, and a gate that hangs must not hold a release for long.
	DefaultGateTimeout = time.Minute
	// DefaultGateRetries absorbs a flaky endpoint without hiding a broken one.
	DefaultGateRetries   = 2
	DefaultGateOnFailure = OnFailureRollback
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
	if p.Strategy == "" {
		p.Strategy = DefaultStrategy
	}
	// Monitor is filled for canary policies too, so that a policy switched
	// to blueGreen later never runs with an unset watch window.
	if p.Monitor.Duration == 0 {
		p.Monitor.Duration = DefaultMonitor
	}
	if p.StuckAfter.Duration == 0 {
		p.StuckAfter.Duration = DefaultStuckAfter
	}
	for i := range p.Rules {
		// Events and logs name a rule; its condition is the clearest name
		// for a rule the user did not name.
		if p.Rules[i].Name == "" {
			p.Rules[i].Name = p.Rules[i].When
		}
	}
	for i := range p.Gates {
		g := &p.Gates[i]
		if g.Timeout.Duration == 0 {
			g.Timeout.Duration = DefaultGateTimeout
		}
		if g.Retries == nil {
			g.Retries = new(DefaultGateRetries)
		}
		if g.OnFailure == "" {
			g.OnFailure = DefaultGateOnFailure
		}
	}
}

// Default returns the built-in policy used by Deployments that name none.
func Default() Policy {
	p := Policy{Name: DefaultPolicyName}
	Defaults(&p)
	return p
}
