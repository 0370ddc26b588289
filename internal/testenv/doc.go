// Package testenv runs a real, throwaway Kubernetes control plane with Istio's
// CRDs and a Prometheus server on loopback, so tests exercise meshcanary
// against the API server's real validation, RBAC, controllers and PromQL
// engine instead of fakes that agree with whatever the code under test
// assumes.
//
// The stack is etcd, kube-apiserver, kube-controller-manager (deployment,
// replicaset, namespace, garbage-collector and service-account controllers),
// kube-scheduler, kwok with one fake node that makes scheduled pods Running
// and Ready without running containers, Istio's CRDs, meshcanary's own CRDs
// (charts/meshcanary/crds of the source tree, as the chart installs them),
// and Prometheus scraping whatever the caller configures. Every component listens on a free
// 127.0.0.1 port, so several environments (one per test package under
// `go test ./...`) run side by side.
//
// Binaries come from the cache that hack/tools.sh fills
// (${MESHCANARY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshcanary}/bin), and
// prometheus from PATH; a missing one is reported with the command that
// installs it.
//
// Contract:
//   - Start returns only once every component is ready: the API server
//     answers /readyz, the controllers and the scheduler run, the fake node is
//     Ready and schedulable, Istio's and meshcanary's CRDs are Established,
//     and Prometheus is ready. It never waits by sleeping for a fixed time.
//   - Every process runs in its own process group and is killed by the kernel
//     when the process that started it dies (Pdeathsig), so a panicking,
//     timed-out or killed test binary leaves nothing behind. Stop terminates
//     the groups (SIGTERM, then SIGKILL after a bounded wait), is idempotent,
//     and removes the environment's directory unless KEEP_TESTENV=1. The
//     directory of a run that died without Stop is removed by a later Start.
//   - Component logs are written to Dir/logs/<component>.log; start-up errors
//     carry the tail of the failing component's log.
//   - Tests share one environment per package (see Main) and isolate
//     themselves with NewNamespace; Prometheus' scrape configuration is global
//     to the environment, so tests that call SetScrapeConfigs must not run in
//     parallel with each other.
package testenv
