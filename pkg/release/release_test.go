package release_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	appsv1 "k8s.io/api/apps/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/meshcanary/meshcanary/pkg/apis/meshcanary/v1alpha1"
	"github.com/meshcanary/meshcanary/pkg/release"
	"github.com/meshcanary/meshcanary/pkg/status"
)

func deployment() *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{
		Name: "payment-service", Namespace: "shop", UID: types.UID("3f6e0c1a-0000-4000-8000-000000000001"),
	}}
}

// fullRelease has every status field set, so a conversion that drops or
// mangles one shows.
func fullRelease(t *testing.T) *v1alpha1.CanaryRelease {
	t.Helper()
	cr := release.NewForDeployment(deployment())
	cr.ResourceVersion = "42"
	at := metav1.NewTime(time.Date(2026, 12, 2, 10, 40, 0, 0, time.UTC))
	state, err := release.EncodeJSON(map[string]any{"phase": "Progressing", "stage": 1, "weight": 10})
	if err != nil {
		t.Fatal(err)
	}
	cr.Status = v1alpha1.CanaryReleaseStatus{
		ObservedGeneration: 3,
		Phase:              "Progressing",
		Stage:              1,
		Stages:             4,
		StageLabel:         "2/4",
		Weight:             10,
		Revision:           "5d8c7f9b6a",
		Message:            "canary error rate 0.1% <= 1%",
		State:              state,
		Plan:               &apiextensionsv1.JSON{Raw: []byte(`{"stages":[{"weight":1},{"weight":10}]}`)},
		LastAnalysis:       &apiextensionsv1.JSON{Raw: []byte(`{"verdict":"pass","windowSeconds":60}`)},
		History: []v1alpha1.ReleaseRecord{{
			Revision: "0a1b2c3d4e", Images: []string{"app=registry.example.com/pay:1.2.3"},
			Started: at, Finished: metav1.NewTime(at.Add(20 * time.Minute)),
			StagesReached: "4/4", Result: "Succeeded", Reason: "all stages passed", DecidedBy: "analysis",
		}},
		Conditions: []metav1.Condition{{
			Type: v1alpha1.ConditionProgressing, Status: metav1.ConditionTrue, Reason: "StageStarted",
			Message: "stage 2 of 4", LastTransitionTime: at, ObservedGeneration: 3,
		}},
	}
	return cr
}

func TestNewForDeployment(t *testing.T) {
	d := deployment()
	cr := release.NewForDeployment(d)
	checks := []struct {
		name      string
		got, want any
	}{
		{"it is named after the Deployment", cr.Name, d.Name},
		{"it lives in the Deployment's namespace", cr.Namespace, d.Namespace},
		{"spec.deployment names the Deployment", cr.Spec.Deployment, d.Name},
		{"it carries its apiVersion and kind", cr.GroupVersionKind(), v1alpha1.GVK()},
		{"it has exactly one owner", len(cr.OwnerReferences), 1},
		{"the Deployment is its controller", metav1.GetControllerOf(cr) != nil && metav1.GetControllerOf(cr).UID == d.UID, true},
		{"the owner is an apps/v1 Deployment of that name", func() string {
			o := cr.OwnerReferences[0]
			return o.APIVersion + " " + o.Kind + " " + o.Name
		}(), "apps/v1 Deployment payment-service"},
		{"it does not block the owner's deletion", cr.OwnerReferences[0].BlockOwnerDeletion != nil && !*cr.OwnerReferences[0].BlockOwnerDeletion, true},
		{"its status is empty", reflect.DeepEqual(cr.Status, v1alpha1.CanaryReleaseStatus{}), true},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Errorf("got %v, want %v", c.got, c.want)
			}
		})
	}
}

