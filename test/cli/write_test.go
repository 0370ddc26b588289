package cli

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/controller"
	"github.com/meshcanary/meshcanary/test/harness"
)

// TestCommandAnnotations checks what each command writes, with no
// controller to act on it: the annotation stays for the next command and
// status lists it as pending.
func TestCommandAnnotations(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "ledger", 2, nil)
	steps := []struct {
		name    string
		args    []string
		format  string
		wantKey string
		// wantValue nil means the annotation is absent afterwards.
		wantValue *string
	}{
		{"rollback writes the reason", []string{"rollback", "ledger", "--reason", "p99 regression"}, "", annotations.Rollback, new("p99 regression")},
		{"promote writes true", []string{"promote", "ledger"}, "json", annotations.Promote, new("true")},
		{"pause writes true", []string{"pause", "ledger"}, "yaml", annotations.Pause, new("true")},
		{"resume removes pause", []string{"resume", "ledger"}, "json", annotations.Pause, nil},
		{"approve writes who approved", []string{"approve", "ledger", "--by", "alice (CHG-42)"}, "yaml", annotations.Approve, new("alice (CHG-42)")},
		{"retry writes true", []string{"retry", "ledger"}, "json", annotations.Retry, new("true")},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			args := s.args
			if s.format != "" {
				args = append(args, "-o", s.format)
			}
			r := mustRun(t, a.NS(), args...)
			got, ok := a.StableDep().Annotations[s.wantKey]
			if s.wantValue == nil && ok || s.wantValue != nil && got != *s.wantValue {
				t.Errorf("%s = %q (present %v), want %v", s.wantKey, got, ok, s.wantValue)
			}
			if s.format == "" {
				if !strings.Contains(r.stdout, "deployment.apps/ledger annotated: "+s.wantKey) {
					t.Errorf("output:\n%s", r)
				}
				// No controller has reconciled: the phase is unknown, and
				// the command says the controller may ignore it.
				if !strings.Contains(r.stderr, "Warning: no release") {
					t.Errorf("no warning about the phase:\n%s", r)
				}
				return
			}
			var doc struct {
				Command, Annotation string
				Value               *string
				Removed, Waited     bool
				Warnings            []string
				Status              struct {
					Name            string
					PendingCommands map[string]string `json:"pendingCommands"`
				}
			}
			parse(t, s.format, r.stdout, &doc)
			if doc.Command != s.args[0] || doc.Annotation != s.wantKey || doc.Waited || doc.Status.Name != "ledger" ||
				(s.wantValue == nil) != doc.Removed || (s.wantValue != nil && (doc.Value == nil || *doc.Value != *s.wantValue)) {
				t.Errorf("parsed %+v", doc)
			}
			if s.wantValue != nil && doc.Status.PendingCommands[s.wantKey] != *s.wantValue {
				t.Errorf("status does not list %s as pending: %v", s.wantKey, doc.Status.PendingCommands)
			}
		})
	}
	t.Run("status lists the commands not yet acted on", func(t *testing.T) {
		r := mustRun(t, a.NS(), "status", "ledger")
		if !strings.Contains(r.stdout, `Pending:`) || !strings.Contains(r.stdout, "meshcanary.io/rollback=p99 regression") {
			t.Errorf("status:\n%s", r.stdout)
		}
	})
}

// decodeDocs reads a multi-document YAML stream, skipping empty documents.
func decodeDocs(t *testing.T, out string) []map[string]any {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(out), 4096)
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		harness.Must(t, err)
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

