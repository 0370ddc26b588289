package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/meshcanary/meshcanary/internal/testenv"
	"github.com/meshcanary/meshcanary/pkg/apis/meshcanary/v1alpha1"
	"github.com/meshcanary/meshcanary/pkg/release"
)

// env is the one local control plane this package's tests share; each test
// works in a namespace of its own. Not test/harness: its controller and
// simulated mesh are not needed to judge a resource.
var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.Options{Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }}, &env)
}

func clients(t *testing.T) (kubernetes.Interface, dynamic.Interface) {
	t.Helper()
	kube, err := kubernetes.NewForConfig(env.Config)
	must(t, err)
	dyn, err := dynamic.NewForConfig(env.Config)
	must(t, err)
	return kube, dyn
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it returns nil, failing t with cond's last error
// once timeout has passed.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond(ctx)
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		case <-tick.C:
		}
	}
}

// newRelease creates a Deployment (no replicas: nothing here needs pods) and
// its CanaryRelease, as the controller will when a Deployment opts in. The
// Deployment must exist: the garbage collector deletes a dependent whose
// owner's UID it cannot find.
func newRelease(t *testing.T, ns, name string) (*appsv1.Deployment, *v1alpha1.CanaryRelease) {
	t.Helper()
	kube, dyn := clients(t)
	labels := map[string]string{"app": name}
	d, err := kube.AppsV1().Deployments(ns).Create(t.Context(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(0)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/" + name + ":1.0.0"}}},
			},
		},
	}, metav1.CreateOptions{})
	must(t, err)
	cr, err := release.Create(t.Context(), dyn, release.NewForDeployment(d))
	if err != nil {
		t.Fatalf("creating the CanaryRelease: %v", err)
	}
	return d, cr
}

// progressing is a status as the controller will write it mid-release,
// with fields in the opaque objects that no Go type of today knows.
func progressing(t *testing.T) v1alpha1.CanaryReleaseStatus {
	t.Helper()
	state, err := release.EncodeJSON(map[string]any{
		"phase": "Progressing", "stage": 1, "weight": 10, "stageStart": "2026-12-02T10:40:00Z",
		"aFieldOfTomorrow": map[string]any{"nested": []any{1, "two", true}},
	})
	must(t, err)
	at := metav1.NewTime(time.Date(2026, 12, 2, 10, 40, 0, 0, time.UTC))
	s := v1alpha1.CanaryReleaseStatus{
		ObservedGeneration: 1,
		Phase:              "Progressing",
		Stage:              1,
		Stages:             4,
		StageLabel:         "2/4",
		Weight:             10,
		Revision:           "5d8c7f9b6a",
		Message:            "canary error rate 0.10% <= 1%",
		State:              state,
		Plan:               &apiextensionsv1.JSON{Raw: []byte(`{"stages":[{"weight":1,"duration":"5m"},{"weight":10,"duration":"5m"}]}`)},
		LastAnalysis:       &apiextensionsv1.JSON{Raw: []byte(`{"verdict":"pass","windowSeconds":60}`)},
		History: []v1alpha1.ReleaseRecord{{
			Revision: "0a1b2c3d4e", Images: []string{"app=registry.example.com/web:0.9.0"},
			Started: at, Finished: metav1.NewTime(at.Add(-time.Hour)),
			StagesReached: "4/4", Result: "Succeeded", Reason: "all stages passed", DecidedBy: "analysis",
		}},
	}
	release.SetCondition(&s.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionProgressing, Status: metav1.ConditionTrue, Reason: "StageStarted", Message: "stage 2 of 4",
	})
	return s
}

