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
// Builtin metrics are queried over Request.Window, the stage's evidence so
// far; custom metrics over Request.CustomWindow, one interval (or the
// policy's lookback), because their templates were written for a window
// and are judged on point values.
//
// # Missing data
//
// Istio creates istio_requests_total only when a request is served, so an
// absent request or 5xx series counts as zero rather than as an error.
// Zero stable requests mean "stable is gone" only when the canary has 100%
// of traffic (Samples.CanaryWeight): relative bounds are then dropped and
// the check is judged on its absolute bounds alone. At any lower weight an
// absent stable series is missing data: relative bounds are not judged,
// the check is Inconclusive and the window cannot pass. A Prometheus answer
// with warnings (a partial response among them) makes the whole window
// Inconclusive, and the warnings are in its message. Other empty answers
// (a latency histogram without requests, a custom metric) are "no data"
// (NaN), never an error.
//
// # Errors
//
// Analyze returns an error only when the answer could not be had. Every such
// error is a *QueryError wrapping the cause; IsUserError tells a user's broken
// custom query (template error, Prometheus bad_data or execution error, more
// than one series, unknown metric) from an outage (unreachable, HTTP 5xx,
// timeout), because the controller counts only outages against
// metricsOutageLimit and reports user errors to the user instead.
//
// # Evaluation: sequential tests on counted shares
//
// The controller looks at a stage every interval, each time over all of
// the stage's traffic so far, so every bound is a sequential test that
// stays valid however often it is looked at. EvidenceAbove (EvidenceBelow)
// is the likelihood of the counts under shares past the limit, mixed over
// alternatives from ×1.1 to ×33 in odds, against their likelihood at the
// limit: for any share within the limit it is a nonnegative
// supermartingale, so it ever reaches 1/Alpha with probability at most
// Alpha (Ville's inequality). A verdict is decisive at 1/Alpha; with
// Alpha 0.2 and the default failureLimit of two failed verdicts on
// separate traffic, a canary exactly at a bound is rolled back with
// probability at most 4% per check and stage. ShareInterval, the
// Beta(½,½)-mixture confidence sequence at the same level, gives stable's
// range for relative bounds and the intervals messages show. Every check
// returns Fail (decisively beyond a bound), Pass (decisively within every
// bound) or Inconclusive (not yet decided, or missing data):
//
//   - error-rate and success-rate count 5xx (or the other responses) and
//     requests. max: evidence above max; min: below min; maxIncrease: above
//     the upper end of stable's interval + maxIncrease (passing: within its
//     lower end + maxIncrease); maxRatio: above maxRatio × stable's upper
//     end. Stable's noise is thus inside the test.
//   - latency-pQ is decided on the histograms as a share: "pQ exceeds T"
//     is "more than 1 − Q of the requests were slower than T", the count
//     slower than T interpolated inside T's bucket. max and min test the
//     canary's share slower than the bound against 1 − Q. For maxRatio
//     and maxIncrease, T is stable's point quantile × maxRatio (or +
//     maxIncrease), and the canary fails only on evidence that its share
//     slower than T is above 1 − Q and above the upper end of stable's
//     share slower than the same T: a T that noise in stable set too low
//     makes both versions look slow, and the comparison stays fair.
//     Messages state the point quantiles and the counts.
//   - request-rate, custom metrics and latencies without a histogram are
//     compared on their point values, as a window was before, and only
//     once the canary served minRequests requests.
//
// A Fail needs no minimum of requests. A window Fails if any check fails;
// it Passes when no check fails, nothing is missing and the canary served
// at least minRequests requests in it (Result.Evidence), even when some
// checks are not yet decided (Result.Confident says when all passed
// decisively, which alone clears an earlier failure); otherwise it is
// Inconclusive, and Result.LowTraffic says when too few canary requests
// are the only reason. The controller completes a stage only on a passing
// verdict over the whole stage (see package stages).
package metrics
