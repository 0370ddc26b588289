// Package install tests what users install and operate: the Helm chart, the
// plain manifests, the container image's contract, the dashboards and the
// alerts, against the real local control plane and Prometheus of
// internal/testenv.
package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/meshcanary/meshcanary/test/harness"
)

// suite is the one local control plane this package's tests share; each
// test works in namespaces of its own.
var suite = harness.NewSuite()

func TestMain(m *testing.M) { suite.Main(m) }

// scenarioMu serialises the tests that run a controller: a cluster-wide
// controller would also act on another test's opted-in Deployments, and
// Prometheus' scrape configuration is global to the environment. Tests that
// only render, lint or dry-run run alongside.
var scenarioMu sync.Mutex

// repoRoot is the repository's top directory; `go test` runs in the
// package's directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func chartDir(t testing.TB) string { return filepath.Join(repoRoot(t), "charts", "meshcanary") }

// result is what a command printed and how it ended.
type result struct {
	stdout, stderr string
	err            error
}

func (r result) String() string {
	return fmt.Sprintf("%v\nstdout:\n%s\nstderr:\n%s", r.err, r.stdout, r.stderr)
}

// run executes a command with a deadline; callers decide what a failure
// means, since several tests expect one.
func run(ctx context.Context, dir string, extraEnv []string, name string, args ...string) result {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), extraEnv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return result{stdout: out.String(), stderr: errb.String(), err: err}
}

var (
	helmOnce sync.Once
	helmBin  string
	helmErr  error
)

// helm runs the helm that hack/tools.sh builds (idempotent: it only checks
// its stamp when helm is there), with its state in the environment's
// directory so that nothing of the user's helm setup leaks in or out.
func helm(t testing.TB, args ...string) result {
	t.Helper()
	root := repoRoot(t)
	helmOnce.Do(func() {
		if r := run(context.Background(), root, nil, filepath.Join(root, "hack", "tools.sh"), "helm"); r.err != nil {
			helmErr = fmt.Errorf("building helm: %s", r)
			return
		}
		r := run(context.Background(), root, nil, filepath.Join(root, "hack", "tools.sh"), "bindir")
		if r.err != nil {
			helmErr = fmt.Errorf("finding the tool cache: %s", r)
			return
		}
		helmBin = filepath.Join(strings.TrimSpace(r.stdout), "helm")
	})
	if helmErr != nil {
		t.Fatal(helmErr)
	}
	home := filepath.Join(suite.Env().Dir, "helm")
	return run(context.Background(), root, []string{
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data"),
		"KUBECONFIG=" + suite.Env().Kubeconfig,
	}, helmBin, args...)
}

func kubectl(t testing.TB, args ...string) result {
	t.Helper()
	return run(context.Background(), repoRoot(t), nil, "kubectl", append([]string{"--kubeconfig", suite.Env().Kubeconfig}, args...)...)
}

