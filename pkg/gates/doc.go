// Package gates runs webhook gates for the controller's shell: the
// pre-rollout, pre-stage and during-stage gates of a policy whose check is
// an HTTP POST. Whether a gate is due, and what a failure means (roll back
// or hold), is the decision core's; this package only runs gates and
// reports their results. confirm-promotion gates are manual and not
// handled here.
//
// Contract:
//
//   - A reconcile never waits for a gate. Runner.Ensure starts the run a
//     Request.Key names, or reports on it, and returns at once: Running
//     while the run is queued or in flight, then Passed or Failed. It takes
//     only a mutex no one holds across network I/O. Smoke tests can take
//     minutes; a reconcile worker must not.
//   - Every wake-up still goes through the controller's one workqueue:
//     when a run gets its result the Runner calls Options.Done with the
//     run's rollout key ("namespace/deployment"), and the shell enqueues
//     it; the next reconcile's Ensure returns the result. There is no
//     goroutine or ticker per rollout or per gate: Runner.Run owns a fixed
//     pool of Options.MaxConcurrent workers (default 8).
//   - A Key is one run, whatever else its Request says. The caller builds
//     it from the rollout key, the gate's name, the canary revision and
//     the gate's attempt ("payments/payment-service/smoke/3f2a/1"), so
//     that every reconcile of one run asks for the same Key and a new
//     revision or a held gate's next try is a new one. Ensuring the same
//     Key again starts nothing.
//   - Runs wait in an unbounded FIFO for a worker: a gate never fails
//     because the controller is busy, it only waits longer.
//   - One run is up to 1+Retries attempts. Each attempt POSTs the body
//     below (Content-Type: application/json, User-Agent: meshcanary) and
//     is bounded by Request.Timeout (default 1m). A 2xx passes. A network
//     error, a timeout, a 408, a 429 or a 5xx is retried after 1s, 2s, 4s,
//     … capped at 30s. Other 4xx fail at once: the test said no, and
//     asking again gets the same answer. Redirects are not followed (they
//     would carry the request, and any headers added later, to a host
//     nobody configured): a 3xx fails at once too. Every attempt of a run
//     sends the same body.
//   - Result.Message says what happened with the URL's userinfo and query
//     string cut out ("?[redacted]" marks a query), e.g.
//     "POST https://smoke.example.com/run?[redacted] → 503 after 3
//     attempts: upstream not ready", quoting at most the first 200 bytes
//     of a failing answer's body. Log lines name the rollout, gate,
//     revision and Key, never the URL.
//   - Results live in memory only, until Runner.Forget drops the Keys of
//     a release that ended. After a controller restart a gate whose result
//     is unknown is simply run again, and so is a run interrupted by Run's
//     context ending (it is not a failure: it stays Running and starts
//     over from its first attempt at the next Run). Gate endpoints must
//     therefore be idempotent for a given Key, that is for a given
//     namespace, deployment, gate, revision and attempt of the body:
//     receiving it again must not start a second load test, or it must be
//     harmless to.
//   - Forget cancels in-flight runs it drops; a dropped run calls no Done
//     and counts in no metric.
//   - No package globals: metrics go to Options.Metrics, and a nil HTTP
//     client means a client of the package's own, never
//     http.DefaultClient.
//
// Wiring (the shell): create one Runner with Done set to the workqueue's
// Add and start Run with the controller's context. When the core asks for
// a webhook gate, call Ensure with the gate's Request and hand the Result
// to the core as an observation; a Running result needs no RequeueAfter,
// since Done enqueues the rollout. When a release ends (promoted, rolled
// back, superseded), call Forget with the rollout key plus "/".
//
// Metrics:
//
//	meshcanary_gate_runs_total{result="passed|failed"}
//	meshcanary_gate_duration_seconds    first attempt to result, backoff included
//
// The text below is written to be copied into docs/gates.md.
//
// # Webhook gates
//
// A webhook gate is an HTTP POST with a JSON body describing the rollout.
// Any 2xx answer passes the gate. 408, 429, 5xx, timeouts and network
// errors are retried (`retries`, default 2, each attempt bounded by
// `timeout`, default 1m, with 1s, 2s, 4s, … up to 30s between attempts);
// other answers fail the gate at once. What a failure does is the gate's
// `onFailure`: roll back (default) or hold. Redirects are not followed.
//
// Schema version v1; fields are only added within a version:
//
//	{
//	  "version": "v1",
//	  "gate": "smoke",
//	  "type": "pre-rollout",
//	  "namespace": "payments",
//	  "deployment": "payment-service",
//	  "canary": "payment-service-canary",
//	  "revision": "7d9f8c6b5",
//	  "stage": 0,
//	  "stages": 4,
//	  "canaryWeight": 0,
//	  "images": ["registry.example.com/payment:v2"],
//	  "attempt": 1
//	}
//
//	field         meaning
//	version       schema version, "v1"
//	gate          the gate's name in the policy
//	type          pre-rollout, pre-stage or during-stage
//	namespace     namespace of the Deployments
//	deployment    the stable Deployment
//	canary        the canary Deployment
//	revision      the canary revision being released
//	stage         1-based stage the gate belongs to; 0 for pre-rollout
//	stages        number of stages of the rollout
//	canaryWeight  canary's share of traffic in percent when the gate started
//	images        the canary's container images; [] if unknown
//	attempt       the gate's run: 1, then 2, 3, … when a held gate is tried
//	              again. Not the HTTP retry: retries resend the same body.
//
// Results are kept in the controller's memory. After a restart, or when
// the controller is stopped while a gate runs, the gate is run again with
// the same body, so an endpoint must treat a repeated (namespace,
// deployment, gate, revision, attempt) as the same request.
package gates
