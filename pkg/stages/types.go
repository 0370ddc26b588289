package stages

import "time"

// Phase is the public phase of a rollout, written to meshcanary.io/phase.
type Phase string

const (
	// Idle: opted in, no release has happened yet.
	Idle Phase = "Idle"
	// Progressing: a release is walking its stages.
	Progressing Phase = "Progressing"
	// Paused: a person paused the release; the weight is held and the stage
	// clock is stopped.
	Paused Phase = "Paused"
	// Promoting: all stages passed (or a person promoted); stable is being
	// updated to the canary's template while the canary carries traffic.
	Promoting Phase = "Promoting"
	// Succeeded: the last release was promoted; stable runs it.
	Succeeded Phase = "Succeeded"
	// RolledBack: the last release was rolled back; stable serves 100%.
	RolledBack Phase = "RolledBack"
	// Invalid: the configuration does not fit; traffic is left alone.
	Invalid Phase = "Invalid"
)

// Active reports whether a release is in flight in this phase.
func (p Phase) Active() bool {
	return p == Progressing || p == Paused || p == Promoting
}

// Step is one stage of a Plan.
type Step struct {
	// Weight is the canary's share of traffic in percent.
	Weight int
	// Duration is how long the stage holds, pauses not counted.
	Duration time.Duration
	// CanaryReplicas fixes the canary's size; 0 derives it from stable.
	CanaryReplicas int32
}

// Plan is a policy resolved for one Deployment (annotation overrides
// applied): only what the core needs to sequence a release.
type Plan struct {
	Steps        []Step
	Interval     time.Duration
	FailureLimit int
	OutageLimit  int
	// ProgressDeadline bounds how long the canary may take to become
	// available at a stage before the release is rolled back.
	ProgressDeadline time.Duration
}

// Workload is what the caller observed about one Deployment.
type Workload struct {
	// Revision identifies the pod template, minus the subset labels, so
	// stable and canary running the same code have the same revision.
	Revision string
	// Replicas is the desired size (spec.replicas).
	Replicas int32
	// Available counts available pods.
	Available int32
	// Settled is true when the Deployment's rollout of its current template
	// is complete: observed, all replicas updated, none old, all available.
	Settled bool
}

// Commands are the command annotations present on the stable Deployment.
type Commands struct {
	// Rollback is the reason given with meshcanary.io/rollback, or "".
	Rollback string
	Promote  bool
	Pause    bool
}

// Verdict is the outcome of one analysis interval.
type Verdict string

const (
	Pass         Verdict = "Pass"
	Fail         Verdict = "Fail"
	Inconclusive Verdict = "Inconclusive"
	// Outage means Prometheus could not answer.
	Outage Verdict = "Outage"
)

// Analysis is one analysis result gathered by the caller.
type Analysis struct {
	Verdict Verdict
	// Message explains the verdict with numbers.
	Message string
}

// Observation is everything the caller gathered for one decision.
type Observation struct {
	Plan   Plan
	Stable Workload
	Canary Workload
	// Weight is the canary weight the VirtualService carries now.
	Weight   int
	Commands Commands
	// Analysis is set only when AnalysisDue asked for one.
	Analysis *Analysis
	// Invalid, when not empty, says why the configuration does not fit.
	Invalid string
}

// State is the rollout's durable record, persisted by the caller on the
// stable Deployment (meshcanary.io/state) so a restarted controller resumes
// exactly where it was.
type State struct {
	Phase Phase `json:"phase"`
	// Revision is the canary revision of the current or last release.
	Revision string `json:"revision,omitempty"`
	// Stage is the 0-based index of the current step.
	Stage int `json:"stage"`
	// StageStart is when the stage's weight was written; zero while the
	// canary is still being scaled for it.
	StageStart time.Time `json:"stageStart,omitzero"`
	// ScaleStart is when the canary began scaling for this stage, for the
	// progress deadline.
	ScaleStart time.Time `json:"scaleStart,omitzero"`
	// PausedAt is when the current pause began.
	PausedAt time.Time `json:"pausedAt,omitzero"`
	// PausedFor accumulates pauses within the current stage.
	PausedFor time.Duration `json:"pausedFor,omitempty"`
	// Failures counts consecutive failed intervals.
	Failures int `json:"failures,omitempty"`
	// Outages counts consecutive intervals without metrics.
	Outages int `json:"outages,omitempty"`
	// Passes counts passing intervals in the current stage.
	Passes int `json:"passes,omitempty"`
	// LastAnalysis is the end of the last analysed window.
	LastAnalysis time.Time `json:"lastAnalysis,omitzero"`
	// LastVerdict avoids repeating identical events every interval.
	LastVerdict Verdict `json:"lastVerdict,omitempty"`
	// Weight is the canary weight meshcanary last wrote.
	Weight int `json:"weight"`
	// Started and Finished bound the current or last release.
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// Message is the last verdict or reason, in words, with numbers.
	Message string `json:"message,omitempty"`
	// Result says how the last release ended.
	Result Result `json:"result,omitempty"`
	// DecidedBy says who or what decided that end: one of the Decider
	// constants.
	DecidedBy string `json:"decidedBy,omitempty"`
	// Interrupted keeps the phase that an invalid configuration
	// interrupted, so fixing the configuration resumes it.
	Interrupted Phase `json:"interrupted,omitempty"`
}

// Result records how a release ended, for metrics and history.
type Result string

const (
	ResultPromoted       Result = "promoted"
	ResultManualPromoted Result = "manual-promotion"
	ResultRolledBack     Result = "rolled-back"
	ResultManualRollback Result = "manual-rollback"
	ResultAborted        Result = "aborted"
)

// Who or what ended a release, for the release history.
const (
	DecidedByAnalysis         = "analysis"
	DecidedByAnnotation       = "annotation"
	DecidedByMetricsOutage    = "metrics-outage"
	DecidedByProgressDeadline = "progress-deadline"
	DecidedByCanaryReverted   = "canary-reverted"
	DecidedByController       = "controller"
)

// Event is a Kubernetes Event the caller should emit on the stable
// Deployment.
type Event struct {
	Warning bool
	Reason  string
	Message string
}

// Decision is what Decide wants done.
type Decision struct {
	State State
	// SetWeight, when not nil, is the canary weight to write (stable gets
	// the rest).
	SetWeight *int
	// ScaleCanary, when not nil, is the canary's new replica count.
	ScaleCanary *int32
	// Promote asks to copy the canary's pod template into stable, keeping
	// stable's subset labels.
	Promote bool
	// Consumed lists the commands acted on; the caller removes their
	// annotations in the same write that persists State.
	Consumed Consumed
	Events   []Event
	// RequeueAfter, when > 0, asks to be woken after that long even if
	// nothing changes.
	RequeueAfter time.Duration
}

// Consumed names the command annotations a Decision acted on.
type Consumed struct {
	Rollback bool
	Promote  bool
	Pause    bool
}

// Any reports whether any command was consumed.
func (c Consumed) Any() bool { return c.Rollback || c.Promote || c.Pause }
