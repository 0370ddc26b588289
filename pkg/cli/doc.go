// Package cli is meshcanary's operator command line: the commands of the
// `meshcanary` binary other than `controller`, which also make it a kubectl
// plugin when installed as `kubectl-meshcanary`.
//
// Contract:
//   - Commands only read what the controller publishes (pkg/status: the
//     summary and pending commands on the stable Deployment, the state,
//     last analysis and history in its CanaryRelease, read with one list for
//     `list` and watched by `status -w`) and write the command annotations
//     of pkg/annotations with merge patches; they never edit traffic or
//     rollout state themselves. `init --apply` creates or extends the
//     objects a rollout needs (server-side apply, field manager
//     meshcanary-init) and never changes a field the user already set
//     without saying so; changes Kubernetes refuses (a Deployment's
//     selector) are printed as steps instead of attempted.
//   - A Deployment without a CanaryRelease (not yet seen by the controller,
//     or from a version that kept its state in annotations) reads from its
//     annotations alone.
//   - Output is for people by default (tables, durations rounded to seconds,
//     percentages as the controller writes them) and for scripts with
//     -o json or -o yaml, whose field names are stable and only ever added to.
//   - Exit codes: 0 success, 1 failure, problems found (lint) or a command
//     refused because the controller would drop it (retry during a
//     release), 2 usage errors; ExitCode maps a command's error to them.
//   - Connection flags follow kubectl (--kubeconfig, --context, -n, ...), and
//     are added to each operator command rather than the root, so that
//     `meshcanary controller` keeps its own flags unchanged.
//   - Commands are built by constructors from the streams they print to; the
//     package has no global state, so tests run many commands in one process.
package cli
