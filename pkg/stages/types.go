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
	Weight int `json:"weight"`
	// Duration is how long the stage holds, pauses not counted.
	Duration time.Duration `json:"duration"`
	// CanaryReplicas fixes the canary's size; 0 derives it from stable.
	CanaryReplicas int32 `json:"canaryReplicas,omitempty"`
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
	// Window, when set, is when a rollout may start a stage or promote;
	// Freeze lists when it may not. Rollbacks are always allowed.
	Window Schedule
	Freeze []Schedule
	// StartAt, when set, delays a release's first stage to its next match.
	StartAt Schedule
	// StuckAfter reports a stage not done this long after its duration.
	StuckAfter time.Duration
	Gates      []Gate
	Rules      []Rule
}

// Schedule is a parsed cron schedule: robfig/cron parses it and answers
// Next; nothing here runs jobs, and time only comes in as an argument.
type Schedule interface {
	Next(time.Time) time.Time
}

// GateType says when a gate applies.
type GateType string

const (
	// GatePreRollout runs before any traffic reaches the canary.
	GatePreRollout GateType = "pre-rollout"
	// GatePreStage runs before its stage's weight is written.
	GatePreStage GateType = "pre-stage"
	// GateDuringStage runs when its stage starts; the stage cannot
	// complete until it passes.
	GateDuringStage GateType = "during-stage"
	// GateConfirmPromotion waits for a person's meshcanary.io/approve.
	GateConfirmPromotion GateType = "confirm-promotion"
)

// Gate is a gate of the plan.
type Gate struct {
	Name string
	Type GateType
	// Stage is the 0-based stage of pre-stage and during-stage gates.
	Stage int
	// Hold keeps the weight and retries every interval on failure instead
	// of rolling back.
	Hold bool
}

// GateStatus is what the caller knows of a gate run.
type GateStatus string

const (
	GateRunning GateStatus = "Running"
	GatePassed  GateStatus = "Passed"
	GateFailed  GateStatus = "Failed"
)

// GateResult is the outcome of one gate run, for the attempt State asked.
type GateResult struct {
	Status  GateStatus
	Message string
}

// GateRun asks the caller to make sure a gate run exists (starting it if
// it never started) for this attempt.
type GateRun struct {
	Name    string
	Attempt int
}

// RuleAction is what a rule does once its condition held long enough.
type RuleAction string

const (
	RuleRollback RuleAction = "rollback"
	RulePause    RuleAction = "pause"
	RuleAlert    RuleAction = "alert"
)

// Rule is a sustained condition with an action.
type Rule struct {
	Name   string
	For    time.Duration
	Action RuleAction
	// Notify names the channels told when the rule acts.
	Notify []string
}

// RuleHit says whether a rule's condition held over the analysed window.
type RuleHit struct {
	Name    string
	Held    bool
	Message string
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
	// Approve is who or what approved with meshcanary.io/approve, or "".
	Approve string
	// Retry asks to release the canary's revision again after it was
	// rolled back, aborted or reverted.
	Retry bool
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
	// At is the end of the analysed window when the analysis was asked
	// for before this decision (off the reconcile path); zero means now.
	At time.Time
	// AwaitingEvidence says the verdict is short only of evidence: the
	// canary has not yet served the policy's minimum of requests, or a
	// check is not yet decided. A stage waiting for it is slow, not stuck.
	AwaitingEvidence bool
	// Forecast, when set, says the traffic at the current rate is too low
	// for the plan: what each stage can expect and can detect.
	Forecast string
	// Confident says a Pass rests on decisive evidence for every check;
	// only such a Pass clears earlier failed verdicts. A Pass that only
	// failed to fail lets a stage without failures complete.
	Confident bool
}