func TestConversion(t *testing.T) {
	t.Run("a CanaryRelease survives the trip through unstructured unchanged", func(t *testing.T) {
		cr := fullRelease(t)
		u, err := release.ToUnstructured(cr)
		if err != nil {
			t.Fatal(err)
		}
		back, err := release.FromUnstructured(u)
		if err != nil {
			t.Fatal(err)
		}
		// Semantic: metav1.Time decodes in the local time zone.
		if !equality.Semantic.DeepEqual(back, cr) {
			got, _ := json.Marshal(back)
			want, _ := json.Marshal(cr)
			t.Errorf("round trip changed the object:\n got %s\nwant %s", got, want)
		}
	})
	t.Run("the opaque fields are JSON objects in unstructured form, not strings", func(t *testing.T) {
		u, err := release.ToUnstructured(fullRelease(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"state", "plan", "lastAnalysis"} {
			if _, ok, err := unstructured.NestedMap(u.Object, "status", f); !ok || err != nil {
				t.Errorf("status.%s is %T, want an object (%v)", f, u.Object["status"].(map[string]any)[f], err)
			}
		}
		if w, _, _ := unstructured.NestedInt64(u.Object, "status", "state", "weight"); w != 10 {
			t.Errorf("status.state.weight = %d, want 10", w)
		}
	})
	t.Run("a typed object without TypeMeta gets apiVersion and kind", func(t *testing.T) {
		cr := fullRelease(t)
		cr.TypeMeta = metav1.TypeMeta{}
		u, err := release.ToUnstructured(cr)
		if err != nil {
			t.Fatal(err)
		}
		if u.GetAPIVersion() != "meshcanary.io/v1alpha1" || u.GetKind() != "CanaryRelease" {
			t.Errorf("apiVersion %q kind %q", u.GetAPIVersion(), u.GetKind())
		}
	})
	t.Run("a weight and stage of zero are written, not omitted", func(t *testing.T) {
		cr := fullRelease(t)
		cr.Status.Weight, cr.Status.Stage = 0, 0
		u, err := release.ToUnstructured(cr)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"weight", "stage"} {
			if _, ok, _ := unstructured.NestedFieldNoCopy(u.Object, "status", f); !ok {
				t.Errorf("status.%s is missing", f)
			}
		}
	})
	t.Run("an object of another kind is refused", func(t *testing.T) {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("apps/v1")
		u.SetKind("Deployment")
		u.SetName("payment-service")
		if _, err := release.FromUnstructured(u); err == nil || !strings.Contains(err.Error(), "is not a") {
			t.Errorf("got %v, want an error naming the wrong kind", err)
		}
	})
}

// TestHistoryConvertsFromTheAnnotationFormat checks the promise of
// ReleaseRecord's JSON names: the history kept in annotations so far
// (pkg/status.Release) becomes status.history by a JSON round trip, and back.
func TestHistoryConvertsFromTheAnnotationFormat(t *testing.T) {
	at := time.Date(2026, 11, 30, 9, 15, 0, 0, time.UTC)
	old := []status.Release{{
		Revision: "0a1b2c3d4e", Images: []string{"app=registry.example.com/pay:1.2.3", "proxy=envoy:1.30"},
		Started: at, Finished: at.Add(7 * time.Minute), StagesReached: "2/4",
		Result: "RolledBack", Reason: "canary error rate 7% > 1%", DecidedBy: "analysis",
	}}
	raw, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	var records []v1alpha1.ReleaseRecord
	if err := json.Unmarshal(raw, &records); err != nil {
		t.Fatalf("the annotation format does not decode as status.history: %v", err)
	}
	want := []v1alpha1.ReleaseRecord{{
		Revision: "0a1b2c3d4e", Images: []string{"app=registry.example.com/pay:1.2.3", "proxy=envoy:1.30"},
		Started: metav1.NewTime(at), Finished: metav1.NewTime(at.Add(7 * time.Minute)), StagesReached: "2/4",
		Result: "RolledBack", Reason: "canary error rate 7% > 1%", DecidedBy: "analysis",
	}}
	if !equality.Semantic.DeepEqual(records, want) {
		t.Errorf("got %+v\nwant %+v", records, want)
	}
	raw, err = json.Marshal(records)
	if err != nil {
		t.Fatal(err)
	}
	var back []status.Release
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	for i := range back { // time.Time decodes with a local zone too
		back[i].Started, back[i].Finished = back[i].Started.UTC(), back[i].Finished.UTC()
	}
	if !reflect.DeepEqual(back, old) {
		t.Errorf("back to the annotation format: got %+v\nwant %+v", back, old)
	}
}

