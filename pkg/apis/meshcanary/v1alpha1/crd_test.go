package v1alpha1_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/meshcanary/meshcanary/pkg/apis/meshcanary/v1alpha1"
)

// chartCRD is the generated CRD the chart installs. `make verify` keeps it in
// step with the markers; this test keeps the markers in step with the Go
// constants that the markers cannot reference.
func chartCRD(t *testing.T) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "charts", "meshcanary", "crds", "canaryreleases.meshcanary.io.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(raw, crd); err != nil {
		t.Fatal(err)
	}
	return crd
}

func TestGeneratedCRDMatchesTheGoConstants(t *testing.T) {
	crd := chartCRD(t)
	if len(crd.Spec.Versions) != 1 {
		t.Fatalf("%d versions, want 1", len(crd.Spec.Versions))
	}
	v := crd.Spec.Versions[0]
	status := v.Schema.OpenAPIV3Schema.Properties["status"]
	var columns []string
	for _, c := range v.AdditionalPrinterColumns {
		columns = append(columns, c.Name+"="+c.JSONPath)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"the CRD is named <resource>.<group>", crd.Name, v1alpha1.GVR().GroupResource().String()},
		{"the group is GroupName", crd.Spec.Group, v1alpha1.GroupName},
		{"the version is Version", v.Name, v1alpha1.Version},
		{"the kind is CanaryReleaseKind", crd.Spec.Names.Kind, v1alpha1.CanaryReleaseKind},
		{"the plural is CanaryReleaseResource", crd.Spec.Names.Plural, v1alpha1.CanaryReleaseResource},
		{"it is namespaced", crd.Spec.Scope, apiextensionsv1.NamespaceScoped},
		{"kubectl knows it as mcr", crd.Spec.Names.ShortNames, []string{"mcr"}},
		{"kubectl get meshcanary lists it", crd.Spec.Names.Categories, []string{"meshcanary"}},
		{"status is a subresource", v.Subresources != nil && v.Subresources.Status != nil, true},
		{"the message is bounded by MaxMessageLength", *status.Properties["message"].MaxLength, int64(v1alpha1.MaxMessageLength)},
		{"the printer columns", columns, []string{
			"Phase=.status.phase", "Weight=.status.weight", "Stage=.status.stageLabel",
			"Revision=.status.revision", "Age=.metadata.creationTimestamp", "Message=.status.message",
		}},
		{"conditions are a map keyed by type", status.Properties["conditions"].XListMapKeys, []string{"type"}},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Errorf("got %v, want %v", c.got, c.want)
			}
		})
	}
	for _, f := range []string{"state", "plan", "lastAnalysis"} {
		t.Run("status."+f+" is an object kept as written", func(t *testing.T) {
			p := status.Properties[f]
			if p.Type != "object" || p.XPreserveUnknownFields == nil || !*p.XPreserveUnknownFields || len(p.Properties) != 0 {
				t.Errorf("type %q, preserve-unknown-fields %v, %d properties", p.Type, p.XPreserveUnknownFields, len(p.Properties))
			}
		})
	}
}

func TestAddToSchemeRegistersTheKinds(t *testing.T) {
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		kind string
		want any
	}{
		{"a CanaryRelease", v1alpha1.CanaryReleaseKind, &v1alpha1.CanaryRelease{}},
		{"a list of them", v1alpha1.CanaryReleaseKind + "List", &v1alpha1.CanaryReleaseList{}},
	}
	for _, c := range cases {
		t.Run(c.name+" is known to the scheme", func(t *testing.T) {
			obj, err := s.New(v1alpha1.GroupVersion().WithKind(c.kind))
			if err != nil {
				t.Fatal(err)
			}
			if reflect.TypeOf(obj) != reflect.TypeOf(c.want) {
				t.Errorf("got %T, want %T", obj, c.want)
			}
		})
	}
}