func TestInit(t *testing.T) {
	t.Parallel()
	// A service as teams have it before meshcanary: no subset label.
	a := suite.NewAppWith(t, "web", 1, harness.AppOptions{NotOptedIn: true, StableOnly: true, StableLabels: map[string]string{"app": "web"}})
	ns, k, d := a.NS(), a.Kube(), a.Dyn()

	t.Run("init prints the objects as YAML documents and the steps for the selector", func(t *testing.T) {
		r := mustRun(t, ns, "init", "web")
		var kinds []string
		for _, doc := range decodeDocs(t, r.stdout) {
			kinds = append(kinds, doc["kind"].(string))
		}
		if strings.Join(kinds, ",") != "Deployment,DestinationRule,VirtualService" {
			t.Errorf("documents %v:\n%s", kinds, r.stdout)
		}
		for _, s := range []string{"selector is immutable", "--cascade=orphan", "--stable-manifest > web-stable.yaml", "meshcanary.io/enabled=true"} {
			if !strings.Contains(r.stdout, s) {
				t.Errorf("output lacks %q:\n%s", s, r.stdout)
			}
		}
	})
	for _, format := range []string{"json", "yaml"} {
		t.Run("init -o "+format+" parses back", func(t *testing.T) {
			var plan struct {
				Service string
				Items   []struct{ Kind, Name, Action string }
				Steps   []string
			}
			parse(t, format, mustRun(t, ns, "init", "web", "-o", format).stdout, &plan)
			if plan.Service != "web" || len(plan.Items) != 4 || plan.Items[3].Action != "manual" || len(plan.Steps) < 6 {
				t.Errorf("parsed %+v", plan)
			}
		})
	}
	t.Run("init --apply creates what it can and reports each object", func(t *testing.T) {
		r := mustRun(t, ns, "init", "web", "--apply")
		for _, s := range []string{
			"deployment.apps/web-canary created", "destinationrule.networking.istio.io/web created",
			"virtualservice.networking.istio.io/web created", "deployment.apps/web not applied", "Steps to do by hand",
		} {
			if !strings.Contains(r.stdout, s) {
				t.Errorf("output lacks %q:\n%s", s, r.stdout)
			}
		}
		c := a.Deployment("web-canary")
		if *c.Spec.Replicas != 0 || c.Spec.Selector.MatchLabels["track"] != "canary" || c.Spec.Template.Labels["track"] != "canary" {
			t.Errorf("canary %+v", c.Spec)
		}
		if annotations.IsEnabled(a.StableDep().Annotations) {
			t.Error("opted in before the selector was fixed")
		}
		if s, cw := a.Weights(); s != 100 || cw != 0 {
			t.Errorf("created route %d/%d", s, cw)
		}
	})
	t.Run("init --apply again changes nothing", func(t *testing.T) {
		r := mustRun(t, ns, "init", "web", "--apply")
		for _, s := range []string{"deployment.apps/web-canary unchanged", "destinationrule.networking.istio.io/web unchanged", "virtualservice.networking.istio.io/web unchanged"} {
			if !strings.Contains(r.stdout, s) {
				t.Errorf("output lacks %q:\n%s", s, r.stdout)
			}
		}
	})
	t.Run("the printed steps recreate the stable Deployment and make it fit", func(t *testing.T) {
		r := mustRun(t, ns, "init", "web", "--stable-manifest")
		var m map[string]any
		parse(t, "yaml", r.stdout, &m)
		u := unstructured.Unstructured{Object: m}
		// The steps with kubectl, done here through the API.
		ctx := context.Background()
		orphan := metav1.DeletePropagationOrphan
		harness.Must(t, k.AppsV1().Deployments(ns).Delete(ctx, "web", metav1.DeleteOptions{PropagationPolicy: &orphan}))
		harness.WaitFor(t, "the old Deployment gone", 30*time.Second, func() (bool, string) {
			_, err := k.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			return err != nil, "still there"
		})
		_, err := d.Resource(deploymentsGVR()).Namespace(ns).Create(ctx, &u, metav1.CreateOptions{})
		harness.Must(t, err)
		mustRun(t, ns, "init", "web", "--apply")
		if !annotations.IsEnabled(a.StableDep().Annotations) {
			t.Errorf("not opted in once everything fits:\n%s", r)
		}
		if r := run(t, ns, "lint", "web"); r.code != 0 || !strings.Contains(r.stdout, "No problems found") {
			t.Errorf("lint after init:\n%s", r)
		}
	})
}

