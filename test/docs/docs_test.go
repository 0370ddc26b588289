package docs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/stages"
	"github.com/meshcanary/meshcanary/test/harness"
)

var suite = harness.NewSuite()

func TestMain(m *testing.M) { suite.Main(m) }

// The policies the docs' example app runs under. They have the shape the
// docs describe for the payments policy (stages 10% → 50% → 100%, the same
// checks) with seconds instead of hours, so that a release the docs start
// finishes while the test waits, or, with slowStages, stays at its first
// stage for as long as the file's blocks need.
const (
	fastStages = `
  - {weight: 10, duration: 4s}
  - {weight: 50, duration: 4s}
  - {weight: 100, duration: 4s}`
	slowStages = `
  - {weight: 10, duration: 1h}
  - {weight: 50, duration: 1h}
  - {weight: 100, duration: 1h}`
)

func paymentsPolicy(stagesYAML, extra string) string {
	return `
policies:
- name: payments
  interval: 2s
  minRequests: 10
  failureLimit: 2
  metricsOutageLimit: 3
  checks:
  - {metric: error-rate, max: "1%", maxIncrease: "0.5%"}
  - {metric: latency-p95, max: 2s, maxRatio: 1.5}
  stages:` + stagesYAML + "\n" + extra
}

// blueGreenPolicy is the docs' blue/green policy with a watch window long
// enough to roll back by hand during it.
const blueGreenPolicy = `
- name: payments-blue-green
  strategy: blueGreen
  monitor: 1h
  interval: 2s
  minRequests: 10
  checks:
  - {metric: error-rate, max: "0.5%"}
  - {metric: latency-p95, max: 2s}
`

// docCase is how the sandbox is set up for one doc file before its blocks
// run.
type docCase struct {
	// policies is the controller's policy file.
	policies string
	// annotations replace the demo's annotations on the stable Deployment;
	// nil means opted in with policy payments.
	annotations map[string]string
	// rps is the simulated traffic; 200 when 0.
	rps float64
	// promURL overrides the Prometheus the controller queries.
	promURL string
	// setup brings the app into the state the file starts from.
	setup func(t *testing.T, a *harness.App)
}

func optedIn(extra ...string) map[string]string {
	ann := map[string]string{annotations.Enabled: "true", annotations.Policy: "payments"}
	for i := 0; i+1 < len(extra); i += 2 {
		ann[extra[i]] = extra[i+1]
	}
	return ann
}

// releaseInFlight starts a release of payment:v2 and waits for it to carry
// 10% of the traffic (stage 1/3).
func releaseInFlight(t *testing.T, a *harness.App) {
	t.Helper()
	a.Release("payment:v2", nil)
	a.WaitFor("canary at 10%", 2*time.Minute, func() (bool, string) {
		_, c := a.Weights()
		return c == 10, a.Phase()
	})
}

// cases lists every doc file with runnable blocks. A file with runnable
// blocks but no entry fails the test, so that nobody's blocks go unrun.
var cases = map[string]docCase{
	"docs/getting-started.md": {
		policies:    paymentsPolicy(fastStages, ""),
		annotations: map[string]string{},
	},
	"docs/architecture.md": {
		policies: paymentsPolicy(slowStages, ""),
		setup:    releaseInFlight,
	},
	"docs/annotations.md": {
		policies: paymentsPolicy(fastStages, "  gates:\n  - {name: release-manager, type: confirm-promotion}\n"),
	},
	"docs/canary-guide.md": {
		policies: paymentsPolicy(slowStages, ""),
	},
	"docs/blue-green-guide.md": {
		policies: paymentsPolicy(slowStages, "") + blueGreenPolicy,
	},
	"docs/gitops.md": {
		policies: paymentsPolicy(slowStages, ""),
		setup:    releaseInFlight,
	},
	"docs/cli.md": {
		policies: paymentsPolicy(slowStages, ""),
		setup:    releaseInFlight,
	},
	"docs/troubleshooting.md": {
		policies: paymentsPolicy(slowStages, ""),
		setup:    releaseInFlight,
	},
	"runbooks/canary-rollback.md": {
		policies: paymentsPolicy(slowStages, ""),
		setup:    releaseInFlight,
	},
	"runbooks/controller-down.md": {
		policies: paymentsPolicy(slowStages, ""),
		setup:    releaseInFlight,
	},
	"runbooks/rollout-stuck.md": {
		// One request a second, a tenth of it to the canary: far below
		// minRequests, so every analysis is inconclusive and the first
		// stage overruns into RolloutStuck.
		policies: strings.Replace(strings.Replace(paymentsPolicy(fastStages, "  stuckAfter: 2s\n"),
			"minRequests: 10", "minRequests: 500", 1), "{weight: 10, duration: 4s}", "{weight: 10, duration: 2s}", 1),
		rps: 1,
		setup: func(t *testing.T, a *harness.App) {
			releaseInFlight(t, a)
			a.WaitEvent(stages.ReasonRolloutStuck, "has not completed", time.Minute)
		},
	},
	"runbooks/metrics-unavailable.md": {
		// Nothing listens on port 1: every query is refused, as when
		// Prometheus is down. The outage limit is high so the runbook's
		// blocks find the release still holding.
		policies: strings.Replace(paymentsPolicy(slowStages, ""), "metricsOutageLimit: 3", "metricsOutageLimit: 1000", 1),
		promURL:  "http://127.0.0.1:1",
		setup: func(t *testing.T, a *harness.App) {
			releaseInFlight(t, a)
			a.WaitEvent(stages.ReasonMetricsUnavailable, "holding", time.Minute)
		},
	},
	"runbooks/invalid-configuration.md": {
		policies:    paymentsPolicy(fastStages, ""),
		annotations: optedIn(annotations.Stages, "50,10,100"),
		setup: func(t *testing.T, a *harness.App) {
			a.WaitPhase(string(stages.Invalid), time.Minute)
		},
	},
	"runbooks/regression-after-promotion.md": {
		policies: paymentsPolicy(fastStages, ""),
		setup: func(t *testing.T, a *harness.App) {
			a.Release("payment:v2", nil)
			a.WaitPhase(string(stages.Succeeded), 2*time.Minute)
			a.WaitFor("canary scaled to zero", time.Minute, func() (bool, string) {
				r := a.CanaryDep().Spec.Replicas
				return r != nil && *r == 0, ""
			})
		},
	},
}

