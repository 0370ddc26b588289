// Package metrics builds the Prometheus queries that compare a canary with
// its stable version and judges one analysis window from their answers.
//
// It never decides about a rollout: it returns a Verdict for one window
// (Pass, Fail or Inconclusive) and leaves counting windows, failure limits
// and outage limits to the controller.
//
// # Queries
//
// Builtin metrics come from Istio's standard telemetry as reported by the
// server side (reporter="destination"), with each version's Deployment name
// as destination_workload in destination_workload_namespace. Every builtin
// query is grouped by (destination_workload_namespace, destination_workload)
// and selects both versions with destination_workload=~"<stable>|<canary>",
// so that one query answers for both versions and, later, for many rollouts
// at once. Windows are rendered as whole seconds ([30s]), at least 1s,
// because PromQL durations are integral and a sub-second window would hold
// no scrapes anyway.
//
//   - requests: increase(istio_requests_total) over the window; always run,
//     since minRequests needs it.
//   - 5xx: the same with response_code=~"5..", run only for error-rate and
//     success-rate.
//   - latency-p50, -p95, -p99: one query for all of them,
//     increase(istio_request_duration_milliseconds_bucket) summed by le,
//     read back as each version's histogram in seconds. The quantiles are
//     computed from it as histogram_quantile would (linear interpolation
//     inside a bucket, 0 as the first bucket's lower bound, the highest
//     finite bound for a rank in the +Inf bucket).
//   - error-rate is 5xx/requests, success-rate 1 − error-rate, request-rate
//     requests per second of the rendered window.
//
// Custom metrics are text/template PromQL executed once per version with
// .Namespace, .Workload and .Window (a PromQL duration such as "30s"); each
// must answer with a single sample (a scalar or a one-element vector). Builtin
// names are reserved: a custom metric of the same name is never consulted.
//
// # Missing data
//
// Istio creates istio_requests_total only when a request is served, so an
// absent request or 5xx series counts as zero rather than as an error. That is
// what makes a canary at 100% (stable scaled away, its series gone stale)
// look like "stable served zero requests". Other empty answers (a latency
// histogram without requests, a custom metric) are "no data" (NaN), never an
// error.
//
// # Errors
//
// Analyze returns an error only when the answer could not be had. Every such
// error is a *QueryError wrapping the cause; IsUserError tells a user's broken
// custom query (template error, Prometheus bad_data or execution error, more
// than one series, unknown metric) from an outage (unreachable, HTTP 5xx,
// timeout), because the controller counts only outages against
// metricsOutageLimit and reports user errors to the user instead. Prometheus
// warnings are ignored.
//
// # Evaluation
//
// A canary that served fewer than minRequests requests in the window makes the
// whole window Inconclusive, whatever its numbers: a canary at 1% of traffic
// sees few requests, and judging them would cause false rollbacks.
//
// Each check bounds one metric with max (canary ≤ max), min (canary ≥ min),
// maxIncrease (canary − stable ≤ maxIncrease, in the metric's unit: fractions
// for shares, seconds for latency) and maxRatio (canary / stable ≤ maxRatio).
// Relative bounds need a stable version that served at least minRequests
// requests and has a value (non-zero for maxRatio); otherwise they are not
// applicable and skipped. A check left with no applicable bound is
// Inconclusive, with one exception: when stable served exactly zero requests
// (the canary took all traffic), there is nothing to compare against, so
// relative bounds are dropped and the check passes or fails on its absolute
// bounds alone, and counts as passed if it has none.
//
// For error-rate and success-rate the counts decide, not the point estimate:
// the Wilson score interval (z = 1.645, one-sided 95%) is used, and a bound
// fails only if it fails for the end of the interval most favourable to the
// canary (its lower bound for max, maxIncrease and maxRatio, its upper bound
// for min; stable's upper bound for relative bounds). One 503 among 60
// requests is thus noise, while 25 among 500 is a regression. Because the
// bounds are always at least as lenient as the point estimates, a failure
// message stated in point estimates is always true.
//
// Latencies are decided the same way, on the canary's histogram: its pQ
// exceeds T when more than 1 − Q of its requests were slower than T, which
// fails only if the Wilson lower bound of that share (the requests slower
// than T interpolated inside T's bucket) exceeds 1 − Q. T is max itself,
// stable's point quantile × maxRatio, or stable's point quantile +
// maxIncrease. min fails only if the Wilson upper bound of the share slower
// than min is below 1 − Q, that is when the canary is clearly faster than
// min. A handful of requests interpolated inside one of Istio's coarse
// buckets (100–250 ms, 250–500 ms) thus cannot roll a canary back at 1% of
// traffic, while a clear shift fails even on twenty requests. Messages
// still state the point quantiles, and stay true for the same reason as
// for shares. Without a histogram (Values set directly) the point
// quantiles are compared.
//
// A check whose canary value is missing is Inconclusive. The window Fails if
// any check Failed, is Inconclusive if any check was, and Passes otherwise.
package metrics
