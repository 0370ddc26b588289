package gates

import (
	"time"
)

// BodyVersion is the version field of the request body. Fields are only
// ever added within a version; a change in meaning or a removal bumps it,
// so a gate endpoint can refuse a body it does not understand.
const BodyVersion = "v1"

// DefaultTimeout bounds one attempt of a Request that sets no Timeout; it
// is the policy's default gate timeout.
const DefaultTimeout = time.Minute

// Request asks for one run of a webhook gate.
type Request struct {
	// Key identifies the run. The caller builds it from the rollout key,
	// the gate's name, the canary revision and the gate's attempt, e.g.
	// "payments/payment-service/smoke/3f2a/1", so that a new revision or a
	// deliberate re-run (a held gate tried again) is a new Key while every
	// reconcile of the same run maps to the same one.
	Key string
	// Rollout is "namespace/deployment" of the stable Deployment. It goes
	// to the logs and to Options.Done, which enqueues it.
	Rollout string
	// URL receives the POST. Its query string and userinfo may carry
	// tokens: they appear in no message and no log line.
	URL string
	// Timeout bounds one attempt; zero means DefaultTimeout.
	Timeout time.Duration
	// Retries is how many more attempts a failing gate gets; negative is 0.
	Retries int
	// Body is what the endpoint receives. Version is always BodyVersion,
	// whatever the caller sets.
	Body Body
}

// Body is the documented JSON the gate endpoint receives (see doc.go).
type Body struct {
	// Version is BodyVersion.
	Version string `json:"version"`
	// Gate is the gate's name in the policy.
	Gate string `json:"gate"`
	// Type is the gate's type in the policy: pre-rollout, pre-stage or
	// during-stage.
	Type string `json:"type"`
	// Namespace and Deployment name the stable Deployment; Canary names
	// the canary Deployment.
	Namespace  string `json:"namespace"`
	Deployment string `json:"deployment"`
	Canary     string `json:"canary"`
	// Revision is the canary revision being released.
	Revision string `json:"revision"`
	// Stage is the 1-based stage the gate belongs to, 0 for pre-rollout;
	// Stages is the number of stages of the rollout.
	Stage  int `json:"stage"`
	Stages int `json:"stages"`
	// CanaryWeight is the canary's share of traffic in percent when the
	// gate was asked for.
	CanaryWeight int `json:"canaryWeight"`
	// Images are the canary's container images; never null.
	Images []string `json:"images"`
	// Attempt is the gate's attempt (1 for the first run; a held gate run
	// again counts up). It is not the HTTP retry count: retries of one
	// run send the same body, so an endpoint can deduplicate on
	// (namespace, deployment, gate, revision, attempt).
	Attempt int `json:"attempt"`
}

// Status is where a run is.
type Status string

// Statuses of a run.
const (
	// Running: queued or in flight. Also what a run interrupted by
	// shutdown reports until it runs again.
	Running Status = "Running"
	// Passed: an attempt got a 2xx answer.
	Passed Status = "Passed"
	// Failed: every attempt failed, or one failed in a way a retry cannot
	// fix (a 4xx other than 408 and 429, a redirect, an unusable URL).
	Failed Status = "Failed"
)

// Result is what is known about a run.
type Result struct {
	Status Status
	// Message says what happened, for Events and status, e.g.
	// "POST https://smoke.example.com/run?[redacted] → 503 after 3
	// attempts: upstream not ready". The URL has its userinfo and query
	// string cut out; the answer's body is cut to its first 200 bytes.
	// While Running it says what the run is waiting for.
	Message string
	// Attempts is the number of HTTP attempts made so far.
	Attempts int
	// Finished is when the run got its result; zero while Running.
	Finished time.Time
}