// Observation is everything the caller gathered for one decision.
type Observation struct {
	Plan   Plan
	Stable Workload
	Canary Workload
	// Weight is the canary weight the VirtualService carries now.
	Weight int
	// RouteResolved says Weight was read from the managed route, even when
	// Invalid is set for another reason: a rollback can still be written.
	RouteResolved bool
	Commands      Commands
	// Analysis is set only when AnalysisDue asked for one.
	Analysis *Analysis
	// Invalid, when not empty, says why the configuration does not fit.
	Invalid string
	// StateLost, when not empty, says why the recorded state could not be
	// read; the core then starts from a fresh state, traffic on stable.
	StateLost string
	// Gates holds the results of the gate runs State asked for, by name.
	Gates map[string]GateResult
	// Rules says which rules held over the analysed window; set with
	// Analysis.
	Rules []RuleHit
	// Slots is the cap on releases in flight at once, as the caller
	// counted when it asked. Only a release about to start consults it: a
	// release already in flight is never held by it. The zero value is no
	// cap.
	Slots Slots
}

// Slots is what the caller counted of the cap on releases in flight at
// once (meshcanary controller --max-concurrent-releases): one shared
// change, such as a base image, must not start thousands of releases
// together.
type Slots struct {
	// Limit is the most releases in flight at once; 0 means no limit.
	Limit int
	// InFlight counts the releases in flight, this rollout's own not
	// included.
	InFlight int
	// Ahead counts the releases queued before this one that still wait:
	// slots go to them first, in the order they were queued.
	Ahead int
}

// Free reports whether a release may start: a slot is left once the
// releases in flight and those queued ahead have theirs.
func (s Slots) Free() bool {
	return s.Limit <= 0 || s.InFlight+s.Ahead < s.Limit
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
	// StageStart is when the stage's weight was decided and recorded (the
	// write follows at once; a failed one is retried); zero while the
	// canary is still being scaled for it.
	StageStart time.Time `json:"stageStart,omitzero"`
	// StageDuration is the current stage's duration, recorded so tools can
	// show the time left without knowing the policy.
	StageDuration time.Duration `json:"stageDuration,omitempty"`
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
	// LastVerdict avoids repeating identical events every interval, and
	// a stage completes only on a passing last verdict.
	LastVerdict Verdict `json:"lastVerdict,omitempty"`
	// EvidenceStart is where the current evidence begins when it is not
	// the stage's start: the end of the last failed verdict, so that
	// consecutive failures rest on traffic that does not overlap.
	EvidenceStart time.Time `json:"evidenceStart,omitzero"`
	// AwaitingEvidence says the last verdict waited only for evidence.
	AwaitingEvidence bool `json:"awaitingEvidence,omitempty"`
	// TrafficWarned says this release already warned that its traffic is
	// too low for its plan.
	TrafficWarned bool `json:"trafficWarned,omitempty"`
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
	// NotBefore is when a release with a startAt schedule may begin.
	NotBefore time.Time `json:"notBefore,omitzero"`
	// Gates records each gate of this release: passed, or which attempt
	// runs and when it last failed.
	Gates map[string]GateState `json:"gates,omitempty"`
	// Approved is true once a person approved this release's promotion.
	Approved bool `json:"approved,omitempty"`
	// ApprovalAsked avoids repeating the request for approval.
	ApprovalAsked bool `json:"approvalAsked,omitempty"`
	// RuleSince is when each rule's condition began to hold without a
	// break; RuleFired marks rules that acted during that hold.
	RuleSince map[string]time.Time `json:"ruleSince,omitempty"`
	RuleFired map[string]bool      `json:"ruleFired,omitempty"`
	// PromoteStart is when promotion began, for its deadline.
	PromoteStart time.Time `json:"promoteStart,omitzero"`
	// StuckReported avoids repeating the stuck report within a stage.
	StuckReported bool `json:"stuckReported,omitempty"`
	// Held says why the rollout waits (window, approval, gate), if it does.
	Held string `json:"held,omitempty"`
	// Steps is the plan pinned when the release started: a policy reload
	// or an annotation edit mid-release applies to the next release, so a
	// shrunken plan can never promote a release from an early stage.
	Steps []Step `json:"steps,omitempty"`
	// PlanChangeNoted avoids repeating that the configured plan changed.
	PlanChangeNoted bool `json:"planChangeNoted,omitempty"`
	// StableRevision is stable's revision when the release started: a
	// change meshcanary did not make (an undo, an edit) aborts the release.
	StableRevision string `json:"stableRevision,omitempty"`
	// WeightPending is true from the moment a weight is decided (and
	// recorded, before it is written) until the route is observed carrying
	// it.
	WeightPending bool `json:"weightPending,omitempty"`
	// WeightFrom is what the route carried when the pending weight was
	// decided. Only a route still at that weight is an unfinished write;
	// any other value is someone else's edit.
	WeightFrom int `json:"weightFrom,omitempty"`
	// StableUpdated is true once stable was seen running the release during
	// promotion, so stable changing away from it afterwards is a person's
	// change and not this controller's write still to come.
	StableUpdated bool `json:"stableUpdated,omitempty"`
	// Unremoved lists the commands acted on whose annotations have not yet
	// been seen removed (command → value). The removal is the caller's
	// last write; until it is seen, the same command is not a new one.
	// It outlives a release: a stale rollback must not end the next one.
	Unremoved map[string]string `json:"unremoved,omitempty"`
	// RestoreStable is true from a rollback during promotion, after stable
	// was given the release's template, until stable is seen back on
	// StableRevision (or changed by someone else).
	RestoreStable bool `json:"restoreStable,omitempty"`
	// NotRelease is a canary revision that must not be released on its
	// own: the one in the canary when a person changed stable's template
	// between releases. Changing the canary's template again releases it.
	NotRelease string `json:"notRelease,omitempty"`
	// QueuedAt is when a wanted release was first held because every
	// release slot was taken (Observation.Slots); zero while none waits.
	// The caller hands freed slots out in this order, also after a
	// restart.
	QueuedAt time.Time `json:"queuedAt,omitzero"`
}

