package install

// The application of the rollout tests is one of manifests/examples, applied
// as a user would; everything else about it (releases, commands by
// annotation, weights, waits, the simulated mesh) is test/harness's.

import (
	"testing"

	"github.com/meshcanary/meshcanary/test/harness"
)

// applyExample applies a file of manifests/examples into ns with kubectl,
// exactly as the example's comments tell users to, and returns the app its
// stable Deployment heads once the stable pods are available.
func applyExample(t testing.TB, ns, file, stable string) *harness.App {
	t.Helper()
	if r := kubectl(t, "apply", "-n", ns, "-f", file); r.err != nil {
		t.Fatalf("applying %s: %s", file, r)
	}
	return suite.ExistingApp(t, ns, stable)
}
