package controller

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/apis/meshcanary/v1alpha1"
	"github.com/meshcanary/meshcanary/pkg/policy"
	"github.com/meshcanary/meshcanary/pkg/release"
	"github.com/meshcanary/meshcanary/pkg/stages"
	"github.com/meshcanary/meshcanary/pkg/status"
)

// managedFields is server-side apply's bookkeeping as the API server
// returns it: what the transform must drop.
func managedFields(managers ...string) []metav1.ManagedFieldsEntry {
	var out []metav1.ManagedFieldsEntry
	for _, m := range managers {
		out = append(out, metav1.ManagedFieldsEntry{Manager: m, Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "apps/v1",
			FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:annotations":{".":{}}},"f:spec":{"f:replicas":{}}}`)}})
	}
	return out
}

// fullDeployment is a Deployment as a cluster holds it: applied with
// kubectl, rolled out by the Deployment controller, with meshcanary's
// configuration, a pending command and its summary on it.
func fullDeployment(t *testing.T, name, track, image string, ann map[string]string) *appsv1.Deployment {
	t.Helper()
	labels := map[string]string{"app": "pay", "track": track}
	replicas := int32(4)
	d := &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "payments", Name: name, UID: "uid-" + "name", ResourceVersion: "4711", Generation: 3,
			Labels: labels, Annotations: ann, ManagedFields: managedFields("kubectl-client-side-apply", "kube-controller-manager", "meshcanary")},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-03-01T10:00:00Z", "config/hash": "abc"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "app", Image: image, Env: []corev1.EnvVar{{Name: "MODE", Value: "live"}}},
					{Name: "proxy", Image: "envoy:1.30"},
				}},
			},
		},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 4, UpdatedReplicas: 4, ReadyReplicas: 4, AvailableReplicas: 3,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable", Message: "Deployment has minimum availability."}}},
	}
	applied, err := json.Marshal(d.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[lastApplied] = string(applied)
	return d
}

func fullUnstructured(t *testing.T, obj map[string]any) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{Object: obj}
	u.SetManagedFields(managedFields("kubectl-client-side-apply", "pilot-discovery"))
	ann := u.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[lastApplied] = `{"apiVersion":"networking.istio.io/v1"}`
	ann["team"] = "payments"
	u.SetAnnotations(ann)
	return u
}

// leanFixture is one rollout's objects as the API server holds them.
type leanFixture struct {
	stable, canary *appsv1.Deployment
	vs, dr, cr     *unstructured.Unstructured
}

func newLeanFixture(t *testing.T) leanFixture {
	t.Helper()
	stable := fullDeployment(t, "pay", "stable", "pay:v1", map[string]string{
		annotations.Enabled: "true", annotations.Stages: "20,60", annotations.StageDuration: "20s",
		annotations.Rollback: "p99 regression", annotations.Phase: string(stages.Succeeded), annotations.Revision: "abc123",
	})
	canary := fullDeployment(t, "pay-canary", "canary", "pay:v2", nil)
	vs := fullUnstructured(t, actVirtualService("pay").Object)
	vs.Object["status"] = map[string]any{"validationMessages": []any{map[string]any{"documentationUrl": "https://istio.io", "level": "WARNING"}}}
	dr := fullUnstructured(t, actDestinationRule("pay").Object)
	cr := release.NewForDeployment(stable)
	raw, err := release.EncodeJSON(stages.State{Phase: stages.Progressing, Revision: "abc123", Weight: 20})
	if err != nil {
		t.Fatal(err)
	}
	cr.Status.State = raw
	cr.ManagedFields = managedFields("meshcanary")
	cru, err := release.ToUnstructured(cr)
	if err != nil {
		t.Fatal(err)
	}
	return leanFixture{stable: stable, canary: canary, vs: vs, dr: dr, cr: cru}
}

// stripped is a transformed deep copy, as the informer stores it.
func (f leanFixture) stripped(t *testing.T) leanFixture {
	t.Helper()
	strip := func(o runtime.Object) any {
		out, err := stripUnread(o.DeepCopyObject())
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	return leanFixture{
		stable: strip(f.stable).(*appsv1.Deployment), canary: strip(f.canary).(*appsv1.Deployment),
		vs: strip(f.vs).(*unstructured.Unstructured), dr: strip(f.dr).(*unstructured.Unstructured), cr: strip(f.cr).(*unstructured.Unstructured),
	}
}

// cachedController is a controller whose caches hold f's objects, as New
// indexes them; no informer runs.
func cachedController(t *testing.T, f leanFixture) *Controller {
	t.Helper()
	deploys := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{indexByCanary: canaryIndex, indexByVS: vsIndex})
	vss := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	crs := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for store, objs := range map[cache.Indexer][]any{deploys: {f.stable, f.canary}, vss: {f.vs}, crs: {f.cr}} {
		for _, o := range objs {
			if err := store.Add(o); err != nil {
				t.Fatal(err)
			}
		}
	}
	c := destinationRulesController(t, f.dr)
	c.cfg.Policies = policy.NewStore()
	logger := klog.Background()
	c.deploys = cache.NewIntegerResourceVersionMutationCache(logger, deploys, deploys, time.Minute, false)
	c.vss = cache.NewIntegerResourceVersionMutationCache(logger, vss, vss, time.Minute, false)
	c.crs = cache.NewIntegerResourceVersionMutationCache(logger, crs, crs, time.Minute, false)
	return c
}