func TestStatusIsStoredAsWritten(t *testing.T) {
	t.Parallel()
	env.DumpLogsOnFailure(t)
	ns := env.NewNamespace(t)
	_, dyn := clients(t)
	_, cr := newRelease(t, ns, "web")

	cr.Status = progressing(t)
	updated, err := release.UpdateStatus(t.Context(), dyn, cr)
	if err != nil {
		t.Fatalf("the API server refused a status the controller writes: %v", err)
	}
	got, err := release.Get(t.Context(), dyn, ns, "web")
	must(t, err)
	want := progressing(t)
	// The server keeps whole seconds of the condition's time.
	want.Conditions[0].LastTransitionTime = got.Status.Conditions[0].LastTransitionTime
	t.Run("every field reads back as written, unknown fields of the opaque objects included", func(t *testing.T) {
		if !equality.Semantic.DeepEqual(canonical(t, got.Status), canonical(t, want)) {
			g, _ := json.Marshal(got.Status)
			w, _ := json.Marshal(want)
			t.Errorf("read back\n %s\nwant\n %s", g, w)
		}
	})
	t.Run("the write returned the stored object with a new resourceVersion", func(t *testing.T) {
		if updated.ResourceVersion == cr.ResourceVersion || updated.ResourceVersion != got.ResourceVersion {
			t.Errorf("resourceVersion %s before, %s returned, %s stored", cr.ResourceVersion, updated.ResourceVersion, got.ResourceVersion)
		}
	})
	t.Run("a status write leaves metadata and spec alone", func(t *testing.T) {
		cr := got.DeepCopy()
		cr.Spec.Deployment = "something-else"
		cr.Labels = map[string]string{"written": "by-status"}
		after, err := release.UpdateStatus(t.Context(), dyn, cr)
		must(t, err)
		if after.Spec.Deployment != "web" || after.Labels["written"] != "" {
			t.Errorf("spec.deployment %q, labels %v after a status write", after.Spec.Deployment, after.Labels)
		}
	})
	t.Run("a main-resource write leaves the status alone", func(t *testing.T) {
		cur, err := release.Get(t.Context(), dyn, ns, "web")
		must(t, err)
		cur.Status.Phase = "RolledBack"
		u, err := release.ToUnstructured(cur)
		must(t, err)
		out, err := dyn.Resource(v1alpha1.GVR()).Namespace(ns).Update(t.Context(), u, metav1.UpdateOptions{})
		must(t, err)
		after, err := release.FromUnstructured(out)
		must(t, err)
		if after.Status.Phase != "Progressing" {
			t.Errorf("phase %q after a main-resource write, want Progressing", after.Status.Phase)
		}
	})
}

// canonical re-encodes the opaque JSON fields with sorted keys: the API
// server stores objects, not bytes, so only their content can be compared.
func canonical(t *testing.T, s v1alpha1.CanaryReleaseStatus) v1alpha1.CanaryReleaseStatus {
	t.Helper()
	for _, j := range []*apiextensionsv1.JSON{s.State, s.Plan, s.LastAnalysis} {
		if j == nil {
			continue
		}
		var v any
		must(t, json.Unmarshal(j.Raw, &v))
		raw, err := json.Marshal(v)
		must(t, err)
		j.Raw = raw
	}
	return s
}

func TestConcurrentStatusWritesConflict(t *testing.T) {
	t.Parallel()
	env.DumpLogsOnFailure(t)
	ns := env.NewNamespace(t)
	_, dyn := clients(t)
	_, cr := newRelease(t, ns, "web")

	// Two writers read the same version; the first one wins.
	first, second := cr.DeepCopy(), cr.DeepCopy()
	first.Status = progressing(t)
	if _, err := release.UpdateStatus(t.Context(), dyn, first); err != nil {
		t.Fatalf("the first write: %v", err)
	}
	second.Status.Phase, second.Status.Weight, second.Status.Message = "RolledBack", 0, "rolled back by hand"
	_, err := release.UpdateStatus(t.Context(), dyn, second)

	t.Run("the second write, at the old resourceVersion, is a Conflict", func(t *testing.T) {
		if !apierrors.IsConflict(err) {
			t.Errorf("got %v, want a Conflict", err)
		}
	})
	t.Run("the first write is not lost", func(t *testing.T) {
		got, err := release.Get(t.Context(), dyn, ns, "web")
		must(t, err)
		if got.Status.Phase != "Progressing" || got.Status.Weight != 10 {
			t.Errorf("phase %q weight %d, want the first write's Progressing at 10", got.Status.Phase, got.Status.Weight)
		}
	})
	t.Run("re-reading and writing again succeeds", func(t *testing.T) {
		got, err := release.Get(t.Context(), dyn, ns, "web")
		must(t, err)
		got.Status.Phase = "RolledBack"
		if _, err := release.UpdateStatus(t.Context(), dyn, got); err != nil {
			t.Errorf("writing at the current resourceVersion: %v", err)
		}
	})
}