func TestInitExtendsExistingObjects(t *testing.T) {
	t.Parallel()
	a := suite.NewAppWith(t, "cart", 1, harness.AppOptions{NotOptedIn: true, StableOnly: true, Annotations: map[string]string{"team": "shop"}})
	ns, d := a.NS(), a.Dyn()
	// The team's own DestinationRule: a traffic policy and the stable
	// subset only.
	a.ApplyYAML(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart-rules}
spec:
  host: cart
  trafficPolicy: {connectionPool: {http: {http1MaxPendingRequests: 7}}}
  subsets:
  - name: stable
    labels: {track: stable}
`, controller.DestinationRuleGVR())

	r := mustRun(t, ns, "init", "cart", "--apply")
	for _, s := range []string{"destinationrule.networking.istio.io/cart-rules changed", "deployment.apps/cart changed (opt in: meshcanary.io/enabled=true)"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("output lacks %q:\n%s", s, r.stdout)
		}
	}
	dr, err := d.Resource(controller.DestinationRuleGVR()).Namespace(ns).Get(context.Background(), "cart-rules", metav1.GetOptions{})
	harness.Must(t, err)
	subsets, _, _ := unstructured.NestedSlice(dr.Object, "spec", "subsets")
	pending, _, _ := unstructured.NestedInt64(dr.Object, "spec", "trafficPolicy", "connectionPool", "http", "http1MaxPendingRequests")
	if len(subsets) != 2 || pending != 7 {
		t.Errorf("DestinationRule after init: subsets %v, http1MaxPendingRequests %d", subsets, pending)
	}
	st := a.StableDep()
	if !annotations.IsEnabled(st.Annotations) || st.Annotations["team"] != "shop" {
		t.Errorf("stable annotations %v", st.Annotations)
	}
	if r := run(t, ns, "lint", "cart"); r.code != 0 {
		t.Errorf("lint after init:\n%s", r)
	}
}

func TestLint(t *testing.T) {
	t.Parallel()
	a := suite.NewApp(t, "billing", 2, map[string]string{
		annotations.Stages:          "1,x",
		annotations.Policy:          "payments",
		"meshcanary.io/stage-durat": "1m",
	})
	// Break the route: the canary destination names a subset the
	// DestinationRule lacks.
	_, err := a.Dyn().Resource(controller.VirtualServiceGVR()).Namespace(a.NS()).Patch(context.Background(), "billing", "application/json-patch+json",
		[]byte(`[{"op":"replace","path":"/spec/http/1/route/1/destination/subset","value":"next"}]`), metav1.PatchOptions{})
	harness.Must(t, err)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	harness.Must(t, os.WriteFile(bad, []byte("policies:\n- name: payments\n  interval: 0s\n  stages: [{weight: 50, duration: 1m}, {weight: 10, duration: 1m}]\n"), 0o600))
	good := filepath.Join(dir, "good.yaml")
	harness.Must(t, os.WriteFile(good, []byte("policies:\n- name: checkout\n  stages: [{weight: 10, duration: 1m}, {weight: 100, duration: 1m}]\n"), 0o600))

	t.Run("every problem is reported with its object and field, and lint exits 1", func(t *testing.T) {
		r := run(t, a.NS(), "lint", "billing", "--policies", good)
		if r.code != 1 {
			t.Errorf("exit %d:\n%s", r.code, r)
		}
		for _, s := range []string{
			"metadata.annotations[meshcanary.io/stages]",
			"metadata.annotations[meshcanary.io/stage-durat]",
			"metadata.annotations[meshcanary.io/policy]", `policy "payments" is not in`,
			"VirtualService " + a.NS() + "/billing", "spec.http",
			"error: 3 problems found",
		} {
			if !strings.Contains(r.stdout+r.stderr, s) {
				t.Errorf("output lacks %q:\n%s", s, r)
			}
		}
	})
	t.Run("a policy file alone needs no cluster", func(t *testing.T) {
		r := runRaw(t, "lint", "--policies", bad, "--kubeconfig", "/nonexistent")
		if r.code != 1 || !strings.Contains(r.stdout, "policies[0].interval") || !strings.Contains(r.stdout, "policies[0].stages[1].weight") {
			t.Errorf("got %s", r)
		}
		if r := runRaw(t, "lint", "--policies", good, "--kubeconfig", "/nonexistent"); r.code != 0 || !strings.Contains(r.stdout, "No problems found") {
			t.Errorf("good file: %s", r)
		}
	})
	for _, format := range []string{"json", "yaml"} {
		t.Run("lint -o "+format+" parses back", func(t *testing.T) {
			r := run(t, a.NS(), "lint", "billing", "--policies", bad, "-o", format)
			var doc struct {
				Checked  []string
				Errors   int
				Warnings int
				Findings []struct{ Severity, Object, Field, Message string }
			}
			parse(t, format, r.stdout, &doc)
			fields := map[string]bool{}
			for _, f := range doc.Findings {
				fields[f.Field] = true
			}
			if r.code != 1 || len(doc.Checked) != 2 || doc.Errors < 4 || doc.Warnings != 1 ||
				!fields["policies[0].interval"] || !fields["metadata.annotations[meshcanary.io/stages]"] {
				t.Errorf("exit %d, parsed %+v", r.code, doc)
			}
		})
	}
}

// deploymentsGVR is apps/v1 Deployments, for creating one from a map.
func deploymentsGVR() schema.GroupVersionResource {
	return appsv1.SchemeGroupVersion.WithResource("deployments")
}
