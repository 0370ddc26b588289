// Package cli tests the operator CLI (pkg/cli) end to end against a real
// local control plane (internal/testenv); it has no code of its own.
//
// Contract:
//   - Every command runs in-process through its cobra command with buffers,
//     in both -o json and -o yaml where it prints documents, and the output
//     is parsed back; the error paths (unknown Deployment, not opted in, no
//     kubeconfig, usage errors) are checked with their exit codes.
//   - The binary is also built as kubectl-meshcanary and run through
//     `kubectl meshcanary` (plugin discovery), on a pseudo-terminal
//     (`status -w` redrawing a live release), and from hack/deploy-canary.sh
//     and hack/rollback.sh.
//   - Releases are driven by the controller running in-process, as in
//     test/integration, with the simulated mesh (test/meshsim) and
//     Prometheus where analysis must pass. Tests wait by polling with
//     deadlines, never by sleeping, and the package runs in well under
//     three minutes on two cores.
package cli
