package install

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/policy"
	"github.com/meshcanary/meshcanary/test/harness"
)

// TestInstallManifestsMatchTheChart runs the `make verify` check, so that a
// chart change without `hack/verify-manifests.sh --update` fails `make test`
// too, not only `make verify`.
func TestInstallManifestsMatchTheChart(t *testing.T) {
	t.Parallel()
	helm(t, "version") // builds helm first if needed, under helm's once
	r := run(t.Context(), repoRoot(t), nil, filepath.Join(repoRoot(t), "hack", "verify-manifests.sh"))
	if r.err != nil {
		t.Fatalf("manifests/install is stale: %s", r)
	}
}

// TestExampleManifestsAreAcceptedAndConfigured checks each example on the
// API server (dry run) and its opt-in annotations with the controller's own
// parser. The rollout tests then run releases on both examples.
func TestExampleManifestsAreAcceptedAndConfigured(t *testing.T) {
	t.Parallel()
	objs := render(t, "meshcanary", "meshcanary-system")
	f, err := policy.Parse([]byte(nested(t, find(t, objs, "ConfigMap", "meshcanary-policies").Object, "data")["policies.yaml"].(string)))
	harness.Must(t, err)
	var policies []string
	for _, p := range f.Policies {
		policies = append(policies, p.Name)
	}
	policies = append(policies, policy.DefaultPolicyName)

	for _, c := range []struct {
		name, file, stable string
	}{
		{"the canary example", "examples/canary/payment-service.yaml", "payment-service"},
		{"the blue/green example", "examples/blue-green/checkout.yaml", "checkout"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(repoRoot(t), "manifests", c.file)
			ns := suite.Env().NewNamespace(t)
			if r := kubectl(t, "apply", "--dry-run=server", "-n", ns, "-f", path); r.err != nil {
				t.Fatalf("the API server refused %s: %s", c.file, r)
			} else if w := warnings(r.stderr); len(w) > 0 {
				t.Errorf("the API server warned about %s: %v", c.file, w)
			}
			raw, err := os.ReadFile(path)
			harness.Must(t, err)
			docs, err := decodeObjects(string(raw))
			harness.Must(t, err)
			stable := find(t, docs, "Deployment", c.stable)
			ann := stable.GetAnnotations()
			if !annotations.IsEnabled(ann) {
				t.Errorf("%s is not opted in", c.stable)
			}
			spec, err := annotations.Parse(c.stable, ann)
			if err != nil {
				t.Fatalf("the controller would mark %s Invalid: %v", c.stable, err)
			}
			if !slices.Contains(policies, spec.Policy) {
				t.Errorf("%s uses policy %q, the chart's defaults have %v", c.stable, spec.Policy, policies)
			}
			canary := find(t, docs, "Deployment", spec.Canary)
			if r := toInt(nested(t, canary.Object, "spec")["replicas"]); r != 0 {
				t.Errorf("canary %s starts with %d replicas, want 0 between releases", spec.Canary, r)
			}
			find(t, docs, "VirtualService", spec.VirtualService)
			if unknown := annotations.UnknownKeys(ann); len(unknown) > 0 {
				t.Errorf("%s has annotations meshcanary does not know: %v", c.stable, unknown)
			}
		})
	}
}
