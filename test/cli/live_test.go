package cli

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/stages"
	"github.com/meshcanary/meshcanary/test/harness"
)

// TestWaitingCommands drives one release through pause, resume and
// rollback, retries it and rolls it back again, and drives the next through
// promote, each with --wait, against a running controller. The policy
// holds every stage for an hour, so only the commands move the release.
func TestWaitingCommands(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "orders", 2, nil)
	runController(t, a, heldPolicies)
	a.Release("payment:v2", nil)
	a.WaitCanaryWeight(10, time.Minute)

	t.Run("retry during a release is refused and writes nothing", func(t *testing.T) {
		r := run(t, a.NS(), "retry", "orders", "--wait")
		if r.code != 1 || !strings.Contains(r.stderr, "is in flight (phase Progressing") || !strings.Contains(r.stderr, "nothing was written") {
			t.Errorf("got %s", r)
		}
		if _, ok := a.StableDep().Annotations[annotations.Retry]; ok {
			t.Error("retry was written during a release")
		}
	})
	t.Run("pause --wait returns once the phase is Paused", func(t *testing.T) {
		r := mustRun(t, a.NS(), "pause", "orders", "--wait")
		if got := a.StableDep().Annotations[annotations.Phase]; got != "Paused" || !strings.Contains(r.stdout, "phase Paused") {
			t.Errorf("phase %s after pause --wait:\n%s", got, r)
		}
	})
	t.Run("status shows the paused stage", func(t *testing.T) {
		r := mustRun(t, a.NS(), "status", "orders")
		if !strings.Contains(r.stdout, "paused: the stage clock is stopped") || !strings.Contains(r.stdout, "stable 90%, canary 10%") {
			t.Errorf("status:\n%s", r.stdout)
		}
	})
	t.Run("resume --wait returns once the phase is no longer Paused", func(t *testing.T) {
		mustRun(t, a.NS(), "resume", "orders", "--wait")
		if got := a.StableDep().Annotations[annotations.Phase]; got != "Progressing" {
			t.Errorf("phase %s after resume --wait", got)
		}
	})
	t.Run("rollback --wait returns once stable serves 100%", func(t *testing.T) {
		r := mustRun(t, a.NS(), "rollback", "orders", "--reason", "p99 regression", "--wait", "--timeout", "1m", "-o", "yaml")
		// Checked at once: --wait promised the result is visible.
		if s, c := a.Weights(); s != 100 || c != 0 {
			t.Errorf("weights %d/%d right after rollback --wait", s, c)
		}
		var doc struct {
			Waited bool
			Status struct {
				Phase   string
				Message string
				Weights struct{ Stable, Canary int }
			}
		}
		parse(t, "yaml", r.stdout, &doc)
		if !doc.Waited || doc.Status.Phase != "RolledBack" || doc.Status.Weights.Stable != 100 || !strings.Contains(doc.Status.Message, "p99 regression") {
			t.Errorf("parsed %+v", doc)
		}
	})
	t.Run("rollback --wait with nothing in flight says the controller ignored it", func(t *testing.T) {
		r := run(t, a.NS(), "rollback", "orders", "--reason", "again", "--wait", "--timeout", "30s")
		if r.code != 1 || !strings.Contains(r.stderr, "did not act on meshcanary.io/rollback") {
			t.Errorf("got %s", r)
		}
	})
	t.Run("history records the rollback", func(t *testing.T) {
		r := mustRun(t, a.NS(), "history", "orders")
		if !strings.Contains(r.stdout, "manual-rollback") || !strings.Contains(r.stdout, "annotation") {
			t.Errorf("history:\n%s", r.stdout)
		}
	})
	t.Run("retry --wait releases the rolled back revision again", func(t *testing.T) {
		rolledBack := a.View()
		r := mustRun(t, a.NS(), "retry", "orders", "--wait", "-o", "json")
		var doc struct {
			Annotation string
			Waited     bool
			Warnings   []string
			Status     struct{ Phase, Revision string }
		}
		parse(t, "json", r.stdout, &doc)
		if doc.Annotation != annotations.Retry || !doc.Waited || len(doc.Warnings) > 0 || doc.Status.Phase != "Progressing" || doc.Status.Revision != rolledBack.Revision {
			t.Errorf("parsed %+v; rolled back revision %s", doc, rolledBack.Revision)
		}
		// Checked at once: --wait promised the controller was done.
		if d := a.StableDep(); d.Annotations[annotations.Phase] != "Progressing" {
			t.Errorf("phase %s right after retry --wait", d.Annotations[annotations.Phase])
		} else if _, ok := d.Annotations[annotations.Retry]; ok {
			t.Error("retry still pending after retry --wait")
		}
		a.WaitEvent(stages.ReasonRetried, rolledBack.Revision, 30*time.Second)
		a.WaitCanaryWeight(10, time.Minute)
	})
	t.Run("the retried release rolls back like any other", func(t *testing.T) {
		mustRun(t, a.NS(), "rollback", "orders", "--reason", "retry seen", "--wait", "--timeout", "1m")
		if r := mustRun(t, a.NS(), "history", "orders"); !strings.Contains(r.stdout, "retry seen") {
			t.Errorf("history:\n%s", r.stdout)
		}
	})
	t.Run("promote --wait returns once the next release succeeded", func(t *testing.T) {
		a.Release("payment:v3", nil)
		a.WaitCanaryWeight(10, time.Minute)
		r := mustRun(t, a.NS(), "promote", "orders", "--wait", "-o", "json")
		var doc struct {
			Waited bool
			Status struct{ Phase string }
		}
		parse(t, "json", r.stdout, &doc)
		if !doc.Waited || doc.Status.Phase != "Succeeded" {
			t.Errorf("parsed %+v", doc)
		}
		if img := a.StableDep().Spec.Template.Spec.Containers[0].Image; img != "payment:v3" {
			t.Errorf("stable runs %s after promote --wait", img)
		}
	})
}

