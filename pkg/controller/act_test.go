package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic/dynamicinformer"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/informers"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/apis/meshcanary/v1alpha1"
	"github.com/meshcanary/meshcanary/pkg/metrics"
	"github.com/meshcanary/meshcanary/pkg/policy"
	"github.com/meshcanary/meshcanary/pkg/stages"
)

// These tests drive the whole reconcile (gather → decide → act) against
// fake API servers whose writes fail on demand, and check after every
// reconcile what the contract of act promises: the decision is recorded
// first, nothing is written after a failed write, a weight is only ever
// written once the record holds it, a promotion only once the record says
// Promoting, and a recorded rollback never turns back into canary traffic.
//
// The record is the CanaryRelease's status.state (or, as versions before
// it kept it, the stable Deployment's meshcanary.io/state annotation): a
// write is a state record if it carries the State, whichever object it
// goes to.

const actNS = "payments"

var actDeploymentsGVR = appsv1.SchemeGroupVersion.WithResource("deployments")

// actKind names a write of the controller by what it does.
type actKind string

const (
	actCreate  actKind = "create"  // creation of the CanaryRelease
	actState   actKind = "state"   // the write that records the State
	actWeight  actKind = "weight"  // JSON patch of the VirtualService
	actScale   actKind = "scale"   // merge patch of the canary Deployment
	actPromote actKind = "promote" // JSON patch of the stable Deployment's template
	actMirror  actKind = "mirror"  // merge patch of the stable Deployment's summary and commands
)

// actOrder is the order act writes in within one reconcile.
var actOrder = map[actKind]int{actCreate: 0, actState: 1, actWeight: 2, actScale: 3, actPromote: 4, actMirror: 5}

// actAPIError is the operation label of meshcanary_api_errors_total.
var actAPIError = map[actKind]string{actCreate: "canaryrelease", actState: "state", actWeight: "virtualservice",
	actScale: "scale", actPromote: "promote", actMirror: "mirror"}

// actWrite is one write the controller sent.
type actWrite struct {
	app  string
	kind actKind
	body []byte
	// recorded is the State on record when the write was sent.
	recorded stages.State
	// phase is the phase on record once the write lands: for a state
	// record the phase it writes, for the others the recorded one.
	phase  stages.Phase
	failed bool
}

// actFault fails the nth write of a kind (made while phase is on record,
// if set), once.
type actFault struct {
	kind  actKind
	phase stages.Phase
	nth   int
	seen  int
	fired bool
}

func (f actFault) String() string {
	return fmt.Sprintf("%s write #%d (phase %q)", f.kind, f.nth, f.phase)
}

// actAnalyzer answers with the verdict set, or panics for one rollout.
type actAnalyzer struct {
	mu       sync.Mutex
	verdict  metrics.Verdict
	panicFor string
}

func (a *actAnalyzer) set(v metrics.Verdict, panicFor string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.verdict, a.panicFor = v, panicFor
}

func (a *actAnalyzer) Analyze(_ context.Context, req metrics.Request) (metrics.Result, error) {
	a.mu.Lock()
	v, p := a.verdict, a.panicFor
	a.mu.Unlock()
	if p != "" && p == req.Stable {
		panic("analyzer exploded")
	}
	return metrics.Result{Verdict: v, CanaryRequests: 1000, StableRequests: 1000, Window: req.Window,
		Message: fmt.Sprintf("canary judged %s over %s", v, req.Window)}, nil
}

// actRig is a controller over fake API servers with real informers.
type actRig struct {
	t        *testing.T
	ctx      context.Context
	c        *Controller
	m        *Metrics
	kube     *kubefake.Clientset
	dyn      *dynamicfake.FakeDynamicClient
	deploys  cache.Store
	vss      cache.Store
	crs      cache.Store
	clock    *clocktesting.FakeClock
	rec      *record.FakeRecorder
	analyzer *actAnalyzer
	apps     []string
	rv       atomic.Int64

	mu      sync.Mutex
	writes  []actWrite
	faults  []*actFault
	watched map[string]bool

	events []string
	// ceiling is, per app/revision rolled back, the highest canary weight
	// the route may still carry: it only ever goes down.
	ceiling map[string]int
}

func newActRig(t *testing.T, verdict metrics.Verdict, apps ...string) *actRig {
	t.Helper()
	var deploys, istio []runtime.Object
	for _, app := range apps {
		deploys = append(deploys, actStable(app), actDeployment(app+annotations.CanarySuffix, app, "canary", app+":v2", 0, nil))
		istio = append(istio, actVirtualService(app), actDestinationRule(app))
	}
	r := &actRig{
		t: t, apps: apps, analyzer: &actAnalyzer{verdict: verdict},
		kube: kubefake.NewClientset(deploys...),
		dyn: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
			VirtualServiceGVR(): "VirtualServiceList", DestinationRuleGVR(): "DestinationRuleList",
			v1alpha1.GVR(): v1alpha1.CanaryReleaseKind + "List"}, istio...),
		clock:   clocktesting.NewFakeClock(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)),
		rec:     record.NewFakeRecorder(1000),
		watched: map[string]bool{},
		ceiling: map[string]int{},
	}
	r.rv.Store(100)
	for _, f := range []*k8stesting.Fake{&r.kube.Fake, &r.dyn.Fake} {
		r.serve(f, r.trackerOf(f))
		r.inject(f)
		f.PrependWatchReactor("*", r.noteWatch)
	}
	r.start()
	return r
}

