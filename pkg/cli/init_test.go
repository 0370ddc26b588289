package cli

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/meshcanary/meshcanary/pkg/annotations"
)

// bareApp is a Deployment and Service as most teams have them before
// meshcanary: no subset label anywhere.
func bareApp() initInput {
	return initInput{
		stable:      deployment("web", nil, nil, nil),
		service:     service("web", map[string]string{"app": "web"}),
		canaryName:  "web-canary",
		subsetLabel: "track",
	}
}

// labelledApp already has track=stable on the stable selector and pods.
func labelledApp() initInput {
	in := bareApp()
	in.stable = deployment("web", map[string]string{"team": "payments"}, map[string]string{"track": "stable"}, map[string]string{"track": "stable"})
	return in
}

func actions(p initPlan) string {
	var out []string
	for _, it := range p.Items {
		out = append(out, it.Kind+"/"+it.Name+":"+it.Action)
	}
	return strings.Join(out, " ")
}

func item(t *testing.T, p initPlan, kind, name string) initItem {
	t.Helper()
	for _, it := range p.Items {
		if it.Kind == kind && it.Name == name {
			return it
		}
	}
	t.Fatalf("no %s %s in %s", kind, name, actions(p))
	return initItem{}
}

func TestInitPlansWhatIsMissing(t *testing.T) {
	tests := []struct {
		name         string
		in           func(t *testing.T) initInput
		wantActions  string
		wantProblems int
		wantSteps    []string
	}{
		{
			name:        "a bare app gets canary, subsets and route, and steps for the immutable selector",
			in:          func(*testing.T) initInput { return bareApp() },
			wantActions: "Deployment/web-canary:create DestinationRule/web:create VirtualService/web:create Deployment/web:manual",
			wantSteps:   []string{"--cascade=orphan", "--stable-manifest", "rollout status", "delete replicaset -l 'app=web,!track'", "annotate deployment web meshcanary.io/enabled=true"},
		},
		{
			name:        "an app labelled already is opted in by annotation",
			in:          func(*testing.T) initInput { return labelledApp() },
			wantActions: "Deployment/web-canary:create DestinationRule/web:create VirtualService/web:create Deployment/web:annotate",
		},
		{
			name: "an app set up completely needs nothing",
			in: func(t *testing.T) initInput {
				in := labelledApp()
				in.stable.Annotations[annotations.Enabled] = "true"
				in.canary = deployment("web-canary", nil, map[string]string{"track": "canary"}, map[string]string{"track": "canary"})
				in.drs = []unstructured.Unstructured{object(t, fittingDR)}
				in.vss = []unstructured.Unstructured{object(t, fittingVS)}
				return in
			},
			wantActions: "Deployment/web-canary:none DestinationRule/web:none VirtualService/web:none Deployment/web:none",
		},
		{
			name: "an existing DestinationRule gets only the missing subset",
			in: func(t *testing.T) initInput {
				in := labelledApp()
				in.drs = []unstructured.Unstructured{object(t, strings.Replace(fittingDR, "  - name: canary\n    labels: {track: canary}\n", "", 1))}
				return in
			},
			wantActions: "Deployment/web-canary:create DestinationRule/web:add-subsets VirtualService/web:create Deployment/web:annotate",
		},
		{
			name: "a subset selecting other labels is a problem, not overwritten",
			in: func(t *testing.T) initInput {
				in := labelledApp()
				in.drs = []unstructured.Unstructured{object(t, strings.Replace(fittingDR, "{track: canary}", "{version: v2}", 1))}
				return in
			},
			wantActions:  "Deployment/web-canary:create VirtualService/web:create",
			wantProblems: 1,
		},
		{
			name: "a fitting VirtualService of another name is used and named in an annotation",
			in: func(t *testing.T) initInput {
				in := labelledApp()
				in.vss = []unstructured.Unstructured{object(t, strings.Replace(fittingVS, "name: web,", "name: web-routes,", 1))}
				return in
			},
			wantActions: "Deployment/web-canary:create DestinationRule/web:create VirtualService/web-routes:none Deployment/web:annotate",
		},
		{
			name: "a VirtualService that does not fit is left alone with what it must contain",
			in: func(t *testing.T) initInput {
				in := labelledApp()
				in.vss = []unstructured.Unstructured{object(t, "metadata: {name: web}\nspec:\n  hosts: [web]\n  http:\n  - route:\n    - destination: {host: web}\n")}
				return in
			},
			wantActions: "Deployment/web-canary:create DestinationRule/web:create VirtualService/web:manual",
			wantSteps:   []string{"kubectl -n shop edit virtualservice web", "annotate deployment web meshcanary.io/enabled=true"},
		},
		{
			name: "a Service selecting on the subset label is a problem",
			in: func(*testing.T) initInput {
				in := labelledApp()
				in.service = service("web", map[string]string{"app": "web", "track": "stable"})
				return in
			},
			wantActions:  "Deployment/web-canary:create DestinationRule/web:create VirtualService/web:create",
			wantProblems: 1,
		},
		{
			name: "a canary without the subset label is a problem and left alone",
			in: func(*testing.T) initInput {
				in := labelledApp()
				in.canary = deployment("web-canary", nil, nil, nil)
				return in
			},
			wantActions:  "DestinationRule/web:create VirtualService/web:create",
			wantProblems: 1,
		},
		{
			name: "stable pods carrying the label with another value is a problem",
			in: func(*testing.T) initInput {
				in := bareApp()
				in.stable.Spec.Template.Labels["track"] = "main"
				return in
			},
			wantActions:  "Deployment/web-canary:create DestinationRule/web:create VirtualService/web:create Deployment/web:manual",
			wantProblems: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := planInit(tt.in(t))
			if got := actions(p); got != tt.wantActions {
				t.Errorf("actions\n got %s\nwant %s", got, tt.wantActions)
			}
			if len(p.Problems) != tt.wantProblems {
				t.Errorf("problems %q, want %d", p.Problems, tt.wantProblems)
			}
			steps := strings.Join(p.Steps, "\n")
			for _, s := range tt.wantSteps {
				if !strings.Contains(steps, s) {
					t.Errorf("steps lack %q:\n%s", s, steps)
				}
			}
			if len(tt.wantSteps) == 0 && len(p.Steps) > 0 {
				t.Errorf("unexpected steps:\n%s", steps)
			}
		})
	}
}