func fakeClient(objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	return dynamicfake.NewSimpleDynamicClient(scheme, objs...)
}

// TestCreateAndUpdateStatus checks the requests against the fake dynamic
// client, which keeps no resourceVersions: that a stale write conflicts on a
// real API server is test/release's part.
func TestCreateAndUpdateStatus(t *testing.T) {
	ctx := t.Context()
	dyn := fakeClient()
	created, err := release.Create(ctx, dyn, release.NewForDeployment(deployment()))
	if err != nil {
		t.Fatal(err)
	}
	// What a read from the API server would carry.
	created.ResourceVersion = "7"

	lastAction := func() clienttesting.UpdateActionImpl {
		t.Helper()
		actions := dyn.Actions()
		a, ok := actions[len(actions)-1].(clienttesting.UpdateActionImpl)
		if !ok {
			t.Fatalf("the last request is a %T, want an update", actions[len(actions)-1])
		}
		return a
	}

	t.Run("a status write is a PUT of the status subresource at the resourceVersion it was read at", func(t *testing.T) {
		cr := created.DeepCopy()
		cr.Status.Phase, cr.Status.Weight = "Progressing", 10
		got, err := release.UpdateStatus(ctx, dyn, cr)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Phase != "Progressing" || got.Status.Weight != 10 {
			t.Errorf("returned status %+v", got.Status)
		}
		a := lastAction()
		sent := a.GetObject().(*unstructured.Unstructured)
		checks := []struct {
			name      string
			got, want any
		}{
			{"subresource", a.GetSubresource(), "status"},
			{"namespace", a.GetNamespace(), "shop"},
			{"resourceVersion", sent.GetResourceVersion(), "7"},
			{"field manager", a.UpdateOptions.FieldManager, release.FieldManager},
			{"kind", sent.GetKind(), v1alpha1.CanaryReleaseKind},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
			}
		}
	})

	t.Run("a Conflict from the server reaches the caller as a Conflict", func(t *testing.T) {
		dyn.PrependReactor("update", v1alpha1.CanaryReleaseResource, func(a clienttesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewConflict(v1alpha1.Resource(v1alpha1.CanaryReleaseResource), "payment-service", errors.New("the object has been modified"))
		})
		_, err := release.UpdateStatus(ctx, dyn, created.DeepCopy())
		if !apierrors.IsConflict(err) {
			t.Errorf("got %v, want a Conflict", err)
		}
	})

	t.Run("an update without a resourceVersion is refused before it is sent", func(t *testing.T) {
		before := len(dyn.Actions())
		cr := created.DeepCopy()
		cr.ResourceVersion = ""
		if _, err := release.UpdateStatus(ctx, dyn, cr); err == nil || !strings.Contains(err.Error(), "no resourceVersion") {
			t.Errorf("got %v", err)
		}
		if n := len(dyn.Actions()) - before; n != 0 {
			t.Errorf("%d requests sent", n)
		}
	})

	t.Run("a second create of the same release is AlreadyExists", func(t *testing.T) {
		if _, err := release.Create(ctx, dyn, release.NewForDeployment(deployment())); !apierrors.IsAlreadyExists(err) {
			t.Errorf("got %v", err)
		}
	})
}