func (r *actRig) trackerOf(f *k8stesting.Fake) k8stesting.ObjectTracker {
	if f == &r.kube.Fake {
		return r.kube.Tracker()
	}
	return r.dyn.Tracker()
}

// start builds the controller as the binary does and waits until the
// informers list and watch.
func (r *actRig) start() {
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactory(r.kube, 0)
	dynFactory := dynamicinformer.NewDynamicSharedInformerFactory(r.dyn, 0)
	deploys := factory.Apps().V1().Deployments()
	vss := dynFactory.ForResource(VirtualServiceGVR()).Informer()
	crs := dynFactory.ForResource(v1alpha1.GVR()).Informer()
	r.m = NewMetrics(prometheus.NewRegistry())
	c, err := New(Config{
		Kube: r.kube, Dynamic: r.dyn, Deploys: deploys, VSs: vss, Releases: crs,
		DRs:      dynFactory.ForResource(DestinationRuleGVR()).Informer(),
		Policies: policy.NewStore(), Analyzer: r.analyzer, Recorder: r.rec,
		Clock: r.clock, Metrics: r.m, Log: zerolog.Nop(),
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() {
		cancel()
		c.queue.ShutDown()
		factory.Shutdown()
		dynFactory.Shutdown()
	})
	r.ctx, r.c, r.deploys, r.vss, r.crs = ctx, c, deploys.Informer().GetStore(), vss.GetStore(), crs.GetStore()
	factory.Start(ctx.Done())
	dynFactory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	dynFactory.WaitForCacheSync(ctx.Done())
	// A fake API server forgets writes made before a watch starts.
	r.poll("the informers to watch", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.watched["deployments"] && r.watched["virtualservices"] && r.watched["destinationrules"] && r.watched[v1alpha1.CanaryReleaseResource]
	})
}

func (r *actRig) noteWatch(a k8stesting.Action) (bool, watch.Interface, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.watched[a.GetResource().Resource] = true
	return false, nil, nil
}

func (r *actRig) poll(what string, cond func() bool) {
	r.t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		r.t.Fatalf("waiting for %s: %v", what, err)
	}
}

// fail injects a fault.
func (r *actRig) fail(f actFault) *actFault {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults = append(r.faults, &f)
	return &f
}

// serve makes the fake behave like an API server for writes: it checks
// resourceVersion preconditions, stamps a new resourceVersion on every
// write, bumps a Deployment's generation when its spec changes and keeps
// spec and status to their own endpoints.
func (r *actRig) serve(f *k8stesting.Fake, tracker k8stesting.ObjectTracker) {
	write := k8stesting.ObjectReaction(tracker)
	f.PrependReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		verb := a.GetVerb()
		if verb != "patch" && verb != "update" && verb != "create" {
			return false, nil, nil
		}
		name, precondition := actTarget(a)
		old, err := tracker.Get(a.GetResource(), a.GetNamespace(), name)
		if err != nil && verb != "create" {
			return true, nil, err
		}
		if oldMeta, _ := meta.Accessor(old); old != nil && precondition != "" && precondition != oldMeta.GetResourceVersion() {
			return true, nil, apierrors.NewConflict(a.GetResource().GroupResource(), name, errors.New("the object has been modified"))
		}
		if _, _, err := write(a); err != nil {
			return true, nil, err
		}
		obj, err := tracker.Get(a.GetResource(), a.GetNamespace(), name)
		if err != nil {
			return true, nil, err
		}
		if d, ok := obj.(*appsv1.Deployment); ok && verb != "create" {
			actAsServer(old.(*appsv1.Deployment), d, a.GetSubresource() == "status")
		}
		m, _ := meta.Accessor(obj)
		m.SetResourceVersion(fmt.Sprint(r.rv.Add(1)))
		if err := tracker.Update(a.GetResource(), obj, a.GetNamespace(), metav1.UpdateOptions{FieldManager: "apiserver"}); err != nil {
			return true, nil, err
		}
		return true, obj.DeepCopyObject(), nil
	})
}

// actTarget is the name a write is for and the resourceVersion it
// requires, if any.
func actTarget(a k8stesting.Action) (name, resourceVersion string) {
	switch a := a.(type) {
	case k8stesting.PatchActionImpl:
		if a.PatchType == types.MergePatchType {
			var p struct {
				Metadata struct {
					ResourceVersion string `json:"resourceVersion"`
				} `json:"metadata"`
			}
			_ = json.Unmarshal(a.Patch, &p)
			resourceVersion = p.Metadata.ResourceVersion
		}
		return a.Name, resourceVersion
	case k8stesting.UpdateActionImpl:
		m, err := meta.Accessor(a.Object)
		if err != nil {
			return "", ""
		}
		return m.GetName(), m.GetResourceVersion()
	case k8stesting.CreateActionImpl:
		m, err := meta.Accessor(a.Object)
		if err != nil {
			return "", ""
		}
		return m.GetName(), ""
	}
	return "", ""
}

