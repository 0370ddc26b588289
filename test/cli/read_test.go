package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/apis/meshcanary/v1alpha1"
	"github.com/meshcanary/meshcanary/pkg/release"
	"github.com/meshcanary/meshcanary/pkg/stages"
	"github.com/meshcanary/meshcanary/pkg/status"
	"github.com/meshcanary/meshcanary/test/harness"
)

// published is what the controller publishes mid-release (stage 2/3 at
// 50%), so that every field of the read commands has a known value.
type published struct {
	state    stages.State
	analysis status.Analysis
	history  []status.Release
}

func midRelease() published {
	now := time.Now().UTC()
	return published{
		state: stages.State{
			Phase: stages.Progressing, Revision: "rev-b", Stage: 1, Weight: 50,
			StageStart: now.Add(-30 * time.Second), Started: now.Add(-2 * time.Minute),
			Passes: 2, LastVerdict: stages.Pass, Message: "stage 2/3 (50%): all 1 checks passed",
		},
		analysis: status.Analysis{
			At: now.Add(-3 * time.Second), WindowSeconds: 2, Verdict: "Pass", Message: "all 1 checks passed",
			CanaryRequests: 200, StableRequests: 200,
			Checks: []status.Check{{Metric: "error-rate", Canary: new(0.0125), Stable: new(0.01), Bound: "max", Threshold: "5%", Verdict: "Pass"}},
		},
		history: []status.Release{{
			Revision: "rev-a", Images: []string{"app=payment:v1"}, Started: now.Add(-time.Hour), Finished: now.Add(-50 * time.Minute),
			StagesReached: "3/3", Result: "promoted", Reason: "all stages passed", DecidedBy: "analysis",
		}},
	}
}

// summary is what the controller mirrors on the stable Deployment, with
// the stage duration the clock needs.
func (p published) summary() map[string]string {
	return map[string]string{
		annotations.Phase: string(p.state.Phase), annotations.Weight: strconv.Itoa(p.state.Weight), annotations.Stage: "2/3",
		annotations.Revision: p.state.Revision, annotations.Message: p.state.Message, annotations.StageDuration: "5m",
	}
}

// publish writes p as the controller publishes it, without running a
// controller: the summary on the Deployment, the state, last analysis and
// history in its CanaryRelease.
func publish(t *testing.T, a *harness.App, p published) {
	t.Helper()
	ctx := context.Background()
	a.PatchDeploymentMerge(a.Name(), map[string]any{"metadata": map[string]any{"annotations": p.summary()}})
	cr, err := release.Create(ctx, a.Dyn(), release.NewForDeployment(a.StableDep()))
	harness.Must(t, err)
	state, err := release.EncodeJSON(p.state)
	harness.Must(t, err)
	analysis, err := release.EncodeJSON(p.analysis)
	harness.Must(t, err)
	cr.Status = v1alpha1.CanaryReleaseStatus{
		Phase: string(p.state.Phase), Stage: int32(p.state.Stage), Stages: 3, StageLabel: "2/3", Weight: int32(p.state.Weight),
		Revision: p.state.Revision, Message: p.state.Message, State: state, LastAnalysis: analysis,
	}
	// The history converts through its JSON form, which both types share.
	b, err := json.Marshal(p.history)
	harness.Must(t, err)
	harness.Must(t, json.Unmarshal(b, &cr.Status.History))
	_, err = release.UpdateStatus(ctx, a.Dyn(), cr)
	harness.Must(t, err)
}

// publishLegacy writes p all in annotations, as versions before the
// CanaryRelease did: no CanaryRelease at all.
func publishLegacy(t *testing.T, a *harness.App, p published) {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		harness.Must(t, err)
		return string(b)
	}
	ann := p.summary()
	ann[annotations.State], ann[annotations.Analysis], ann[annotations.History] = enc(p.state), enc(p.analysis), enc(p.history)
	a.PatchDeploymentMerge(a.Name(), map[string]any{"metadata": map[string]any{"annotations": ann}})
}