func TestSchemaRefusesWhatTheControllerMustNotWrite(t *testing.T) {
	t.Parallel()
	env.DumpLogsOnFailure(t)
	ns := env.NewNamespace(t)
	_, dyn := clients(t)
	_, cr := newRelease(t, ns, "web")

	cases := []struct {
		name    string
		edit    func(s *v1alpha1.CanaryReleaseStatus)
		invalid bool
	}{
		{"a message of the maximum length, as TruncateMessage cuts it, is accepted", func(s *v1alpha1.CanaryReleaseStatus) {
			s.Message = release.TruncateMessage(strings.Repeat("é", 3*v1alpha1.MaxMessageLength))
		}, false},
		{"a message one character longer is refused", func(s *v1alpha1.CanaryReleaseStatus) {
			s.Message = strings.Repeat("x", v1alpha1.MaxMessageLength+1)
		}, true},
		{"a weight above 100 is refused", func(s *v1alpha1.CanaryReleaseStatus) { s.Weight = 101 }, true},
		{"a negative stage is refused", func(s *v1alpha1.CanaryReleaseStatus) { s.Stage = -1 }, true},
		{"a state that is a list, not an object, is refused", func(s *v1alpha1.CanaryReleaseStatus) {
			s.State = &apiextensionsv1.JSON{Raw: []byte(`[1,2]`)}
		}, true},
		{"a condition without a reason is refused", func(s *v1alpha1.CanaryReleaseStatus) {
			s.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, LastTransitionTime: metav1.Now()}}
		}, true},
		{"two conditions of one type are refused", func(s *v1alpha1.CanaryReleaseStatus) {
			c := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Succeeded", LastTransitionTime: metav1.Now()}
			s.Conditions = []metav1.Condition{c, c}
		}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Sequential: each case writes at the current resourceVersion.
			cur, err := release.Get(t.Context(), dyn, ns, cr.Name)
			must(t, err)
			cur.Status = progressing(t)
			c.edit(&cur.Status)
			_, err = release.UpdateStatus(t.Context(), dyn, cur)
			if c.invalid && !apierrors.IsInvalid(err) {
				t.Errorf("got %v, want Invalid", err)
			}
			if !c.invalid && err != nil {
				t.Errorf("refused: %v", err)
			}
		})
	}
}