// actAsServer keeps what the API server keeps: a status write changes only
// status, a spec write only spec and metadata, and generation counts spec
// changes.
func actAsServer(old, cur *appsv1.Deployment, status bool) {
	cur.Generation = old.Generation
	if status {
		cur.Spec = old.Spec
		return
	}
	cur.Status = old.Status
	if !equality.Semantic.DeepEqual(old.Spec, cur.Spec) {
		cur.Generation++
	}
}

// inject logs every write of the controller and fails the faulted ones.
func (r *actRig) inject(f *k8stesting.Fake) {
	f.PrependReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		w, ok := r.classify(a)
		if !ok {
			return false, nil, nil
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, f := range r.faults {
			if f.fired || f.kind != w.kind || (f.phase != "" && f.phase != w.phase) {
				continue
			}
			if f.seen++; f.seen == f.nth {
				f.fired, w.failed = true, true
				break
			}
		}
		r.writes = append(r.writes, w)
		if w.failed {
			return true, nil, apierrors.NewServiceUnavailable("injected failure")
		}
		return false, nil, nil
	})
}

// classify tells the controller's writes (field manager meshcanary) by
// what they do; every other request passes.
func (r *actRig) classify(a k8stesting.Action) (actWrite, bool) {
	var w actWrite
	var manager string
	name, _ := actTarget(a)
	switch a := a.(type) {
	case k8stesting.PatchActionImpl:
		manager, w.body = a.PatchOptions.FieldManager, a.Patch
	case k8stesting.UpdateActionImpl:
		manager = a.UpdateOptions.FieldManager
		w.body, _ = json.Marshal(a.Object)
	case k8stesting.CreateActionImpl:
		manager = a.CreateOptions.FieldManager
	default:
		return w, false
	}
	if manager != "meshcanary" {
		return w, false
	}
	w.app, w.kind = name, actKindOf(a.GetResource().Resource, a.GetVerb(), a.GetSubresource(), name, w.body)
	if w.kind == "" {
		return w, false
	}
	w.app = strings.TrimSuffix(w.app, annotations.CanarySuffix)
	w.recorded = r.state(w.app)
	w.phase = w.recorded.Phase
	if written, ok := actWrittenState(w.body); w.kind == actState && ok {
		w.phase = written.Phase
	}
	return w, true
}

func actKindOf(resource, verb, subresource, name string, body []byte) actKind {
	_, carriesState := actWrittenState(body)
	switch {
	case resource == v1alpha1.CanaryReleaseResource && verb == "create":
		return actCreate
	case resource == v1alpha1.CanaryReleaseResource && verb == "update" && subresource == "status":
		return actState
	case resource == "virtualservices" && verb == "patch":
		return actWeight
	case resource != "deployments" || subresource != "":
		return ""
	case verb == "update" || (verb == "patch" && bytes.HasPrefix(body, []byte("["))):
		// A JSON Patch (an array) of a Deployment replaces its template.
		return actPromote
	case strings.HasSuffix(name, annotations.CanarySuffix):
		return actScale
	case carriesState:
		return actState
	}
	return actMirror
}

// actWrittenState is the State a write carries: a CanaryRelease's
// status.state, or the state annotation of a Deployment patch.
func actWrittenState(body []byte) (stages.State, bool) {
	var w struct {
		Metadata struct {
			Annotations map[string]*string `json:"annotations"`
		} `json:"metadata"`
		Status struct {
			State json.RawMessage `json:"state"`
		} `json:"status"`
	}
	var st stages.State
	if json.Unmarshal(body, &w) != nil {
		return st, false
	}
	raw := []byte(w.Status.State)
	if a := w.Metadata.Annotations[annotations.State]; a != nil {
		raw = []byte(*a)
	}
	if len(raw) == 0 || string(raw) == "null" || json.Unmarshal(raw, &st) != nil {
		return st, false
	}
	return st, true
}

func actWrittenAnnotation(patch []byte, key string) (string, bool) {
	var p struct {
		Metadata struct {
			Annotations map[string]*string `json:"annotations"`
		} `json:"metadata"`
	}
	if json.Unmarshal(patch, &p) != nil || p.Metadata.Annotations[key] == nil {
		return "", false
	}
	return *p.Metadata.Annotations[key], true
}

// actWrittenCanaryWeight is the canary weight a VirtualService patch
// writes, or -1.
func actWrittenCanaryWeight(patch []byte) int {
	var ops []struct {
		Op, Path string
		Value    any
	}
	if json.Unmarshal(patch, &ops) != nil {
		return -1
	}
	for _, op := range ops {
		if v, ok := op.Value.(float64); ok && op.Op != "test" && op.Path == "/spec/http/0/route/1/weight" {
			return int(v)
		}
	}
	return -1
}

