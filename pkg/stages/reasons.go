package stages

// Event reasons. They are API: alerts, runbooks (runbooks/<topic>.md) and
// users' event filters key on them, so they never change meaning.
const (
	// ReasonRolloutStarted: a new canary revision began its first stage.
	ReasonRolloutStarted = "RolloutStarted"
	// ReasonRolloutRestarted: the canary changed mid-release; the new
	// revision starts again from the first stage with no traffic.
	ReasonRolloutRestarted = "RolloutRestarted"
	// ReasonStageStarted: the canary is available and its stage weight is
	// written.
	ReasonStageStarted = "StageStarted"
	// ReasonLowTraffic: at the current request rate, a stage cannot gather
	// the policy's minimum evidence within its duration; the release waits
	// for it, and the Event says what each stage can expect and detect.
	ReasonLowTraffic = "LowTraffic"
	// ReasonAnalysisPassed: an interval passed after one that did not.
	ReasonAnalysisPassed = "AnalysisPassed"
	// ReasonAnalysisFailed (Warning): an interval failed; advancement stops.
	ReasonAnalysisFailed = "AnalysisFailed"
	// ReasonAnalysisInconclusive: too little traffic or no data; the stage
	// waits for a conclusive interval.
	ReasonAnalysisInconclusive = "AnalysisInconclusive"
	// ReasonMetricsUnavailable (Warning): Prometheus did not answer; the
	// rollout holds. Runbook: metrics-unavailable.md.
	ReasonMetricsUnavailable = "MetricsUnavailable"
	// ReasonPaused and ReasonResumed follow meshcanary.io/pause.
	ReasonPaused  = "Paused"
	ReasonResumed = "Resumed"
	// ReasonPromoting: stable is being updated to the canary's template.
	ReasonPromoting = "Promoting"
	// ReasonPromoted: stable runs the release and serves 100%.
	ReasonPromoted = "Promoted"
	// ReasonRolledBack (Warning): traffic is back on stable. Runbook:
	// canary-rollback.md.
	ReasonRolledBack = "RolledBack"
	// ReasonWeightsRestored (Warning): something else changed the managed
	// weights; meshcanary wrote its own back.
	ReasonWeightsRestored = "WeightsRestored"
	// ReasonInvalidConfiguration (Warning): an annotation, the policy, the
	// VirtualService or the DestinationRule does not fit. Runbook:
	// invalid-configuration.md.
	ReasonInvalidConfiguration = "InvalidConfiguration"
	// ReasonConfigurationFixed: the configuration fits again and the
	// interrupted phase resumes.
	ReasonConfigurationFixed = "ConfigurationFixed"
	// ReasonCanaryNotReady (Warning): the canary did not become available
	// within the progress deadline. Runbook: rollout-stuck.md.
	ReasonCanaryNotReady = "CanaryNotReady"
	// ReasonCommandIgnored: a command annotation arrived when it could not
	// apply (no release in flight); it is removed.
	ReasonCommandIgnored = "CommandIgnored"
	// ReasonHeld: the rollout waits for its release window, the end of a
	// freeze, its start time or a gate; the weight is kept.
	ReasonHeld = "Held"
	// ReasonGatePassed and ReasonGateFailed (Warning) report webhook gates.
	ReasonGatePassed = "GatePassed"
	ReasonGateFailed = "GateFailed"
	// ReasonAwaitingApproval: a confirm-promotion gate waits for
	// meshcanary.io/approve; ReasonApproved when it arrives.
	ReasonAwaitingApproval = "AwaitingApproval"
	ReasonApproved         = "Approved"
	// ReasonRuleAlert (Warning): an alert-only rule's condition held for
	// its duration; a person decides. ReasonRulePaused (Warning): a rule
	// paused the rollout. ReasonRuleRecovered: the condition stopped
	// holding.
	ReasonRuleAlert     = "RuleAlert"
	ReasonRulePaused    = "RulePaused"
	ReasonRuleRecovered = "RuleRecovered"
	// ReasonRolloutStuck (Warning): a stage has not completed long after
	// its duration (inconclusive analysis, a held gate). Runbook:
	// rollout-stuck.md.
	ReasonRolloutStuck = "RolloutStuck"
	// ReasonStateLost (Warning): the recorded state was missing parts or
	// made no sense (a hand edit, a restore); traffic returns to stable and
	// the release starts again from its first stage.
	ReasonStateLost = "StateLost"
	// ReasonPlanChanged: the configured stages changed mid-release; the
	// release keeps the plan it started with and the change applies to the
	// next release.
	ReasonPlanChanged = "PlanChanged"
	// ReasonStableChanged (Warning): stable's template changed during a
	// release without meshcanary; the release is aborted.
	ReasonStableChanged = "StableChanged"
	// ReasonRetried: meshcanary.io/retry released the canary's revision
	// again from the first stage after it was rolled back or aborted.
	ReasonRetried = "Retried"
	// ReasonQueued: a new release waits for a release slot, because the
	// releases in flight have reached the controller's
	// --max-concurrent-releases. Traffic stays on stable; the release
	// starts when a slot frees, in the order releases were queued.
	ReasonQueued = "Queued"
)