func TestReadCommands(t *testing.T) {
	t.Parallel()
	a := suite.NewAppWith(t, "payments", 2, harness.AppOptions{CanaryWeight: 50})
	publish(t, a, midRelease())
	// A Deployment that is not opted in is neither listed nor completed.
	suite.NewAppWith(t, "batch", 0, harness.AppOptions{Namespace: a.NS(), NotOptedIn: true, StableOnly: true})

	t.Run("status shows phase, stage clock, weights from the VirtualService and the checks", func(t *testing.T) {
		r := mustRun(t, a.NS(), "status", "payments")
		for _, s := range []string{
			"Phase:      Progressing",
			"2/3, 30s elapsed, 4m30s left",
			"stable 50%, canary 50%   (VirtualService " + a.NS() + "/payments)",
			"error-rate   1.25%    1%       max     5%          Pass",
			"Recent releases:", "rev-a", "promoted",
		} {
			if !hasText(r.stdout, s) {
				t.Errorf("output lacks %q:\n%s", s, r.stdout)
			}
		}
	})
	for _, format := range []string{"json", "yaml"} {
		t.Run("status -o "+format+" parses back", func(t *testing.T) {
			var doc struct {
				Phase   string `json:"phase"`
				Stage   string `json:"stage"`
				Active  bool   `json:"active"`
				Weights struct {
					Stable, Canary int
					Source         string
				} `json:"weights"`
				Clock struct {
					RemainingSeconds float64 `json:"remainingSeconds"`
				} `json:"clock"`
				Analysis status.Analysis `json:"analysis"`
				History  []status.Release
			}
			parse(t, format, mustRun(t, a.NS(), "status", "deployment/payments", "-o", format).stdout, &doc)
			if doc.Phase != "Progressing" || doc.Stage != "2/3" || !doc.Active || doc.Weights.Stable != 50 || doc.Weights.Canary != 50 ||
				!strings.HasPrefix(doc.Weights.Source, "VirtualService") || doc.Clock.RemainingSeconds < 200 ||
				len(doc.Analysis.Checks) != 1 || *doc.Analysis.Checks[0].Canary != 0.0125 || len(doc.History) != 1 {
				t.Errorf("parsed %+v", doc)
			}
		})
	}

	t.Run("list shows each opted-in Deployment with its last result", func(t *testing.T) {
		r := mustRun(t, a.NS(), "list")
		if !hasText(r.stdout, "payments Progressing 50% 2/3 promoted 50m ago") || strings.Contains(r.stdout, "batch") {
			t.Errorf("list:\n%s", r)
		}
	})
	t.Run("list -A adds the namespace", func(t *testing.T) {
		r := mustRun(t, a.NS(), "list", "-A")
		if !strings.Contains(r.stdout, "NAMESPACE") || !hasText(r.stdout, a.NS()+" payments Progressing") {
			t.Errorf("list -A:\n%s", r)
		}
	})
	for _, format := range []string{"json", "yaml"} {
		t.Run("list -o "+format+" parses back", func(t *testing.T) {
			var doc struct {
				Items []struct {
					Namespace, Name, Phase, Stage, LastResult string
					Weight                                    int
				}
			}
			parse(t, format, mustRun(t, a.NS(), "list", "-o", format).stdout, &doc)
			if len(doc.Items) != 1 || doc.Items[0].Name != "payments" || doc.Items[0].Weight != 50 || doc.Items[0].LastResult != "promoted" {
				t.Errorf("parsed %+v", doc)
			}
		})
	}
	t.Run("list in a namespace without rollouts says so", func(t *testing.T) {
		r := mustRun(t, suite.Env().NewNamespace(t), "list")
		if r.stdout != "" || !strings.Contains(r.stderr, "No opted-in Deployments found") {
			t.Errorf("empty list:\n%s", r)
		}
	})

	t.Run("history is a table of releases", func(t *testing.T) {
		r := mustRun(t, a.NS(), "history", "payments")
		for _, s := range []string{"STARTED", "rev-a", "app=payment:v1", "10m0s", "3/3", "promoted", "analysis", "all stages passed"} {
			if !hasText(r.stdout, s) {
				t.Errorf("history lacks %q:\n%s", s, r.stdout)
			}
		}
	})
	for _, format := range []string{"json", "yaml"} {
		t.Run("history -o "+format+" parses back", func(t *testing.T) {
			var doc struct {
				Name     string
				Releases []status.Release
			}
			parse(t, format, mustRun(t, a.NS(), "history", "payments", "-o", format).stdout, &doc)
			if doc.Name != "payments" || len(doc.Releases) != 1 || doc.Releases[0].Result != "promoted" || doc.Releases[0].Images[0] != "app=payment:v1" {
				t.Errorf("parsed %+v", doc)
			}
		})
	}

	t.Run("deployment names complete from the cluster", func(t *testing.T) {
		r := runRaw(t, "__complete", "status", "--kubeconfig", suite.Kubeconfig(), "-n", a.NS(), "pay")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "payments\n") || strings.Contains(r.stdout, "batch") {
			t.Errorf("completion:\n%s", r)
		}
		r = runRaw(t, "__complete", "init", "--kubeconfig", suite.Kubeconfig(), "-n", a.NS(), "")
		if !strings.Contains(r.stdout, "batch") {
			t.Errorf("init completes any Deployment:\n%s", r)
		}
	})
	t.Run("completion scripts are generated for each shell", func(t *testing.T) {
		for _, shell := range []string{"bash", "zsh", "fish"} {
			if r := runRaw(t, "completion", shell); r.code != 0 || !strings.Contains(r.stdout, "__complete") {
				t.Errorf("completion %s:\n%.300s", shell, r.stdout)
			}
		}
	})
}