// Objects, as in test/harness: stable and canary Deployments told apart by
// the track label, a DestinationRule with those subsets and a
// VirtualService with one route over both.

func actStable(app string) *appsv1.Deployment {
	return actDeployment(app, app, "stable", app+":v1", 4, map[string]string{
		annotations.Enabled: "true", annotations.Stages: "20,60", annotations.StageDuration: "20s",
	})
}

func actDeployment(name, app, track, image string, replicas int32, ann map[string]string) *appsv1.Deployment {
	labels := map[string]string{"app": app, "track": track}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: actNS, Name: name, Annotations: ann, Generation: 1, ResourceVersion: "1"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}},
		},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: replicas, UpdatedReplicas: replicas,
			ReadyReplicas: replicas, AvailableReplicas: replicas},
	}
}

func actVirtualService(app string) *unstructured.Unstructured {
	dest := func(subset string, w int64) any {
		return map[string]any{"destination": map[string]any{"host": app, "subset": subset}, "weight": w}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
		"metadata": map[string]any{"namespace": actNS, "name": app, "resourceVersion": "1"},
		"spec": map[string]any{"hosts": []any{app}, "http": []any{
			map[string]any{"name": "primary", "route": []any{dest("stable", 100), dest("canary", 0)}},
		}},
	}}
}

func actDestinationRule(app string) *unstructured.Unstructured {
	subset := func(track string) any {
		return map[string]any{"name": track, "labels": map[string]any{"track": track}}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
		"metadata": map[string]any{"namespace": actNS, "name": app, "resourceVersion": "1"},
		"spec":     map[string]any{"host": app, "subsets": []any{subset("stable"), subset("canary")}},
	}}
}

// Reading what the API server holds.

func (r *actRig) deployment(name string) *appsv1.Deployment {
	r.t.Helper()
	obj, err := r.kube.Tracker().Get(actDeploymentsGVR, actNS, name)
	if err != nil {
		r.t.Fatal(err)
	}
	return obj.(*appsv1.Deployment)
}

func (r *actRig) virtualService(app string) *unstructured.Unstructured {
	r.t.Helper()
	obj, err := r.dyn.Tracker().Get(VirtualServiceGVR(), actNS, app)
	if err != nil {
		r.t.Fatal(err)
	}
	return obj.(*unstructured.Unstructured)
}

// weights reads the managed route's weights without the controller's help.
func (r *actRig) weights(app string) (stable, canary int) {
	r.t.Helper()
	routes, _, _ := unstructured.NestedSlice(r.virtualService(app).Object, "spec", "http")
	dests, _ := routes[0].(map[string]any)["route"].([]any)
	for _, d := range dests {
		dm := d.(map[string]any)
		w, _ := dm["weight"].(int64)
		switch dm["destination"].(map[string]any)["subset"] {
		case "stable":
			stable = int(w)
		case "canary":
			canary = int(w)
		}
	}
	return stable, canary
}

// state is the State on record: the CanaryRelease's status.state, or the
// stable Deployment's state annotation where a version kept it there
// (zero if none).
func (r *actRig) state(app string) stages.State {
	var st stages.State
	if cr := r.release(app); cr != nil {
		if raw, ok, _ := unstructured.NestedFieldNoCopy(cr.Object, "status", "state"); ok {
			b, _ := json.Marshal(raw)
			_ = json.Unmarshal(b, &st)
			return st
		}
	}
	if obj, err := r.kube.Tracker().Get(actDeploymentsGVR, actNS, app); err == nil {
		_ = json.Unmarshal([]byte(obj.(*appsv1.Deployment).Annotations[annotations.State]), &st)
	}
	return st
}

// release is app's CanaryRelease, or nil.
func (r *actRig) release(app string) *unstructured.Unstructured {
	obj, err := r.dyn.Tracker().Get(v1alpha1.GVR(), actNS, app)
	if err != nil {
		return nil
	}
	return obj.(*unstructured.Unstructured)
}

func (r *actRig) releaseVersion(app string) string {
	if cr := r.release(app); cr != nil {
		return cr.GetResourceVersion()
	}
	return ""
}

// versionsOf identifies app's record, route and canary as they are now.
func (r *actRig) versionsOf(app string) (record, route, canary string) {
	r.t.Helper()
	record = r.releaseVersion(app) + "/" + r.deployment(app).Annotations[annotations.State]
	return record, r.virtualService(app).GetResourceVersion(), r.deployment(app + annotations.CanarySuffix).ResourceVersion
}

// versions identifies the content of every object the controller reads.
func (r *actRig) versions() string {
	var b strings.Builder
	for _, app := range r.apps {
		fmt.Fprintf(&b, "%s %s %s %s ", r.deployment(app).ResourceVersion, r.deployment(app+annotations.CanarySuffix).ResourceVersion,
			r.virtualService(app).GetResourceVersion(), r.releaseVersion(app))
	}
	return b.String()
}

