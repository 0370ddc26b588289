package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/meshcanary/meshcanary/pkg/cli"
	"github.com/meshcanary/meshcanary/test/harness"
)

// suite is the one local control plane this package's tests share; each
// test works in its own namespace.
var suite = harness.NewSuite()

func TestMain(m *testing.M) { suite.Main(m) }

// result is what one CLI run printed and its exit code.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, r.stdout, r.stderr)
}

// runRaw runs the CLI in-process through its cobra command, with exactly
// args, as main would.
func runRaw(t testing.TB, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	root := cli.NewRootCommand(genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: &errOut})
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if err != nil {
		fmt.Fprintln(&errOut, "error:", err)
	}
	return result{stdout: out.String(), stderr: errOut.String(), code: cli.ExitCode(err)}
}

// run runs a CLI command against the test cluster in namespace ns.
func run(t testing.TB, ns string, args ...string) result {
	t.Helper()
	return runRaw(t, append(args, "--kubeconfig", suite.Kubeconfig(), "-n", ns)...)
}

// mustRun runs a command that must succeed.
func mustRun(t testing.TB, ns string, args ...string) result {
	t.Helper()
	r := run(t, ns, args...)
	if r.code != 0 {
		t.Fatalf("meshcanary %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// hasText reports whether out contains want, comparing runs of spaces as
// one: table columns are padded to their widest cell, which depends on
// names the tests do not control.
func hasText(out, want string) bool {
	squash := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(squash(line), squash(want)) {
			return true
		}
	}
	return false
}

// parse decodes JSON or YAML output into v.
func parse(t testing.TB, format, out string, v any) {
	t.Helper()
	var err error
	if format == "json" {
		err = json.Unmarshal([]byte(out), v)
	} else {
		err = yaml.Unmarshal([]byte(out), v)
	}
	if err != nil {
		t.Fatalf("-o %s output does not parse: %v\n%s", format, err, out)
	}
}

// runController runs the controller in-process on a's namespace with the
// policies in YAML, until the test ends, and returns once it has taken the
// app in.
func runController(t testing.TB, a *harness.App, policies string) {
	t.Helper()
	a.RunController(harness.ParsePolicies(t, policies), suite.Env().PrometheusURL)
	a.WaitPhase("Idle", 30*time.Second)
}

// fastPolicies keep each stage a few seconds; analysis must pass, so the
// simulated mesh must run.
const fastPolicies = `
policies:
- name: default
  interval: 2s
  minRequests: 10
  failureLimit: 2
  metricsOutageLimit: 3
  checks:
  - {metric: error-rate, max: "5%"}
  stages:
  - {weight: 10, duration: 3s}
  - {weight: 50, duration: 3s}
  - {weight: 100, duration: 3s}
`

// heldPolicies never analyse and never finish a stage by themselves, so a
// release holds at 10% until a person acts: no mesh or Prometheus needed.
const heldPolicies = `
policies:
- name: default
  interval: 1h
  stages:
  - {weight: 10, duration: 1h}
  - {weight: 100, duration: 1h}
`

// repoRoot is the repository's top directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test source")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// buildPlugin builds the binary as kubectl-meshcanary into a directory of
// its own, to be put on PATH.
func buildPlugin(t testing.TB) (dir string) {
	t.Helper()
	dir = t.TempDir()
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "kubectl-meshcanary"), "./cmd/meshcanary")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// pluginEnv is the environment for the built binary and kubectl: the
// binary's directory first on PATH, the test cluster's kubeconfig.
func pluginEnv(binDir string, extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "KUBECONFIG=") {
			continue
		}
		out = append(out, kv)
	}
	out = append(out, "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"), "KUBECONFIG="+suite.Kubeconfig())
	return append(out, extra...)
}