// TestBuiltBinary runs the binary as users do: built as kubectl-meshcanary,
// found by kubectl on PATH, on a terminal, and from the hack/ scripts.
func TestBuiltBinary(t *testing.T) {
	t.Parallel()
	bin := buildPlugin(t)
	plugin := filepath.Join(bin, "kubectl-meshcanary")

	t.Run("kubectl finds the plugin on PATH", func(t *testing.T) {
		t.Parallel()
		kubectl, err := exec.LookPath("kubectl")
		if err != nil {
			t.Fatalf("kubectl is needed to prove plugin discovery: %v", err)
		}
		a := suite.NewApp(t, "catalog", 2, nil)
		cmd := exec.Command(kubectl, "meshcanary", "list", "-n", a.NS(), "-o", "json")
		cmd.Env = pluginEnv(bin)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"name": "catalog"`) {
			t.Errorf("kubectl meshcanary list: %v\n%s", err, out)
		}
		cmd = exec.Command(kubectl, "meshcanary", "status", "--help")
		cmd.Env = pluginEnv(bin)
		out, err = cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "kubectl meshcanary status DEPLOYMENT") {
			t.Errorf("help should name the plugin as typed: %v\n%s", err, out)
		}
	})

	t.Run("without any kubeconfig the binary says how to provide one", func(t *testing.T) {
		t.Parallel()
		cmd := exec.Command(plugin, "list")
		cmd.Dir = t.TempDir()
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME="}
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "no Kubernetes configuration found: set KUBECONFIG, pass --kubeconfig") {
			t.Errorf("got %v:\n%s", err, out)
		}
		cmd = exec.Command(plugin, "status")
		cmd.Env = []string{"HOME="}
		if err := cmd.Run(); !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Errorf("a usage error exits %v, want 2", err)
		}
	})

	t.Run("status -w redraws on a terminal until the release succeeds", func(t *testing.T) {
		t.Parallel()
		a := suite.NewApp(t, "payment-service", 4, nil)
		a.Mesh(200)
		runController(t, a, fastPolicies)
		a.Release("payment:v2", nil)
		a.WaitPhase("Progressing", 30*time.Second)

		cmd := exec.Command(plugin, "status", "payment-service", "-w", "-n", a.NS())
		cmd.Env = pluginEnv(bin)
		tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 60, Cols: 200})
		harness.Must(t, err)
		defer func() { _ = tty.Close() }()
		var mu sync.Mutex
		var screen bytes.Buffer
		copied := make(chan struct{})
		go func() {
			defer close(copied)
			buf := make([]byte, 4096)
			for {
				n, err := tty.Read(buf)
				mu.Lock()
				screen.Write(buf[:n])
				mu.Unlock()
				if err != nil {
					return // EIO once the process is gone
				}
			}
		}()
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			if err != nil {
				mu.Lock()
				t.Fatalf("status -w: %v\n%s", err, screen.String())
			}
		case <-time.After(3 * time.Minute):
			_ = cmd.Process.Kill()
			mu.Lock()
			t.Fatalf("status -w did not end with the release; screen:\n%s", screen.String())
		}
		<-copied
		frames := strings.Split(screen.String(), "\x1b[H\x1b[2J")
		weights := map[string]bool{}
		stagesSeen := map[string]bool{}
		weightRE := regexp.MustCompile(`Weights:\s+stable \d+%, canary (\d+)%`)
		stageRE := regexp.MustCompile(`Stage:\s+(\d+/\d+)`)
		for _, f := range frames {
			if m := weightRE.FindStringSubmatch(f); m != nil {
				weights[m[1]] = true
			}
			if m := stageRE.FindStringSubmatch(f); m != nil {
				stagesSeen[m[1]] = true
			}
		}
		last := frames[len(frames)-1]
		t.Logf("%d frames; canary weights seen %v; stages seen %v; last frame:\n%s", len(frames)-1, weights, stagesSeen, last)
		if len(frames) < 4 || len(weights) < 2 || len(stagesSeen) < 2 {
			t.Errorf("%d frames, canary weights %v, stages %v: want several frames showing the release move", len(frames), weights, stagesSeen)
		}
		if !strings.Contains(last, "Succeeded") {
			t.Errorf("last frame is not the end of the release:\n%s", last)
		}
		if !strings.Contains(last, "watching, Ctrl-C to stop") {
			t.Errorf("frames lack the watch title:\n%s", last)
		}
	})

	t.Run("the hack scripts release, follow and roll back through the plugin", func(t *testing.T) {
		t.Parallel()
		a := suite.NewApp(t, "checkout", 2, nil)
		runController(t, a, heldPolicies)
		root := repoRoot(t)

		deploy := exec.Command(filepath.Join(root, "hack", "deploy-canary.sh"), "checkout", "app=payment:v2")
		deploy.Env = pluginEnv(bin, "NAMESPACE="+a.NS())
		var deployOut lockedBuffer
		deploy.Stdout, deploy.Stderr = &deployOut, &deployOut
		harness.Must(t, deploy.Start())
		deployDone := make(chan error, 1)
		go func() { deployDone <- deploy.Wait() }()
		t.Cleanup(func() { _ = deploy.Process.Kill() })

		a.WaitCanaryWeight(10, time.Minute)
		if img := a.Deployment("checkout-canary").Spec.Template.Spec.Containers[0].Image; img != "payment:v2" {
			t.Errorf("deploy-canary.sh set %s on the canary", img)
		}
		select {
		case err := <-deployDone:
			t.Fatalf("deploy-canary.sh ended while the release is in flight: %v\n%s", err, deployOut.String())
		default:
		}

		rollback := exec.Command(filepath.Join(root, "hack", "rollback.sh"), "checkout", "canary misbehaves")
		rollback.Env = pluginEnv(bin, "NAMESPACE="+a.NS())
		out, err := rollback.CombinedOutput()
		if err != nil {
			t.Fatalf("rollback.sh: %v\n%s", err, out)
		}
		if s, c := a.Weights(); s != 100 || c != 0 {
			t.Errorf("weights %d/%d when rollback.sh returned\n%s", s, c, out)
		}
		if !strings.Contains(string(out), "rolled back: stable serves 100%") {
			t.Errorf("rollback.sh output:\n%s", out)
		}

		select {
		case err := <-deployDone:
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(deployOut.String(), "was rolled back: manual rollback: canary misbehaves") {
				t.Errorf("deploy-canary.sh should fail with the rollback: %v\n%s", err, deployOut.String())
			}
		case <-time.After(time.Minute):
			t.Fatalf("deploy-canary.sh still following after the rollback:\n%s", deployOut.String())
		}
		if n := strings.Count(deployOut.String(), "Phase:"); n < 2 {
			t.Errorf("deploy-canary.sh printed %d frames, want the release's progress:\n%s", n, deployOut.String())
		}
	})
}

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