// settle waits until the informers hold what the API server holds.
func (r *actRig) settle() {
	r.t.Helper()
	r.poll("the informers to see every write", func() bool {
		for _, app := range r.apps {
			for _, name := range []string{app, app + annotations.CanarySuffix} {
				if actCachedVersion(r.deploys, name) != r.deployment(name).ResourceVersion {
					return false
				}
			}
			if actCachedVersion(r.vss, app) != r.virtualService(app).GetResourceVersion() ||
				actCachedVersion(r.crs, app) != r.releaseVersion(app) {
				return false
			}
		}
		return true
	})
}

func actCachedVersion(s cache.Store, name string) string {
	obj, ok, err := s.GetByKey(actNS + "/" + name)
	if err != nil || !ok {
		return ""
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return ""
	}
	return m.GetResourceVersion()
}

// rollOutDeployments is the Deployment controller: every Deployment's
// pods become what its spec asks for.
func (r *actRig) rollOutDeployments() {
	r.t.Helper()
	for _, app := range r.apps {
		for _, name := range []string{app, app + annotations.CanarySuffix} {
			d := r.deployment(name)
			n := *d.Spec.Replicas
			want := appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
			if equality.Semantic.DeepEqual(d.Status, want) {
				continue
			}
			d.Status = want
			if _, err := r.kube.AppsV1().Deployments(actNS).UpdateStatus(r.ctx, d, metav1.UpdateOptions{FieldManager: "kube-controller-manager"}); err != nil {
				r.t.Fatalf("rolling out %s: %v", name, err)
			}
		}
	}
}

// annotate is a person's kubectl annotate.
func (r *actRig) annotate(app, key, value string) {
	r.t.Helper()
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{key: value}}})
	if _, err := r.kube.AppsV1().Deployments(actNS).Patch(r.ctx, app, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "kubectl-annotate"}); err != nil {
		r.t.Fatal(err)
	}
	r.settle()
}

// Driving the controller.

// step reconciles app once, checks the writes it made and the routes it
// left, then lets the Deployment controller act and the informers catch up.
func (r *actRig) step(app string) (time.Duration, error) {
	r.t.Helper()
	from := r.writeCount()
	after, err := r.c.reconcile(r.ctx, actNS+"/"+app)
	r.checkWrites(r.writesSince(from), err)
	r.drainEvents()
	for _, a := range r.apps {
		r.checkRoute(a)
	}
	r.rollOutDeployments()
	r.settle()
	return after, err
}

// run reconciles app until done, advancing the clock as the worker's
// wake-ups would: soon after a change (a watch event or a retry), else
// when the controller asked to be woken.
func (r *actRig) run(app string, done func() bool) {
	r.t.Helper()
	for range 200 {
		if done() {
			return
		}
		before := r.versions()
		after, err := r.step(app)
		switch {
		case err != nil || r.versions() != before:
			r.clock.Step(time.Second)
		case after > 0:
			r.clock.Step(min(after, time.Minute))
		default:
			r.clock.Step(10 * time.Second)
		}
	}
	r.t.Fatalf("%s never finished: state %+v, weights %v", app, r.state(app), fmt.Sprint(r.weights(app)))
}

// finished is a release at rest in phase: route 100/0, no weight pending,
// canary scaled to zero.
func (r *actRig) finished(app string, phase stages.Phase) func() bool {
	return func() bool {
		st := r.state(app)
		stable, canary := r.weights(app)
		c := r.deployment(app + annotations.CanarySuffix)
		// At rest also means the consumed commands were seen removed.
		return st.Phase == phase && !st.WeightPending && len(st.Unremoved) == 0 && stable == 100 && canary == 0 &&
			*c.Spec.Replicas == 0 && c.Status.AvailableReplicas == 0
	}
}

// stageLive is a release whose first stage's weight the route carries.
func (r *actRig) stageLive(app string) func() bool {
	return func() bool {
		st := r.state(app)
		_, canary := r.weights(app)
		return st.Phase == stages.Progressing && st.Stage == 0 && !st.StageStart.IsZero() && !st.WeightPending && canary == 20
	}
}

func (r *actRig) writeCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.writes)
}

func (r *actRig) writesSince(i int) []actWrite {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]actWrite(nil), r.writes[i:]...)
}

