// Package decisions measures the quality of meshcanary's release decisions
// on simulated traffic: how often a healthy release is rolled back, how fast
// and at which stage a regression is caught, and how long a healthy release
// takes, next to two canary-only rules in the manner of Flagger and Argo
// Rollouts run on the same requests.
//
// The contract:
//
//   - meshcanary's figures come from the real code: pkg/policy's default
//     policy (with a 10 s interval), pkg/stages' Decide and AnalysisDue, and
//     pkg/metrics' Evaluate. The harness only plays the cluster and
//     Prometheus: it applies each Decision at once (weights, scaling with
//     every pod available, promotion), decides again at the same instant
//     after an action as a watch event would, wakes at RequeueAfter, and
//     answers each analysis AnalysisDue asks for with the simulated counts of
//     exactly the window it names.
//   - The peer rules (flagger.go, argo.go) are models written here, not the
//     projects' code; docs/decision-quality.md says what each models and
//     where it departs.
//   - Traffic is random but reproducible: run i of every cell uses seed
//     baseSeed+i, and every rule of that run sees the very same requests
//     (the same arrivals, routing draws, 5xx draws and latencies), so the
//     rules differ only in what they decide.
//   - Every figure is reported with its run count and a 95% interval
//     (Wilson for shares, an order-statistic interval for quantiles).
//   - Nothing here touches a network, a cluster or the wall clock apart from
//     timing the whole run; `make bench-decisions` runs it.
package decisions