// docFiles lists the Markdown files of docs/ and runbooks/, relative to
// the repository root.
func docFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	for _, dir := range []string{"docs", "runbooks"} {
		m, err := filepath.Glob(filepath.Join(root, dir, "*.md"))
		harness.Must(t, err)
		for _, f := range m {
			rel, err := filepath.Rel(root, f)
			harness.Must(t, err)
			files = append(files, filepath.ToSlash(rel))
		}
	}
	sort.Strings(files)
	return files
}

func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test's source file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// TestRunnableBlocks runs every ```sh runnable block of docs/ and runbooks/,
// one subtest per file, named by its path.
func TestRunnableBlocks(t *testing.T) {
	root := repoRoot(t)
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl is needed to run the docs' blocks: %v", err)
	}
	demo, err := os.ReadFile(filepath.Join(root, "hack", "demo", "app.yaml"))
	harness.Must(t, err)

	type job struct {
		path   string
		blocks []block
	}
	var jobs []job
	for _, path := range docFiles(t, root) {
		blocks, err := readBlocks(filepath.Join(root, path))
		harness.Must(t, err)
		var run []block
		for _, b := range blocks {
			if b.runnable() {
				run = append(run, b)
			} else if len(b.directives) > 0 {
				t.Errorf("%s:%d: doctest directives only apply to ```sh runnable blocks", path, b.line)
			}
		}
		if len(run) == 0 {
			continue
		}
		if _, ok := cases[path]; !ok {
			t.Errorf("%s has runnable blocks but no entry in the test's cases: add one saying how to set up its sandbox", path)
			continue
		}
		jobs = append(jobs, job{path, run})
	}
	if len(jobs) == 0 {
		return
	}

	bin := buildPlugin(t, root)
	env := blockEnv(bin, filepath.Dir(kubectl), suite.Kubeconfig())

	for _, j := range jobs {
		t.Run(j.path, func(t *testing.T) {
			c := cases[j.path]
			a := newDocApp(t, demo, c)
			start := func() *harness.Controller {
				url := c.promURL
				if url == "" {
					url = suite.Env().PrometheusURL
				}
				return a.RunController(harness.ParsePolicies(t, c.policies), url)
			}
			rps := c.rps
			if rps == 0 {
				rps = 200
			}
			a.Mesh(rps)
			ctrl := start()
			if c.setup != nil {
				c.setup(t, a)
			}
			dir := t.TempDir()
			for _, b := range j.blocks {
				for _, d := range b.directives {
					switch d {
					case "stop-controller":
						ctrl.Stop()
					case "start-controller":
						ctrl = start()
					default:
						t.Fatalf("%s:%d: unknown doctest directive %q", j.path, b.line, d)
					}
				}
				runBlock(t, j.path, b, dir, env)
			}
		})
	}
}

// newDocApp creates the demo app (hack/demo/app.yaml) in namespace
// payments with the stable Deployment's annotations as the case says.
func newDocApp(t *testing.T, manifest []byte, c docCase) *harness.App {
	t.Helper()
	ann := c.annotations
	if ann == nil {
		ann = optedIn()
	}
	return suite.NewAppFromManifest(t, manifest, "payment-service", func(u *unstructured.Unstructured) {
		if u.GetKind() == "Deployment" && u.GetName() == "payment-service" {
			u.SetAnnotations(ann)
		}
	})
}

// buildPlugin builds the binary as users install it, as kubectl-meshcanary,
// into a directory that goes first on the blocks' PATH.
func buildPlugin(t *testing.T, root string) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "kubectl-meshcanary"), "./cmd/meshcanary")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// blockEnv is the environment of every block: the plugin and kubectl first
// on PATH, the test cluster's kubeconfig, and nothing of the caller's
// kubectl configuration.
func blockEnv(bin, kubectlDir, kubeconfig string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "KUBECONFIG=") {
			continue
		}
		out = append(out, kv)
	}
	return append(out,
		"PATH="+bin+string(os.PathListSeparator)+kubectlDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"KUBECONFIG="+kubeconfig,
	)
}

// blockTimeout bounds one block; blocks bound their own waits well below
// it, so reaching it means a block waits without a bound.
const blockTimeout = 4 * time.Minute

// runBlock runs one block with bash -euo pipefail in dir and fails the
// test with the file, the block's line and its output if it fails.
func runBlock(t *testing.T, path string, b block, dir string, env []string) {
	t.Helper()
	script := filepath.Join(dir, fmt.Sprintf("block-%d.sh", b.line))
	harness.Must(t, os.WriteFile(script, []byte(b.body), 0o600))
	ctx, cancel := context.WithTimeout(context.Background(), blockTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", script)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	began := time.Now()
	err := cmd.Run()
	took := time.Since(began).Round(time.Millisecond)
	if err != nil {
		why := err.Error()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			why = fmt.Sprintf("still running after %s", blockTimeout)
		}
		t.Fatalf("%s:%d: block failed (%s) after %s\n--- block\n%s--- output\n%s", path, b.line, why, took, b.body, out.String())
	}
	t.Logf("%s:%d: ok in %s\n%s", path, b.line, took, out.String())
}
