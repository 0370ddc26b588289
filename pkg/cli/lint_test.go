package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/policy"
)

// goodInput is a rollout that fits: lint must find nothing in it.
func goodInput(t *testing.T) lintInput {
	return lintInput{
		stable: deployment("web", map[string]string{annotations.Enabled: "true"}, map[string]string{"track": "stable"}, map[string]string{"track": "stable"}),
		canary: deployment("web-canary", nil, map[string]string{"track": "canary"}, map[string]string{"track": "canary", "app": "web"}),
		vs:     new(object(t, fittingVS)),
		drs:    []unstructured.Unstructured{object(t, fittingDR)},
	}
}

func TestLintFindsEveryProblemWithItsField(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, in *lintInput)
		// want are "severity object field" triples, in order.
		want []string
	}{
		{"a rollout that fits has no findings", func(*testing.T, *lintInput) {}, nil},
		{
			"malformed annotations are each reported against their key",
			func(_ *testing.T, in *lintInput) {
				in.stable.Annotations[annotations.Stages] = "1,a"
				in.stable.Annotations[annotations.StageDuration] = "soon"
				in.stable.Annotations[annotations.Pause] = "yes"
			},
			[]string{
				"error Deployment shop/web metadata.annotations[meshcanary.io/stages]",
				"error Deployment shop/web metadata.annotations[meshcanary.io/stage-duration]",
				"error Deployment shop/web metadata.annotations[meshcanary.io/pause]",
			},
		},
		{
			"a misspelt annotation is a warning",
			func(_ *testing.T, in *lintInput) { in.stable.Annotations["meshcanary.io/rollbak"] = "oops" },
			[]string{"warning Deployment shop/web metadata.annotations[meshcanary.io/rollbak]"},
		},
		{
			"a Deployment not opted in is a warning",
			func(_ *testing.T, in *lintInput) { delete(in.stable.Annotations, annotations.Enabled) },
			[]string{"warning Deployment shop/web metadata.annotations[meshcanary.io/enabled]"},
		},
		{
			"a missing canary and VirtualService are reported by name",
			func(_ *testing.T, in *lintInput) { in.canary, in.vs = nil, nil },
			[]string{"error Deployment shop/web-canary ", "error VirtualService shop/web "},
		},
		{
			"a route without a canary destination is reported at the route",
			func(t *testing.T, in *lintInput) {
				in.vs = new(object(t, strings.Replace(fittingVS, "subset: canary", "subset: legacy", 1)))
			},
			[]string{"error VirtualService shop/web spec.http[0].route"},
		},
		{
			"a DestinationRule without the canary subset is reported at its subsets",
			func(t *testing.T, in *lintInput) {
				in.drs = []unstructured.Unstructured{object(t, strings.Replace(fittingDR, "name: canary", "name: next", 1))}
			},
			[]string{"error DestinationRule shop/web spec.subsets"},
		},
		{
			"no DestinationRule for the host is reported",
			func(_ *testing.T, in *lintInput) { in.drs = nil },
			[]string{"error DestinationRule shop/* spec.host"},
		},
		{
			"pods without their subset label are reported on the Deployment",
			func(_ *testing.T, in *lintInput) { delete(in.canary.Spec.Template.Labels, "track") },
			[]string{"error Deployment shop/web-canary spec.template.metadata.labels"},
		},
		{
			"a stable selector that also selects canary pods is a warning",
			func(_ *testing.T, in *lintInput) { delete(in.stable.Spec.Selector.MatchLabels, "track") },
			[]string{"warning Deployment shop/web spec.selector"},
		},
		{
			"a policy missing from the policy file is an error",
			func(_ *testing.T, in *lintInput) {
				in.stable.Annotations[annotations.Policy] = "payments"
				in.policies, in.policiesPath = &policy.File{Policies: []policy.Policy{{Name: "default"}}}, "p.yaml"
			},
			[]string{"error Deployment shop/web metadata.annotations[meshcanary.io/policy]"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := goodInput(t)
			tt.change(t, &in)
			found, _ := lintObjects(in)
			var got []string
			for _, f := range found {
				got = append(got, f.Severity+" "+f.Object+" "+f.Field)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("findings:\n%s\nwant:\n%s\n(%+v)", strings.Join(got, "\n"), strings.Join(tt.want, "\n"), found)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("finding %d is %q, want %q", i, got[i], tt.want[i])
				}
				if found[i].Message == "" {
					t.Errorf("finding %d has no message", i)
				}
			}
		})
	}
}

func TestLintReadsThePolicyFileAsTheControllerDoes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, doc string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name       string
		doc        string
		wantFields []string
	}{
		{"a valid file has no findings", "policies:\n- name: payments\n  stages: [{weight: 10, duration: 1m}, {weight: 100, duration: 1m}]\n", nil},
		{
			"every invalid field is reported with its path",
			"policies:\n- name: Bad_Name\n  interval: 0s\n  stages: [{weight: 50, duration: 1m}, {weight: 10, duration: 1m}]\n",
			[]string{"policies[0].name", "policies[0].interval", "policies[0].stages[1].weight"},
		},
		{"a file that is not YAML is one finding", "policies: [", []string{""}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := write(string(rune('a'+i))+".yaml", tt.doc)
			f, found := lintPolicyFile(path)
			var fields []string
			for _, x := range found {
				fields = append(fields, x.Field)
				if x.Object != path || x.Severity != severityError {
					t.Errorf("finding %+v", x)
				}
			}
			if strings.Join(fields, ",") != strings.Join(tt.wantFields, ",") {
				t.Errorf("fields %q, want %q (%+v)", fields, tt.wantFields, found)
			}
			if (f != nil) != (len(tt.wantFields) == 0) {
				t.Errorf("file returned: %v", f != nil)
			}
		})
	}
}

func TestLenientSpecKeepsWhatParses(t *testing.T) {
	d := deployment("web", map[string]string{
		annotations.VirtualService: "web-routes",
		annotations.Stages:         "not-stages",
	}, nil, nil)
	spec := lenientSpec(d)
	if spec.VirtualService != "web-routes" || spec.Canary != "web-canary" || spec.Stages != nil {
		t.Errorf("spec %+v: want the valid annotation kept and the bad one defaulted", spec)
	}
}