// TestKubectlShowsThePrinterColumns reads the table the API server serves
// kubectl, and runs kubectl itself with the short name.
func TestKubectlShowsThePrinterColumns(t *testing.T) {
	t.Parallel()
	env.DumpLogsOnFailure(t)
	ns := env.NewNamespace(t)
	kube, dyn := clients(t)
	_, cr := newRelease(t, ns, "web")
	cr.Status = progressing(t)
	_, err := release.UpdateStatus(t.Context(), dyn, cr)
	must(t, err)

	t.Run("the table has the columns and values of the status", func(t *testing.T) {
		table := getTable(t, kube, ns)
		var names []string
		wide := map[string]bool{}
		for _, c := range table.ColumnDefinitions {
			names = append(names, c.Name)
			wide[c.Name] = c.Priority > 0
		}
		if want := []string{"Name", "Phase", "Weight", "Stage", "Revision", "Age", "Message"}; !slices.Equal(names, want) {
			t.Fatalf("columns %v, want %v", names, want)
		}
		if !wide["Message"] || wide["Phase"] {
			t.Errorf("only Message should be a wide column: %v", wide)
		}
		if len(table.Rows) != 1 {
			t.Fatalf("%d rows, want 1", len(table.Rows))
		}
		got := map[string]string{}
		for i, cell := range table.Rows[0].Cells {
			got[names[i]] = fmt.Sprint(cell)
		}
		for col, want := range map[string]string{
			"Name": "web", "Phase": "Progressing", "Weight": "10", "Stage": "2/4",
			"Revision": "5d8c7f9b6a", "Message": "canary error rate 0.10% <= 1%",
		} {
			if got[col] != want {
				t.Errorf("column %s = %q, want %q", col, got[col], want)
			}
		}
	})

	t.Run("kubectl get mcr -o wide prints them", func(t *testing.T) {
		out := kubectl(t, "get", "mcr", "-n", ns, "-o", "wide")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 {
			t.Fatalf("want a header and one row:\n%s", out)
		}
		if h := strings.Fields(lines[0]); !slices.Equal(h, []string{"NAME", "PHASE", "WEIGHT", "STAGE", "REVISION", "AGE", "MESSAGE"}) {
			t.Errorf("header %v", h)
		}
		if row := strings.Fields(lines[1]); len(row) < 6 || !slices.Equal(row[:5], []string{"web", "Progressing", "10", "2/4", "5d8c7f9b6a"}) {
			t.Errorf("row %v", row)
		}
	})

	t.Run("kubectl get meshcanary lists them by category", func(t *testing.T) {
		out := kubectl(t, "get", "meshcanary", "-n", ns, "-o", "name")
		if strings.TrimSpace(out) != "canaryrelease.meshcanary.io/web" {
			t.Errorf("got %q", out)
		}
	})
}

func getTable(t *testing.T, kube kubernetes.Interface, ns string) *metav1.Table {
	t.Helper()
	raw, err := kube.AppsV1().RESTClient().Get().
		AbsPath("/apis", v1alpha1.GroupName, v1alpha1.Version, "namespaces", ns, v1alpha1.CanaryReleaseResource).
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").
		DoRaw(t.Context())
	if err != nil {
		t.Fatalf("getting the table: %v", err)
	}
	table := &metav1.Table{}
	must(t, json.Unmarshal(raw, table))
	return table
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", env.Kubeconfig}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

func TestDeletingTheDeploymentCollectsItsRelease(t *testing.T) {
	t.Parallel()
	env.DumpLogsOnFailure(t)
	ns := env.NewNamespace(t)
	kube, dyn := clients(t)
	d, _ := newRelease(t, ns, "web")
	// A second Deployment's release stays: the collector follows owners.
	_, _ = newRelease(t, ns, "other")

	must(t, kube.AppsV1().Deployments(ns).Delete(t.Context(), d.Name, metav1.DeleteOptions{}))
	// The garbage collector learns of new resources by rediscovery every 30
	// seconds, and the CRD may be younger than its last round.
	waitFor(t, "the garbage collector to delete the CanaryRelease", 2*time.Minute, func(ctx context.Context) error {
		_, err := release.Get(ctx, dyn, ns, d.Name)
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case err != nil:
			return err
		}
		return errors.New("still there")
	})
	if _, err := release.Get(t.Context(), dyn, ns, "other"); err != nil {
		t.Errorf("the other Deployment's CanaryRelease: %v", err)
	}
}

// TestReleaseIsOwnedByItsDeployment checks what the garbage collector and
// informers rely on, as stored by the API server.
func TestReleaseIsOwnedByItsDeployment(t *testing.T) {
	t.Parallel()
	ns := env.NewNamespace(t)
	d, cr := newRelease(t, ns, "web")
	owner := metav1.GetControllerOf(cr)
	switch {
	case owner == nil:
		t.Fatalf("no controller reference in %+v", cr.OwnerReferences)
	case owner.UID != d.UID || owner.Kind != "Deployment" || owner.Name != d.Name:
		t.Errorf("controller %+v, want Deployment %s (%s)", owner, d.Name, d.UID)
	case cr.Name != d.Name || cr.Spec.Deployment != d.Name:
		t.Errorf("named %s for %s, want %s", cr.Name, cr.Spec.Deployment, d.Name)
	}
}
