package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/stages"
	"github.com/meshcanary/meshcanary/pkg/status"
)

// epoch is the fixed "now" of the unit tests.
func epoch() time.Time { return time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC) }

// deployment builds a Deployment labelled app=<name> plus extra template
// labels, with the given annotations.
func deployment(name string, ann map[string]string, selector, template map[string]string) *appsv1.Deployment {
	replicas := int32(3)
	sel := map[string]string{"app": name}
	for k, v := range selector {
		sel[k] = v
	}
	tmpl := map[string]string{"app": name}
	for k, v := range template {
		tmpl[k] = v
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Annotations: ann, ResourceVersion: "7", UID: "u-1"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: tmpl},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: name + ":v1"}}},
			},
		},
	}
}

func service(name string, selector map[string]string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
		Spec: corev1.ServiceSpec{Selector: selector,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
}

// object parses YAML into an unstructured object in namespace shop.
func object(t *testing.T, doc string) unstructured.Unstructured {
	t.Helper()
	u := unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	u.SetNamespace("shop")
	return u
}

const fittingVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, resourceVersion: "3"}
spec:
  hosts: [web]
  http:
  - name: primary
    route:
    - destination: {host: web, subset: stable}
      weight: 90
    - destination: {host: web, subset: canary}
      weight: 10
`

const fittingDR = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, resourceVersion: "4"}
spec:
  host: web
  trafficPolicy: {connectionPool: {http: {http1MaxPendingRequests: 100}}}
  subsets:
  - name: stable
    labels: {track: stable}
  - name: canary
    labels: {track: canary}
`

// published returns annotations as the controller publishes them for a
// release at stage 2/3.
func published(t *testing.T, st stages.State, an *status.Analysis, history []status.Release) map[string]string {
	t.Helper()
	ann := map[string]string{
		annotations.Enabled:  "true",
		annotations.Phase:    string(st.Phase),
		annotations.Weight:   "50",
		annotations.Stage:    "2/3",
		annotations.Revision: st.Revision,
		annotations.Message:  st.Message,
	}
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	ann[annotations.State] = enc(st)
	if an != nil {
		ann[annotations.Analysis] = enc(an)
	}
	if history != nil {
		ann[annotations.History] = enc(history)
	}
	return ann
}

func float(v float64) *float64 { return &v }

// execute runs the operator CLI in-process with args and returns what it
// printed and its exit code.
func execute(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := NewRootCommand(genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: &errOut})
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if err != nil {
		errOut.WriteString("error: " + err.Error() + "\n")
	}
	return out.String(), errOut.String(), ExitCode(err)
}

func streamsForTest() genericiooptions.IOStreams {
	return genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}
}

func jsonString(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