func TestInitObjects(t *testing.T) {
	p := planInit(bareApp())

	t.Run("the canary is a copy at rest with the subset label on selector and pods", func(t *testing.T) {
		var c appsv1.Deployment
		toTyped(t, item(t, p, "Deployment", "web-canary").Object, &c)
		if *c.Spec.Replicas != 0 || c.Spec.Selector.MatchLabels["track"] != "canary" || c.Spec.Template.Labels["track"] != "canary" {
			t.Errorf("canary spec %+v", c.Spec)
		}
		if c.Spec.Template.Spec.Containers[0].Image != "web:v1" || c.Spec.Selector.MatchLabels["app"] != "web" {
			t.Errorf("canary lost the stable's template or selector: %+v", c.Spec)
		}
		if c.ResourceVersion != "" || c.UID != "" || len(c.Annotations) != 0 {
			t.Errorf("canary carries server-set or stable-only metadata: %+v", c.ObjectMeta)
		}
	})
	t.Run("the route sends everything to stable", func(t *testing.T) {
		vs := item(t, p, "VirtualService", "web").Object
		routes, _, _ := unstructured.NestedSlice(vs, "spec", "http")
		dests := routes[0].(map[string]any)["route"].([]any)
		if routes[0].(map[string]any)["name"] != "primary" || dests[0].(map[string]any)["weight"] != int64(100) || dests[1].(map[string]any)["weight"] != int64(0) {
			t.Errorf("route %v", routes)
		}
	})
	t.Run("the stable manifest has the label on its selector and no opt-in yet", func(t *testing.T) {
		var d appsv1.Deployment
		toTyped(t, item(t, p, "Deployment", "web").Object, &d)
		if d.Spec.Selector.MatchLabels["track"] != "stable" || d.Spec.Template.Labels["track"] != "stable" || d.Annotations[annotations.Enabled] != "" {
			t.Errorf("stable manifest %+v", d)
		}
	})
	t.Run("an added subset keeps every other field of the DestinationRule", func(t *testing.T) {
		in := labelledApp()
		in.drs = []unstructured.Unstructured{object(t, strings.Replace(fittingDR, "  - name: canary\n    labels: {track: canary}\n", "", 1))}
		it := item(t, planInit(in), "DestinationRule", "web")
		if _, ok, _ := unstructured.NestedMap(it.Object, "spec", "trafficPolicy"); !ok {
			t.Errorf("trafficPolicy lost: %v", it.Object)
		}
		subsets, _, _ := unstructured.NestedSlice(it.Object, "spec", "subsets")
		if len(subsets) != 2 || len(it.addSubsets) != 1 || !it.hasSubsets || it.resourceVersion != "4" {
			t.Errorf("subsets %v, adding %v", subsets, it.addSubsets)
		}
	})
	t.Run("an opt-in over a disabled Deployment says what it overwrites", func(t *testing.T) {
		in := labelledApp()
		in.stable.Annotations[annotations.Enabled] = "false"
		it := item(t, planInit(in), "Deployment", "web")
		if it.Action != actionAnnotate || !strings.Contains(it.Detail, `(was "false")`) {
			t.Errorf("opt-in item %+v", it)
		}
	})
}

func toTyped(t *testing.T, m map[string]any, into any) {
	t.Helper()
	b, err := yaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, into); err != nil {
		t.Fatal(err)
	}
}

func TestInitPrintsApplicableYAML(t *testing.T) {
	var b bytes.Buffer
	if err := renderInitYAML(&b, planInit(bareApp())); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(out), 4096)
	var kinds []string
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not YAML: %v\n%s", err, out)
		}
		if doc != nil {
			kinds = append(kinds, doc["kind"].(string))
		}
	}
	t.Run("only objects to create are live documents", func(t *testing.T) {
		if got := strings.Join(kinds, ","); got != "Deployment,DestinationRule,VirtualService" {
			t.Errorf("documents %s:\n%s", got, out)
		}
	})
	t.Run("the stable Deployment to recreate is commented out with the steps", func(t *testing.T) {
		for _, s := range []string{"# Deployment shop/web: apply by hand", "# spec:", "# Steps to do by hand, in order:", "#   3. kubectl -n shop delete deployment web --cascade=orphan"} {
			if !strings.Contains(out, s) {
				t.Errorf("output lacks %q:\n%s", s, out)
			}
		}
	})
}

func TestInitReportsWhatApplyDid(t *testing.T) {
	p := planInit(bareApp())
	for i := range p.Items {
		p.Items[i].Result = resultCreated
	}
	var b bytes.Buffer
	if err := renderApplied(&b, p); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, s := range []string{
		"deployment.apps/web-canary created (copy of web",
		"destinationrule.networking.istio.io/web created",
		"virtualservice.networking.istio.io/web created",
		"deployment.apps/web not applied: its selector and pods need track=stable",
		"Steps to do by hand, in order:",
		"# Deployment shop/web: apply by hand",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
}