// checkWrites holds one reconcile's writes to act's contract.
func (r *actRig) checkWrites(ws []actWrite, err error) {
	r.t.Helper()
	last, failed := -1, false
	for _, w := range ws {
		if failed {
			r.t.Fatalf("%s write sent after a failed write in the same reconcile (writes %v)", w.kind, actKinds(ws))
		}
		if actOrder[w.kind] <= last {
			r.t.Fatalf("writes %v: want at most one of each, in the order create, state, weight, scale, promote, mirror", actKinds(ws))
		}
		last, failed = actOrder[w.kind], w.failed
		switch w.kind {
		case actWeight:
			got := actWrittenCanaryWeight(w.body)
			if rec := w.recorded; !rec.WeightPending || rec.Weight != got {
				r.t.Fatalf("canary weight %d written while the recorded state has weight %d (pending %v): the state must record it first",
					got, rec.Weight, rec.WeightPending)
			}
			if w.recorded.Phase == stages.RolledBack && got != 0 {
				r.t.Fatalf("canary weight %d written after the rollback was recorded", got)
			}
		case actPromote:
			if w.recorded.Phase != stages.Promoting {
				r.t.Fatalf("stable's template written while the recorded phase is %s, want Promoting", w.recorded.Phase)
			}
		case actMirror:
			if p, ok := actWrittenAnnotation(w.body, annotations.Phase); ok && p != string(w.recorded.Phase) {
				r.t.Fatalf("summary shows phase %s while the recorded phase is %s", p, w.recorded.Phase)
			}
		}
	}
	if (err != nil) != failed {
		r.t.Fatalf("reconcile returned %v after writes %v: an error must come from exactly the write that failed", err, actKinds(ws))
	}
}

func actKinds(ws []actWrite) []string {
	var out []string
	for _, w := range ws {
		k := string(w.kind)
		if w.failed {
			k += "(failed)"
		}
		out = append(out, k)
	}
	return out
}

// checkRoute holds the route to the safety rules.
func (r *actRig) checkRoute(app string) {
	r.t.Helper()
	stable, canary := r.weights(app)
	if stable+canary != 100 {
		r.t.Fatalf("%s: managed weights %d+%d do not sum to 100", app, stable, canary)
	}
	if c := r.deployment(app + annotations.CanarySuffix); canary > 0 && c.Status.AvailableReplicas == 0 {
		r.t.Fatalf("%s: canary weight %d%% with no available canary pods", app, canary)
	}
	st := r.state(app)
	if st.Phase != stages.RolledBack {
		return
	}
	key := app + "/" + st.Revision
	if ceiling, seen := r.ceiling[key]; seen && canary > ceiling {
		r.t.Fatalf("%s: canary weight rose from %d%% to %d%% after the rollback of %s was recorded", app, ceiling, canary, st.Revision)
	}
	r.ceiling[key] = canary
}

// drainEvents keeps the recorder's Events. Only the controller writes the
// routes here, so restoring weights would mean it took its own unfinished
// write for someone else's edit; and commands are only given while a
// release is in flight, so ignoring one means it was taken twice.
func (r *actRig) drainEvents() {
	r.t.Helper()
	for {
		select {
		case e := <-r.rec.Events:
			r.events = append(r.events, e)
			if strings.Contains(e, " "+stages.ReasonWeightsRestored+" ") || strings.Contains(e, " "+stages.ReasonCommandIgnored+" ") {
				r.t.Fatalf("unexpected Event %q", e)
			}
		default:
			return
		}
	}
}

// checkFired checks that each fault was injected exactly once and counted.
func (r *actRig) checkFired(faults ...*actFault) {
	r.t.Helper()
	for _, f := range faults {
		if !f.fired {
			r.t.Fatalf("%s never happened (%d such writes): the test did not test what it says", f, f.seen)
		}
		var d dto.Metric
		if err := r.m.APIErrors.WithLabelValues(actAPIError[f.kind]).Write(&d); err != nil {
			r.t.Fatal(err)
		}
		if got := d.GetCounter().GetValue(); got != 1 {
			r.t.Errorf("meshcanary_api_errors_total{operation=%q} = %v, want 1", actAPIError[f.kind], got)
		}
	}
}

// checkIdle checks that a rollout at rest costs no writes.
func (r *actRig) checkIdle(app string) {
	r.t.Helper()
	from := r.writeCount()
	if _, err := r.step(app); err != nil {
		r.t.Fatal(err)
	}
	if ws := r.writesSince(from); len(ws) > 0 {
		r.t.Fatalf("a rollout at rest wrote %v", actKinds(ws))
	}
}

func (r *actRig) hasWrite(kind actKind) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.writes {
		if w.kind == kind {
			return true
		}
	}
	return false
}

// The tests.

func TestActHealthyReleaseIsPromotedDespiteAFailedWrite(t *testing.T) {
	cases := map[string]actFault{
		"the CanaryRelease's creation failing is retried":                                                   {kind: actCreate, nth: 1},
		"the state record failing as the release starts leaves the canary unscaled and the route untouched": {kind: actState, nth: 1},
		"the state record failing before a stage starts leaves the route untouched":                         {kind: actState, nth: 2},
		"the first stage's weight write failing is finished by the retry":                                   {kind: actWeight, nth: 1},
		"the canary scale failing is retried":                                                               {kind: actScale, nth: 1},
		"the canary scale for the second stage failing is retried":                                          {kind: actScale, nth: 2},
		"the state record of the promotion failing is retried":                                              {kind: actState, phase: stages.Promoting, nth: 1},
		"the promotion's template write failing is retried and the release ends promoted, not rolled back":  {kind: actPromote, nth: 1},
		"the weight write failing after the promotion is recorded is finished by the retry":                 {kind: actWeight, phase: stages.Succeeded, nth: 1},
		"the canary scale-down failing after the promotion is retried":                                      {kind: actScale, phase: stages.Succeeded, nth: 1},
		"the summary write failing after a stage starts is retried":                                         {kind: actMirror, phase: stages.Progressing, nth: 2},
		"the summary write failing after the promotion is retried":                                          {kind: actMirror, phase: stages.Succeeded, nth: 1},
	}
	for name, fault := range cases {
		t.Run(name, func(t *testing.T) {
			r := newActRig(t, metrics.VerdictPass, "pay")
			f := r.fail(fault)
			r.run("pay", r.finished("pay", stages.Succeeded))
			r.checkFired(f)
			r.checkIdle("pay")
			actCheckPromoted(t, r, "pay", "pay:v2")
		})
	}
}