func TestSetCondition(t *testing.T) {
	then := metav1.NewTime(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC))
	base := func() []metav1.Condition {
		return []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Succeeded", LastTransitionTime: then}}
	}
	cases := []struct {
		name        string
		set         metav1.Condition
		wantChanged bool
		wantLen     int
		wantMoved   bool // lastTransitionTime of the set type changed
	}{
		{"the same condition again changes nothing",
			metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Succeeded"}, false, 1, false},
		{"a new reason with the same status keeps the transition time",
			metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Promoted"}, true, 1, false},
		{"a status change moves the transition time",
			metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: "ReleaseStarted"}, true, 1, true},
		{"another type is added beside it",
			metav1.Condition{Type: v1alpha1.ConditionStalled, Status: metav1.ConditionFalse, Reason: "Progressing"}, true, 2, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conds := base()
			if changed := release.SetCondition(&conds, c.set); changed != c.wantChanged {
				t.Errorf("changed = %t, want %t", changed, c.wantChanged)
			}
			if len(conds) != c.wantLen {
				t.Fatalf("%d conditions, want %d: %+v", len(conds), c.wantLen, conds)
			}
			got := meta.FindStatusCondition(conds, c.set.Type)
			if got.Status != c.set.Status || got.Reason != c.set.Reason {
				t.Errorf("got %s/%s, want %s/%s", got.Status, got.Reason, c.set.Status, c.set.Reason)
			}
			if moved := !got.LastTransitionTime.Equal(&then); moved != c.wantMoved {
				t.Errorf("lastTransitionTime %s, moved = %t, want %t", got.LastTransitionTime, moved, c.wantMoved)
			}
		})
	}
}

func TestEncodeAndDecodeJSON(t *testing.T) {
	type state struct {
		Phase string `json:"phase"`
		Stage int    `json:"stage"`
	}
	t.Run("a struct round-trips", func(t *testing.T) {
		j, err := release.EncodeJSON(state{Phase: "Paused", Stage: 2})
		if err != nil {
			t.Fatal(err)
		}
		var got state
		if err := release.DecodeJSON(j, &got); err != nil {
			t.Fatal(err)
		}
		if got != (state{Phase: "Paused", Stage: 2}) {
			t.Errorf("got %+v", got)
		}
	})
	refused := []struct {
		name string
		v    any
	}{
		{"a list is refused: the CRD takes objects only", []int{1, 2}},
		{"a string is refused", "Progressing"},
		{"nil is refused", nil},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			if _, err := release.EncodeJSON(c.v); err == nil {
				t.Error("no error")
			}
		})
	}
	t.Run("an absent field leaves the target as it was", func(t *testing.T) {
		got := state{Phase: "Idle"}
		if err := release.DecodeJSON(nil, &got); err != nil || got.Phase != "Idle" {
			t.Errorf("got %+v, %v", got, err)
		}
	})
	t.Run("a field of the wrong shape is an error", func(t *testing.T) {
		var got state
		if err := release.DecodeJSON(&apiextensionsv1.JSON{Raw: []byte(`{"stage":"two"}`)}, &got); err == nil {
			t.Error("no error")
		}
	})
}

func TestTruncateMessage(t *testing.T) {
	cases := []struct {
		name, in string
		wantLen  int
		wantCut  bool
	}{
		{"a short message is kept", "canary error rate 7% > 1%", 25, false},
		{"a message of exactly the maximum is kept", strings.Repeat("a", v1alpha1.MaxMessageLength), v1alpha1.MaxMessageLength, false},
		{"a longer message is cut to the maximum", strings.Repeat("a", v1alpha1.MaxMessageLength+1), v1alpha1.MaxMessageLength, true},
		{"multi-byte characters count as one each and are never split", strings.Repeat("é", 2000), v1alpha1.MaxMessageLength, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := release.TruncateMessage(c.in)
			if n := utf8.RuneCountInString(got); n != c.wantLen {
				t.Errorf("%d characters, want %d", n, c.wantLen)
			}
			if !utf8.ValidString(got) {
				t.Error("not valid UTF-8")
			}
			if cut := strings.HasSuffix(got, "…") && got != c.in; cut != c.wantCut {
				t.Errorf("cut = %t, want %t", cut, c.wantCut)
			}
		})
	}
}