// TestReadCommandsWithoutACanaryRelease reads a Deployment as a version
// that kept everything in annotations left it: the plugin must still show
// it, from the annotations alone.
func TestReadCommandsWithoutACanaryRelease(t *testing.T) {
	t.Parallel()
	a := suite.NewAppWith(t, "invoices", 2, harness.AppOptions{CanaryWeight: 50})
	publishLegacy(t, a, midRelease())
	if a.CanaryRelease() != nil {
		t.Fatal("the fixture must have no CanaryRelease")
	}
	r := mustRun(t, a.NS(), "status", "invoices")
	for _, s := range []string{"Phase: Progressing", "2/3, 30s elapsed", "error-rate 1.25% 1% max 5% Pass", "Recent releases:", "rev-a"} {
		if !hasText(r.stdout, s) {
			t.Errorf("status lacks %q:\n%s", s, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "Warning:") {
		t.Errorf("status warns:\n%s", r.stdout)
	}
	if r := mustRun(t, a.NS(), "list"); !hasText(r.stdout, "invoices Progressing 50% 2/3 promoted 50m ago") {
		t.Errorf("list:\n%s", r)
	}
	if r := mustRun(t, a.NS(), "history", "invoices"); !hasText(r.stdout, "rev-a") || !hasText(r.stdout, "all stages passed") {
		t.Errorf("history:\n%s", r)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "orders", 2, nil)
	suite.NewAppWith(t, "legacy", 0, harness.AppOptions{Namespace: a.NS(), NotOptedIn: true, StableOnly: true})
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"status of an unknown deployment", []string{"status", "nope"}, 1, fmt.Sprintf(`deployment "nope" not found in namespace %q`, a.NS())},
		{"rollback of an unknown deployment", []string{"rollback", "nope", "--reason", "x"}, 1, fmt.Sprintf(`deployment "nope" not found in namespace %q`, a.NS())},
		{"history of an unknown deployment", []string{"history", "nope"}, 1, `deployment "nope" not found`},
		{"init of an unknown deployment", []string{"init", "nope"}, 1, `deployment "nope" not found`},
		{"lint of an unknown deployment", []string{"lint", "nope"}, 1, `deployment "nope" not found`},
		{"status of a deployment not opted in", []string{"status", "legacy"}, 1, `deployment "legacy" is not opted in: annotate it with meshcanary.io/enabled=true`},
		{"pause of a deployment not opted in", []string{"pause", "legacy"}, 1, `deployment "legacy" is not opted in`},
		{"a usage error exits 2", []string{"status"}, 2, "expected the name of a Deployment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, a.NS(), tt.args...)
			if r.code != tt.wantCode || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("want exit %d and %q; got %s", tt.wantCode, tt.want, r)
			}
		})
	}
	t.Run("a kubeconfig that does not exist fails like kubectl", func(t *testing.T) {
		r := runRaw(t, "status", "orders", "--kubeconfig", "/nonexistent")
		if r.code != 1 || !strings.Contains(r.stderr, "stat /nonexistent: no such file or directory") {
			t.Errorf("got %s", r)
		}
	})
	t.Run("a command that fails leaves the Deployment unchanged", func(t *testing.T) {
		if _, ok := a.Deployment("legacy").Annotations[annotations.Pause]; ok {
			t.Error("pause was written on a Deployment that is not opted in")
		}
	})
}