func actCheckPromoted(t *testing.T, r *actRig, app, image string) {
	t.Helper()
	st := r.state(app)
	if st.Result != stages.ResultPromoted {
		t.Errorf("release ended %q, want %q", st.Result, stages.ResultPromoted)
	}
	if got := r.deployment(app).Annotations[annotations.Phase]; got != string(stages.Succeeded) {
		t.Errorf("%s = %q, want Succeeded", annotations.Phase, got)
	}
	stable, canary := r.deployment(app).Spec.Template, r.deployment(app+annotations.CanarySuffix).Spec.Template
	if stable.Spec.Containers[0].Image != image || stable.Labels["track"] != "stable" ||
		revision(&stable, []string{"track"}) != revision(&canary, []string{"track"}) {
		t.Errorf("stable runs %s with labels %v, want the canary's template in the stable subset", stable.Spec.Containers[0].Image, stable.Labels)
	}
}

func TestActFailedReleaseIsRolledBackDespiteAFailedWrite(t *testing.T) {
	cases := map[string]actFault{
		"the state record failing as the release starts is retried":                                                       {kind: actState, nth: 1},
		"the first stage's weight write failing is retried":                                                               {kind: actWeight, nth: 1},
		"the state record of the rollback failing leaves the decision to the retry":                                       {kind: actState, phase: stages.RolledBack, nth: 1},
		"the weight write failing after a rollback is recorded is finished by the retry and never restored to the canary": {kind: actWeight, phase: stages.RolledBack, nth: 1},
		"the canary scale-down failing after a rollback is retried":                                                       {kind: actScale, phase: stages.RolledBack, nth: 1},
		"the summary write failing after a rollback is recorded is retried":                                               {kind: actMirror, phase: stages.RolledBack, nth: 1},
	}
	for name, fault := range cases {
		t.Run(name, func(t *testing.T) {
			r := newActRig(t, metrics.VerdictFail, "pay")
			f := r.fail(fault)
			r.run("pay", r.finished("pay", stages.RolledBack))
			r.checkFired(f)
			r.checkIdle("pay")
			actCheckRolledBack(t, r, "pay", stages.ResultRolledBack, stages.DecidedByAnalysis)
		})
	}
}

func actCheckRolledBack(t *testing.T, r *actRig, app string, result stages.Result, by string) {
	t.Helper()
	if st := r.state(app); st.Result != result || st.DecidedBy != by {
		t.Errorf("release ended %q decided by %q, want %q by %q", st.Result, st.DecidedBy, result, by)
	}
	if got := r.deployment(app).Annotations[annotations.Phase]; got != string(stages.RolledBack) {
		t.Errorf("%s = %q, want RolledBack", annotations.Phase, got)
	}
	if r.hasWrite(actPromote) || r.deployment(app).Spec.Template.Spec.Containers[0].Image != app+":v1" {
		t.Errorf("a rolled-back release touched stable's template")
	}
}

func TestActManualRollbackConvergesDespiteAFailedWrite(t *testing.T) {
	cases := map[string]actFault{
		"the route write failing after the rollback is recorded is finished by the retry": {kind: actWeight, phase: stages.RolledBack, nth: 1},
		"the record of the rollback failing keeps the command for the retry":              {kind: actState, phase: stages.RolledBack, nth: 1},
		"the canary scale-down failing after the manual rollback is retried":              {kind: actScale, phase: stages.RolledBack, nth: 1},
		"the write removing the consumed command failing does not report it as ignored":   {kind: actMirror, phase: stages.RolledBack, nth: 1},
	}
	for name, fault := range cases {
		t.Run(name, func(t *testing.T) {
			r := newActRig(t, metrics.VerdictPass, "pay")
			r.run("pay", r.stageLive("pay"))
			f := r.fail(fault)
			r.annotate("pay", annotations.Rollback, "p99 latency doubled")
			r.run("pay", r.finished("pay", stages.RolledBack))
			r.checkFired(f)
			r.checkIdle("pay")
			actCheckRolledBack(t, r, "pay", stages.ResultManualRollback, stages.DecidedByAnnotation)
			if v, ok := r.deployment("pay").Annotations[annotations.Rollback]; ok {
				t.Errorf("the consumed command %s=%q is still there", annotations.Rollback, v)
			}
		})
	}
}

