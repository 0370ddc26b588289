package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestArgumentHandling(t *testing.T) {
	t.Setenv("KUBECONFIG", "/nonexistent/kubeconfig")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		// wantErr must appear in what the command printed to stderr.
		wantErr string
	}{
		{"status without a deployment is a usage error", []string{"status"}, ExitUsage, "expected the name of a Deployment"},
		{"status with two deployments is a usage error", []string{"status", "a", "b"}, ExitUsage, "expected one Deployment name, got 2 arguments"},
		{"a pod instead of a deployment is a usage error", []string{"status", "pod/x"}, ExitUsage, `"pod/x": expected the name of a Deployment`},
		{"an unknown output format is a usage error", []string{"status", "x", "-o", "wide"}, ExitUsage, `--output "wide": expected json or yaml`},
		{"--wait-start without -w is a usage error", []string{"status", "x", "--wait-start", "1m"}, ExitUsage, "--wait-start needs -w"},
		{"an unknown flag is a usage error", []string{"status", "x", "--bogus"}, ExitUsage, "unknown flag: --bogus"},
		{"an unknown command is a usage error", []string{"statsu"}, ExitUsage, `unknown command "statsu"`},
		{"rollback without a reason is a usage error", []string{"rollback", "x"}, ExitUsage, "--reason is required"},
		{"rollback with a blank reason is a usage error", []string{"rollback", "x", "--reason", "  "}, ExitUsage, "--reason is required"},
		{"--timeout without --wait is a usage error", []string{"pause", "x", "--timeout", "1m"}, ExitUsage, "--timeout needs --wait"},
		{"a zero timeout is a usage error", []string{"promote", "x", "--wait", "--timeout", "0s"}, ExitUsage, "expected a duration longer than 0s"},
		{"approve has no --wait", []string{"approve", "x", "--wait"}, ExitUsage, "unknown flag: --wait"},
		{"retry without a deployment is a usage error", []string{"retry"}, ExitUsage, "expected the name of a Deployment"},
		{"retry --timeout without --wait is a usage error", []string{"retry", "x", "--timeout", "1m"}, ExitUsage, "--timeout needs --wait"},
		{"retry --wait reaches the cluster", []string{"retry", "deploy/x", "--wait"}, ExitFailure, "no Kubernetes configuration found"},
		{"list takes no arguments", []string{"list", "x"}, ExitUsage, "unexpected arguments: x"},
		{"lint with nothing to lint is a usage error", []string{"lint"}, ExitUsage, "nothing to lint"},
		{"init --apply with --stable-manifest is a usage error", []string{"init", "x", "--apply", "--stable-manifest"}, ExitUsage, "[apply stable-manifest]"},
		{"init with an invalid subset label is a usage error", []string{"init", "x", "--subset-label", "bad label"}, ExitUsage, `--subset-label "bad label"`},
		{"a missing kubeconfig fails like kubectl", []string{"status", "x", "--kubeconfig", "/nonexistent"}, ExitFailure, "loading kubeconfig: stat /nonexistent: no such file or directory"},
		{"kubectl's spelling deployment/x reaches the cluster", []string{"history", "deployment/x"}, ExitFailure, "no Kubernetes configuration found"},
		{"the namespace flag is accepted before the command", []string{"-n", "shop", "list"}, ExitFailure, "no Kubernetes configuration found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := execute(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			if !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantErr, stderr)
			}
			if tt.wantCode == ExitUsage && !strings.Contains(stderr, "--help") && !strings.Contains(stderr, "unknown") && !strings.Contains(stderr, "flags in the group") {
				t.Errorf("a usage error should point at --help:\n%s", stderr)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"no error is success", nil, ExitOK},
		{"a usage error exits 2 even when wrapped", fmt.Errorf("context: %w", usagef(nil, "bad")), ExitUsage},
		{"problems found exit 1", problemsError{n: 2}, ExitFailure},
		{"a failure exits 1", errors.New("deployment \"x\" not found"), ExitFailure},
		{"cobra's unknown command exits 2", errors.New(`unknown command "x" for "meshcanary"`), ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ExitCode(tt.err); got != tt.want {
				t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestDeploymentArgSpellings(t *testing.T) {
	tests := []struct {
		arg, want string
		usage     bool
	}{
		{"web", "web", false},
		{"deployment/web", "web", false},
		{"deploy/web", "web", false},
		{"deployments.apps/web", "web", false},
		{"svc/web", "", true},
		{"deployment/", "", true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s is read as %q", tt.arg, tt.want), func(t *testing.T) {
			got, err := deploymentArg(nil, tt.arg)
			if (err != nil) != tt.usage || got != tt.want {
				t.Errorf("deploymentArg(%q) = %q, %v", tt.arg, got, err)
			}
			if err != nil && ExitCode(err) != ExitUsage {
				t.Errorf("error %v is not a usage error", err)
			}
		})
	}
}

func TestVersionPrintsEveryFormat(t *testing.T) {
	out, _, code := execute(t, "version")
	if code != 0 || !strings.HasPrefix(out, "meshcanary ") {
		t.Fatalf("version: code %d, output %q", code, out)
	}
	for _, format := range []string{"json", "yaml"} {
		t.Run("version -o "+format+" parses back", func(t *testing.T) {
			out, _, code := execute(t, "version", "-o", format)
			if code != 0 {
				t.Fatalf("exit code %d", code)
			}
			var v versionDoc
			var err error
			if format == "json" {
				err = json.Unmarshal([]byte(out), &v)
			} else {
				err = yaml.Unmarshal([]byte(out), &v)
			}
			if err != nil || v.GoVersion == "" || v.Platform == "" {
				t.Errorf("parsed %+v, %v from:\n%s", v, err, out)
			}
		})
	}
}

func TestCompletionScriptsAreGenerated(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run("completion "+shell+" prints a script", func(t *testing.T) {
			out, stderr, code := execute(t, "completion", shell)
			if code != 0 || !strings.Contains(out, "meshcanary") || len(out) < 500 {
				t.Errorf("code %d, %d bytes, stderr %q", code, len(out), stderr)
			}
		})
	}
}

func TestEveryOperatorCommandTakesKubectlFlags(t *testing.T) {
	root := NewRootCommand(streamsForTest())
	for _, c := range root.Commands() {
		switch c.Name() {
		case "version", "completion", "help":
			continue
		}
		t.Run(c.Name()+" has --kubeconfig, --context and -n", func(t *testing.T) {
			for _, f := range []string{"kubeconfig", "context", "namespace"} {
				if c.Flags().Lookup(f) == nil {
					t.Errorf("no --%s", f)
				}
			}
			if c.Flags().ShorthandLookup("n") == nil {
				t.Error("no -n")
			}
		})
	}
}