// TestLeanCachesKeepWhatTheControllerReads runs what the controller reads
// of each object on the object as the API server holds it and as the
// lean informer caches hold it: every answer must be the same.
func TestLeanCachesKeepWhatTheControllerReads(t *testing.T) {
	full := newLeanFixture(t)
	lean := full.stripped(t)

	type reading func(f leanFixture) any
	readings := map[string]reading{
		"the revisions, weight, subsets and plan resolve finds": func(f leanFixture) any {
			c := cachedController(t, f)
			tgt, err := c.resolve(f.stable)
			if err != nil {
				t.Fatalf("resolve: %v", err)
			}
			return []any{tgt.stableRev, tgt.canaryRev, tgt.weight, tgt.routeOK, tgt.stableLabels, tgt.subsetKeys, tgt.vsTgt, tgt.plan.Steps, tgt.dropCommands, tgt.canary.Name, tgt.vs.GetName()}
		},
		"the stable and canary workloads": func(f leanFixture) any {
			return []stages.Workload{workload(f.stable, "s"), workload(f.canary, "c")}
		},
		"the commands": func(f leanFixture) any {
			cmd, bad, msg := commandsOf(f.stable)
			return []any{cmd, bad, msg}
		},
		"opting in and the indexes": func(f leanFixture) any {
			ci, _ := canaryIndex(f.stable)
			vi, _ := vsIndex(f.stable)
			hi, _ := drHostIndex(f.dr)
			return []any{optedIn(f.stable.Annotations), ci, vi, hi}
		},
		"the images notifications and gates name": func(f leanFixture) any {
			return [][]string{status.Images(f.stable), status.Images(f.canary)}
		},
		"what promotion copies and keeps": func(f leanFixture) any {
			return []any{f.canary.Spec.Template, f.stable.Spec.Selector, f.stable.ResourceVersion, f.stable.Generation}
		},
		"the CanaryRelease's owner": func(f leanFixture) any {
			return release.NewForDeployment(f.stable).OwnerReferences
		},
		"the summary and state annotations read before writing them": func(f leanFixture) any {
			return recordOf(f.stable, &v1alpha1.CanaryRelease{})
		},
		"the recorded state": func(f leanFixture) any {
			cr, err := release.FromUnstructured(f.cr)
			if err != nil {
				t.Fatal(err)
			}
			return recordOf(f.stable, cr)
		},
	}
	for name, read := range readings {
		t.Run(name, func(t *testing.T) {
			if a, b := read(full), read(lean); !reflect.DeepEqual(a, b) {
				t.Errorf("the lean cache reads differently:\nfull %+v\nlean %+v", a, b)
			}
		})
	}

	t.Run("what is never read is gone", func(t *testing.T) {
		for _, d := range []*appsv1.Deployment{lean.stable, lean.canary} {
			if d.ManagedFields != nil || d.Annotations[lastApplied] != "" || d.Status.Conditions != nil {
				t.Errorf("%s keeps managedFields %d, last-applied %t, conditions %d", d.Name, len(d.ManagedFields), d.Annotations[lastApplied] != "", len(d.Status.Conditions))
			}
		}
		for _, u := range []*unstructured.Unstructured{lean.vs, lean.dr, lean.cr} {
			if u.GetManagedFields() != nil || u.GetAnnotations()[lastApplied] != "" {
				t.Errorf("%s %s keeps managedFields or last-applied", u.GetKind(), u.GetName())
			}
		}
		if _, ok := lean.vs.Object["status"]; ok {
			t.Error("the VirtualService keeps Istio's status")
		}
		if _, ok, _ := unstructured.NestedFieldNoCopy(lean.cr.Object, "status", "state"); !ok {
			t.Error("the CanaryRelease lost its recorded state")
		}
		if lean.vs.GetAnnotations()["team"] != "payments" {
			t.Error("a user's own annotation was dropped")
		}
	})
	t.Run("stripping twice is stripping once", func(t *testing.T) {
		again := lean.stripped(t)
		if !equality.Semantic.DeepEqual(again.stable, lean.stable) || !equality.Semantic.DeepEqual(again.vs, lean.vs) {
			t.Error("the transform is not idempotent")
		}
	})
}

// The caches drop kubectl's last-applied-configuration and managedFields;
// a promotion decided from them must still leave both on the server:
// writeTemplate patches the template instead of sending the cached
// Deployment back.
func TestAPromotionFromLeanCachesKeepsWhatTheyDropped(t *testing.T) {
	r := newActRig(t, "Pass", "pay")
	d := r.deployment("pay")
	d.Annotations[lastApplied] = `{"kind":"Deployment","metadata":{"name":"pay"}}`
	d.ManagedFields = managedFields("kubectl-client-side-apply")
	if err := r.kube.Tracker().Update(actDeploymentsGVR, d, actNS); err != nil {
		t.Fatal(err)
	}
	r.poll("the informer to see the applied Deployment", func() bool {
		obj, ok, _ := r.deploys.GetByKey(actNS + "/pay")
		return ok && obj.(*appsv1.Deployment).ResourceVersion == d.ResourceVersion
	})
	obj, _, _ := r.deploys.GetByKey(actNS + "/pay")
	if cached := obj.(*appsv1.Deployment); cached.ManagedFields != nil || cached.Annotations[lastApplied] != "" {
		t.Fatal("the informer cache is not lean: the controller was built without its transform")
	}

	r.run("pay", r.finished("pay", stages.Succeeded))
	actCheckPromoted(t, r, "pay", "pay:v2")
	after := r.deployment("pay")
	if after.Annotations[lastApplied] != d.Annotations[lastApplied] || len(after.ManagedFields) == 0 {
		t.Errorf("after the promotion the server's stable has last-applied %q and %d managedFields: the write sent the lean cached copy back",
			after.Annotations[lastApplied], len(after.ManagedFields))
	}
}