func TestActRollbackCommandWhoseRemovalFailedDoesNotEndTheNextRelease(t *testing.T) {
	r := newActRig(t, metrics.VerdictPass, "pay")
	r.run("pay", r.stageLive("pay"))
	f := r.fail(actFault{kind: actMirror, phase: stages.RolledBack, nth: 1})
	r.annotate("pay", annotations.Rollback, "p99 latency doubled")
	r.run("pay", func() bool { return f.fired })
	rolledBack := r.state("pay").Revision
	// The person ships a fix before the retry has removed their command.
	r.setImage("pay"+annotations.CanarySuffix, "pay:v3")
	r.run("pay", func() bool {
		st := r.state("pay")
		return st.Revision != rolledBack && (r.finished("pay", stages.Succeeded)() || r.finished("pay", stages.RolledBack)())
	})
	if st := r.state("pay"); st.Result != stages.ResultPromoted {
		t.Fatalf("the release of pay:v3 ended %q (%s): the rollback command given for the release before it must not end it", st.Result, st.Message)
	}
	actCheckPromoted(t, r, "pay", "pay:v3")
}

// setImage is a person's kubectl set image.
func (r *actRig) setImage(deployment, image string) {
	r.t.Helper()
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":%q}]}}}}`, image)
	if _, err := r.kube.AppsV1().Deployments(actNS).Patch(r.ctx, deployment, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "kubectl-set"}); err != nil {
		r.t.Fatal(err)
	}
	r.rollOutDeployments()
	r.settle()
}

func TestActPanicShowsInvalidLeavesTrafficAloneAndOthersAreServed(t *testing.T) {
	r := newActRig(t, metrics.VerdictPass, "pay", "cart")
	r.run("pay", r.stageLive("pay"))
	record, route, canary := r.versionsOf("pay")

	r.analyzer.set(metrics.VerdictPass, "pay")
	r.clock.Step(time.Minute) // the stage's analysis is due
	after, err := r.c.reconcileSafely(r.ctx, actNS+"/pay")
	if !errors.Is(err, errPanicked) || after != 0 {
		t.Fatalf("reconcileSafely = %v, %v; want the panic as an error for the backoff", after, err)
	}
	r.settle()
	r.drainEvents()
	pay := r.deployment("pay")
	if got := pay.Annotations[annotations.Phase]; got != string(stages.Invalid) {
		t.Errorf("%s = %q, want Invalid", annotations.Phase, got)
	}
	if msg := pay.Annotations[annotations.Message]; !strings.Contains(msg, "analyzer exploded") {
		t.Errorf("%s = %q, want the panic's message", annotations.Message, msg)
	}
	if r2, ro2, c2 := r.versionsOf("pay"); r2 != record || ro2 != route || c2 != canary {
		t.Errorf("the panic wrote the record, the route or the canary")
	}
	if _, w := r.weights("pay"); w != 20 {
		t.Errorf("canary weight %d%% after the panic, want the 20%% it had", w)
	}
	if !actHasEvent(r.events, stages.ReasonInvalidConfiguration, "analyzer exploded") {
		t.Errorf("no Warning with the panic's message among %q", r.events)
	}

	r.run("cart", r.finished("cart", stages.Succeeded)) // while pay still panics
	actCheckPromoted(t, r, "cart", "cart:v2")
	r.analyzer.set(metrics.VerdictPass, "")
	r.run("pay", r.finished("pay", stages.Succeeded))
	actCheckPromoted(t, r, "pay", "pay:v2")
}

func actHasEvent(events []string, reason, text string) bool {
	for _, e := range events {
		if strings.HasPrefix(e, corev1.EventTypeWarning+" "+reason+" ") && strings.Contains(e, text) {
			return true
		}
	}
	return false
}

// A verdict's counts change at every analysis; the Deployment's summary
// must not be rewritten for that, or a stage costs a Deployment write per
// rollout per interval. The CanaryRelease's status carries every verdict.
func TestActSummaryIsNotRewrittenForEachAnalysis(t *testing.T) {
	r := newActRig(t, metrics.VerdictPass, "pay")
	// Stages of 5 minutes: five analyses each at the default interval.
	d := r.deployment("pay").DeepCopy()
	d.Annotations[annotations.StageDuration] = "5m"
	if _, err := r.kube.AppsV1().Deployments(actNS).Update(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.poll("the longer stages to be seen", func() bool { return r.deployment("pay").Annotations[annotations.StageDuration] == "5m" })
	r.run("pay", r.finished("pay", stages.Succeeded))
	r.mu.Lock()
	mirrors, states := 0, 0
	for _, w := range r.writes {
		switch w.kind {
		case actMirror:
			mirrors++
		case actState:
			states++
		}
	}
	r.mu.Unlock()
	const stagesRun = 2 // 20% and 60%
	if states < 4*stagesRun {
		t.Fatalf("only %d state records for %d stages: the release was not analysed every interval", states, stagesRun)
	}
	if mirrors > 3*stagesRun+2 {
		t.Errorf("%d summary writes for %d stages and %d state records: the summary follows every analysis", mirrors, stagesRun, states)
	}
}