// writeFile writes content to a new file in a directory of its own. Not
// t.TempDir: its path holds the test's name, and helm splits --values at
// commas.
func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	base := filepath.Join(suite.Env().Dir, "files")
	harness.Must(t, os.MkdirAll(base, 0o755))
	dir, err := os.MkdirTemp(base, "f")
	harness.Must(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	p := filepath.Join(dir, name)
	harness.Must(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

// render runs `helm template` with the given values files and returns the
// objects, failing the test when rendering fails.
func render(t testing.TB, release, namespace string, valuesFiles ...string) []*unstructured.Unstructured {
	t.Helper()
	args := []string{"template", release, chartDir(t), "--namespace", namespace}
	for _, f := range valuesFiles {
		args = append(args, "--values", f)
	}
	r := helm(t, args...)
	if r.err != nil {
		t.Fatalf("helm template: %s", r)
	}
	objs, err := decodeObjects(r.stdout)
	harness.Must(t, err)
	return objs
}

func decodeObjects(docs string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(docs), 64<<10)
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if obj == nil {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
}

// find returns the one object of a kind (and name, when not empty).
func find(t testing.TB, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind && (name == "" || o.GetName() == name) {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %s %q in the rendered chart, found %d", kind, name, len(found))
	}
	return found[0]
}

func kindsOf(objs []*unstructured.Unstructured) map[string]int {
	m := map[string]int{}
	for _, o := range objs {
		m[o.GetKind()]++
	}
	return m
}

var (
	crdOnce sync.Once
	crdErr  error
)

// installMonitoringCRDs installs minimal ServiceMonitor and PrometheusRule
// CRDs (testdata/; the real ones cannot be downloaded here) once for the
// package, so that the API server serves the kinds the chart renders.
func installMonitoringCRDs(t testing.TB) {
	t.Helper()
	crdOnce.Do(func() {
		crds, err := filepath.Abs(filepath.Join("testdata", "monitoring-crds.yaml"))
		if err != nil {
			crdErr = err
			return
		}
		if r := kubectl(t, "apply", "--server-side", "-f", crds); r.err != nil {
			crdErr = fmt.Errorf("applying the monitoring CRDs: %s", r)
			return
		}
		r := kubectl(t, "wait", "--for=condition=Established", "--timeout=60s",
			"crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com")
		if r.err != nil {
			crdErr = fmt.Errorf("waiting for the monitoring CRDs: %s", r)
		}
	})
	if crdErr != nil {
		t.Fatal(crdErr)
	}
}

// restrictedNamespace is a namespace of the test that enforces the
// restricted Pod Security profile, and warns about it, so that the API
// server itself judges the chart's pod template.
func restrictedNamespace(t testing.TB) string {
	t.Helper()
	ns := suite.Env().NewNamespace(t)
	k, _ := suite.Clients(t)
	patch := `{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":"restricted","pod-security.kubernetes.io/warn":"restricted"}}}`
	_, err := k.CoreV1().Namespaces().Patch(context.Background(), ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	harness.Must(t, err)
	return ns
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// controllerBinary builds the controller as the Dockerfile's build stage
// does (its environment, flags and package; see dockerGoBuild), once for the
// package, so that the tests check and run the binary the image ships.
func controllerBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		envs, args, err := dockerGoBuild(repoRoot(t))
		if err != nil {
			binErr = err
			return
		}
		out := filepath.Join(suite.Env().Dir, "bin", "meshcanary")
		for i, a := range args {
			if a == "-o" && i+1 < len(args) {
				args[i+1] = out
			}
		}
		r := run(context.Background(), repoRoot(t), envs, "go", args...)
		if r.err != nil {
			binErr = fmt.Errorf("building the controller as the Dockerfile does: %s", r)
			return
		}
		binPath = out
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// dockerGoBuild reads the Dockerfile's `go build` RUN line: the variables
// set before it (those set from build ARGs, like GOOS=$TARGETOS, are left
// to the host) and go's arguments.
func dockerGoBuild(root string) (envs, args []string, err error) {
	raw, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		return nil, nil, err
	}
	joined := strings.ReplaceAll(string(raw), "\\\n", " ")
	for _, line := range strings.Split(joined, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "RUN ") || !strings.Contains(line, "go build") {
			continue
		}
		words := shellWords(strings.TrimPrefix(strings.TrimSpace(line), "RUN "))
		for i, w := range words {
			switch {
			case strings.HasPrefix(w, "--mount="):
			case w == "go" && i+1 < len(words) && words[i+1] == "build":
				return envs, words[i+1:], nil
			case strings.Contains(w, "=") && !strings.Contains(w, "$"):
				envs = append(envs, w)
			}
		}
	}
	return nil, nil, fmt.Errorf("no `go build` RUN line in the Dockerfile")
}

// shellWords splits a command line at blanks, keeping double-quoted parts
// together (-ldflags="-s -w" is one word, -ldflags=-s -w without quotes).
func shellWords(s string) []string {
	var out []string
	var cur strings.Builder
	quoted, inWord := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}

// warnings lists the "Warning:" lines kubectl prints for what the API
// server flagged (Pod Security, deprecated APIs, unknown fields).
func warnings(stderr string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "Warning:") {
			out = append(out, l)
		}
	}
	return out
}