// GateState is one gate's record within a release.
type GateState struct {
	Passed   bool      `json:"passed,omitempty"`
	Attempt  int       `json:"attempt,omitempty"`
	FailedAt time.Time `json:"failedAt,omitzero"`
}

// Result records how a release ended, for metrics and history.
type Result string

const (
	ResultPromoted       Result = "promoted"
	ResultManualPromoted Result = "manual-promotion"
	ResultRolledBack     Result = "rolled-back"
	ResultManualRollback Result = "manual-rollback"
	ResultAborted        Result = "aborted"
	// ResultReverted is a history entry, not a release: a person changed
	// stable's template between releases (kubectl rollout undo).
	ResultReverted Result = "reverted"
)

// Who or what ended a release, for the release history.
const (
	DecidedByAnalysis         = "analysis"
	DecidedByAnnotation       = "annotation"
	DecidedByMetricsOutage    = "metrics-outage"
	DecidedByProgressDeadline = "progress-deadline"
	DecidedByCanaryReverted   = "canary-reverted"
	DecidedByController       = "controller"
	DecidedByRule             = "rule"
	DecidedByGate             = "gate"
	// DecidedByStableChanged: stable's template changed under a release
	// (kubectl rollout undo, edit, apply, set image).
	DecidedByStableChanged = "stable-changed"
	// DecidedByVirtualServiceEdit: a person wrote the managed weights to
	// send all traffic to stable.
	DecidedByVirtualServiceEdit = "virtualservice-edit"
)

// Event is a Kubernetes Event the caller should emit on the stable
// Deployment.
type Event struct {
	Warning bool
	Reason  string
	Message string
	// Notify names extra channels (a rule's own notify list).
	Notify []string
	// Page asks for a page (PagerDuty trigger); Resolve ends one.
	Page    bool
	Resolve bool
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
	// RunGates lists the gate runs that must exist; the caller starts each
	// one that never started and reports results in Observation.Gates.
	RunGates []GateRun
	// SetPause asks the caller to write meshcanary.io/pause=true (a rule
	// paused the rollout; a person resumes by removing it).
	SetPause bool
	// Reverted, when not empty, is the revision a person put stable on
	// between releases; the caller records it in the release history.
	Reverted string
	// RestoreStable asks to put back stable's pod template as it was
	// before the promotion (a rollback during promotion).
	RestoreStable bool
}

// Consumed names the command annotations a Decision acted on.
type Consumed struct {
	Rollback bool
	Promote  bool
	Pause    bool
	Approve  bool
	Retry    bool
}

// Any reports whether any command was consumed.
func (c Consumed) Any() bool { return c.Rollback || c.Promote || c.Pause || c.Approve || c.Retry }
