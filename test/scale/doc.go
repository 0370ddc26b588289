// Package scale measures the controller at hundreds to thousands of
// opted-in Deployments releasing at once on the local control plane: the
// real meshcanary binary, one simulated mesh sending traffic to every app,
// the suite's Prometheus. It reports stage lag (how late each stage ends
// after its duration), Deployment writes per rollout per stage, Events
// emitted against Events in the API, the controller's CPU per rollout and
// peak memory, Prometheus queries, and the API requests and queries of a
// controller at rest.
//
// Run it with `make bench-scale` (SCALE_N lists the sizes, 500 and 1000
// by default); it measures and asserts only that every release ended as it
// should. docs/performance.md records the figures.
package scale
