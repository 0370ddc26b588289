package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/apis/meshcanary/v1alpha1"
	"github.com/meshcanary/meshcanary/pkg/release"
	"github.com/meshcanary/meshcanary/pkg/stages"
	"github.com/meshcanary/meshcanary/pkg/status"
)

// summary returns the annotations the controller mirrors on the stable
// Deployment for st: the summary only, the state being in the
// CanaryRelease.
func summary(st stages.State) map[string]string {
	return map[string]string{
		annotations.Enabled:  "true",
		annotations.Phase:    string(st.Phase),
		annotations.Weight:   strconv.Itoa(st.Weight),
		annotations.Stage:    "2/3",
		annotations.Revision: st.Revision,
		annotations.Message:  st.Message,
	}
}

// recorded returns d's CanaryRelease as the controller records st, the
// last analysis and the history in its status.
func recorded(t *testing.T, d *appsv1.Deployment, st stages.State, an *status.Analysis, history []status.Release) *v1alpha1.CanaryRelease {
	t.Helper()
	cr := release.NewForDeployment(d)
	cr.ResourceVersion = "11"
	state, err := release.EncodeJSON(st)
	if err != nil {
		t.Fatal(err)
	}
	cr.Status = v1alpha1.CanaryReleaseStatus{
		Phase: string(st.Phase), Stage: int32(st.Stage), Stages: 3, StageLabel: "2/3", Weight: int32(st.Weight),
		Revision: st.Revision, Message: st.Message, State: state,
	}
	if an != nil {
		if cr.Status.LastAnalysis, err = release.EncodeJSON(an); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(history)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cr.Status.History); err != nil {
		t.Fatal(err)
	}
	return cr
}

func TestStatusReadsTheCanaryRelease(t *testing.T) {
	now := epoch()
	w := weightsDoc{Stable: 50, Canary: 50, Source: "VirtualService shop/web"}
	st := progressing(now)

	t.Run("state, analysis and history come from the CanaryRelease, commands from the Deployment", func(t *testing.T) {
		ann := summary(st)
		ann[annotations.Pause] = "true"
		d := deployment("web", ann, nil, nil)
		doc := buildStatus(d, recorded(t, d, st, lastAnalysis(now), releases(now, 2)), w, now)
		if doc.Phase != "Progressing" || doc.Stage != "2/3" || doc.Verdicts.Passes != 3 || doc.Clock == nil ||
			doc.Analysis == nil || len(doc.Analysis.Checks) != 2 || len(doc.History) != 2 || doc.PendingCommands[annotations.Pause] != "true" {
			t.Errorf("doc %+v", doc)
		}
		if len(doc.Warnings) > 0 {
			t.Errorf("warnings %v", doc.Warnings)
		}
		var b bytes.Buffer
		if err := renderStatus(&b, doc, now); err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"2/3, 1m10s elapsed", "last Pass; this stage 3 passed", "error-rate", "Recent releases:", "rev1"} {
			if !strings.Contains(b.String(), s) {
				t.Errorf("output lacks %q:\n%s", s, b.String())
			}
		}
	})
	t.Run("the CanaryRelease wins over annotations an older version left or an undo restored", func(t *testing.T) {
		old := st
		old.Phase, old.Revision, old.Passes = stages.RolledBack, "old", 9
		ann := published(t, old, nil, releases(now, 7))
		d := deployment("web", ann, nil, nil)
		doc := buildStatus(d, recorded(t, d, st, nil, releases(now, 1)), w, now)
		if doc.Phase != "Progressing" || doc.Revision != "abc123" || doc.Verdicts.Passes != 3 || len(doc.History) != 1 {
			t.Errorf("doc %+v", doc)
		}
	})
	t.Run("a CanaryRelease not yet written reads from the annotations", func(t *testing.T) {
		d := deployment("web", published(t, st, nil, releases(now, 2)), nil, nil)
		doc := buildStatus(d, release.NewForDeployment(d), w, now)
		if doc.Phase != "Progressing" || len(doc.History) != 2 || len(doc.Warnings) > 0 {
			t.Errorf("doc %+v", doc)
		}
	})
	t.Run("an unreadable state is a warning, not a failure", func(t *testing.T) {
		d := deployment("web", summary(st), nil, nil)
		cr := recorded(t, d, st, nil, nil)
		cr.Status.State = &apiextensionsv1.JSON{Raw: []byte(`{"started": 5}`)}
		doc := buildStatus(d, cr, w, now)
		if doc.Phase != "Progressing" || len(doc.Warnings) != 1 || !strings.Contains(doc.Warnings[0], "status.state") {
			t.Errorf("doc %+v", doc)
		}
	})
	t.Run("without the VirtualService the weight comes from the CanaryRelease", func(t *testing.T) {
		ann := summary(st)
		ann[annotations.Weight] = "10" // not mirrored yet
		d := deployment("web", ann, nil, nil)
		r := rollout{d: d, cr: recorded(t, d, st, nil, nil)}
		doc := assemble(r, publishedWeights(r.d, r.cr), "VirtualService \"web\" not found", now)
		if doc.Weights.Canary != 50 || !strings.Contains(doc.Weights.Source, "CanaryRelease shop/web") ||
			len(doc.Warnings) != 1 || !strings.Contains(doc.Warnings[0], "status.weight") {
			t.Errorf("doc %+v", doc)
		}
		legacy := publishedWeights(d, nil)
		if legacy.Canary != 10 || legacy.Source != "annotation "+annotations.Weight {
			t.Errorf("without a CanaryRelease: %+v", legacy)
		}
	})
}

func TestListMatchesCanaryReleasesByNamespaceAndName(t *testing.T) {
	now := epoch()
	st := progressing(now)
	web := deployment("web", summary(st), nil, nil)
	api := deployment("web", map[string]string{annotations.Enabled: "true", annotations.Phase: "Idle", annotations.Weight: "0"}, nil, nil)
	api.Namespace = "core"
	legacy := deployment("legacy", published(t, st, nil, releases(now, 1)), nil, nil)
	broken := deployment("broken", summary(st), nil, nil)
	set := releaseSet{
		byKey: map[string]*v1alpha1.CanaryRelease{"shop/web": recorded(t, web, st, nil, releases(now, 2))},
		bad:   map[string]error{"shop/broken": errBroken},
	}
	doc := buildList([]appsv1.Deployment{*web, *api, *legacy, *broken}, set)
	byKey := map[string]listItem{}
	for _, it := range doc.Items {
		byKey[it.Namespace+"/"+it.Name] = it
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"shop/web reads its CanaryRelease's history", byKey["shop/web"].LastResult == "promoted" && byKey["shop/web"].Weight == 50},
		{"core/web, of the same name, does not", byKey["core/web"].Phase == "Idle" && byKey["core/web"].LastResult == ""},
		{"a Deployment with annotations only still reads", byKey["shop/legacy"].Phase == "Progressing" && byKey["shop/legacy"].LastResult == "promoted"},
		{"an undecodable CanaryRelease is a warning on its row", byKey["shop/broken"].Phase == "Progressing" && strings.Contains(byKey["shop/broken"].Warning, "broken")},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !c.ok {
				t.Errorf("items %+v", doc.Items)
			}
		})
	}
}

var errBroken = apierrors.NewBadRequest("canaryrelease broken")

// fakeCluster is a cluster whose dynamic client holds objs.
func fakeCluster(t *testing.T, objs ...*v1alpha1.CanaryRelease) (*cluster, *dynamicfake.FakeDynamicClient) {
	t.Helper()
	scheme := runtime.NewScheme()
	var us []runtime.Object
	for _, cr := range objs {
		u, err := release.ToUnstructured(cr)
		if err != nil {
			t.Fatal(err)
		}
		us = append(us, u)
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme,
		map[schema.GroupVersionResource]string{v1alpha1.GVR(): v1alpha1.CanaryReleaseKind + "List"}, us...)
	return &cluster{dyn: dyn, namespace: "shop"}, dyn
}

func TestCanaryReleaseReads(t *testing.T) {
	now := epoch()
	st := progressing(now)
	web := deployment("web", summary(st), nil, nil)
	other := deployment("web", summary(st), nil, nil)
	other.Namespace = "core"
	ctx := context.Background()

	t.Run("list reads every CanaryRelease with one request", func(t *testing.T) {
		c, dyn := fakeCluster(t, recorded(t, web, st, nil, nil), recorded(t, other, st, nil, nil))
		set, err := c.releases(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(set.byKey) != 2 || set.byKey["core/web"] == nil || set.byKey["shop/web"] == nil {
			t.Errorf("set %v", set.byKey)
		}
		if n := len(dyn.Actions()); n != 1 || dyn.Actions()[0].GetVerb() != "list" {
			t.Errorf("%d requests: %v", n, dyn.Actions())
		}
	})
	t.Run("a Deployment without a CanaryRelease reads as nil", func(t *testing.T) {
		c, _ := fakeCluster(t)
		cr, err := c.release(ctx, web)
		if cr != nil || err != nil {
			t.Errorf("release = %v, %v", cr, err)
		}
	})
	t.Run("a refused read says which permission is missing", func(t *testing.T) {
		c, dyn := fakeCluster(t)
		dyn.PrependReactor("*", v1alpha1.CanaryReleaseResource, func(a clienttesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(v1alpha1.GVR().GroupResource(), "web", nil)
		})
		if _, err := c.release(ctx, web); err == nil || !strings.Contains(err.Error(), "get, list and watch on canaryreleases.meshcanary.io") {
			t.Errorf("get: %v", err)
		}
		if _, err := c.releases(ctx, "shop"); err == nil || !strings.Contains(err.Error(), "canaryreleases.meshcanary.io") {
			t.Errorf("list: %v", err)
		}
	})
	t.Run("without the CRD there is nothing to read or watch", func(t *testing.T) {
		c, dyn := fakeCluster(t)
		dyn.PrependReactor("*", v1alpha1.CanaryReleaseResource, func(a clienttesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewNotFound(schema.GroupResource{}, "")
		})
		if set, err := c.releases(ctx, ""); err != nil || len(set.byKey) != 0 {
			t.Errorf("list: %v, %v", set, err)
		}
		if cr, rv, err := c.releaseForWatch(ctx, web); cr != nil || rv != "" || err != nil {
			t.Errorf("releaseForWatch = %v, %q, %v", cr, rv, err)
		}
	})
}

func TestRetryPrecheck(t *testing.T) {
	retry := action{name: "retry", annotation: annotations.Retry}
	history := func(result stages.Result) []status.Release {
		return []status.Release{{Revision: "r1", Result: string(result)}}
	}
	tests := []struct {
		name        string
		view        status.View
		wantMsg     string
		wantRefused bool
	}{
		{"a rolled back release may be retried", status.View{Phase: "RolledBack"}, "", false},
		{"an aborted release may be retried", status.View{Phase: "RolledBack", History: history(stages.ResultAborted)}, "", false},
		{"a revert of stable may be retried", status.View{Phase: "Succeeded", History: history(stages.ResultReverted)}, "", false},
		{"a release in flight refuses retry", status.View{Phase: "Progressing", Revision: "r2"}, "is in flight (phase Progressing, revision r2)", true},
		{"a paused release refuses retry", status.View{Phase: "Paused"}, "is in flight", true},
		{"a promoting release refuses retry", status.View{Phase: "Promoting"}, "is in flight", true},
		{"after a promotion retry is warned about", status.View{Phase: "Succeeded", History: history(stages.ResultPromoted)}, "last result promoted", false},
		{"with no release yet retry is warned about", status.View{Phase: "Idle"}, "last result none", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, refused := precheck(retry, tt.view, deployment("web", nil, nil, nil))
			if refused != tt.wantRefused || (tt.wantMsg == "") != (got == "") || !strings.Contains(got, tt.wantMsg) {
				t.Errorf("precheck = %q, %v; want %q, refused %v", got, refused, tt.wantMsg, tt.wantRefused)
			}
		})
	}
	err := &refusedError{msg: "a release is in flight"}
	if ExitCode(err) != ExitFailure || !strings.Contains(err.Error(), "nothing was written") {
		t.Errorf("refusal %v exits %d", err, ExitCode(err))
	}
}

func TestWaitConditionsWithACanaryRelease(t *testing.T) {
	now := epoch()
	rolledBack := stages.State{Phase: stages.RolledBack, Revision: "r2", Started: now.Add(-time.Hour), Finished: now.Add(-50 * time.Minute), Result: stages.ResultManualRollback}
	prior := status.View{Phase: "RolledBack", State: rolledBack}
	retried := stages.State{Phase: stages.Progressing, Revision: "r2", Started: now}
	at := func(st stages.State, mirror stages.State, ann map[string]string) rollout {
		a := summary(mirror)
		for k, v := range ann {
			a[k] = v
		}
		d := deployment("web", a, nil, nil)
		return rollout{d: d, cr: recorded(t, d, st, nil, nil)}
	}
	retry := action{name: "retry", annotation: annotations.Retry}
	pause := action{name: "pause", annotation: annotations.Pause}
	paused := retried
	paused.Phase = stages.Paused
	tests := []struct {
		name     string
		act      action
		r        rollout
		wantDone bool
		wantErr  string
	}{
		{"retry waits while the command is pending", retry, at(rolledBack, rolledBack, map[string]string{annotations.Retry: "true"}), false, ""},
		{"retry is done once a new release of the revision progresses", retry, at(retried, retried, nil), true, ""},
		{"retry waits while the controller has recorded the start but not yet mirrored it", retry, at(retried, rolledBack, map[string]string{annotations.Retry: "true"}), false, ""},
		{"a retry consumed without a new release fails", retry, at(rolledBack, rolledBack, nil), false, "did not act on meshcanary.io/retry"},
		{"pause waits until the Deployment's summary says Paused too", pause, at(paused, retried, map[string]string{annotations.Pause: "true"}), false, ""},
		{"pause is done once both say Paused", pause, at(paused, paused, map[string]string{annotations.Pause: "true"}), true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &actionOptions{act: tt.act}
			done, seen, err := o.result(context.Background(), nil, prior, tt.r)
			if done != tt.wantDone || (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("result = %v, %q, %v; want %v, error %q", done, seen, err, tt.wantDone, tt.wantErr)
			}
		})
	}
	if line := resultLine(retry, statusDoc{Phase: "Progressing", Revision: "r2", Stage: "1/3"}); line != "retrying: phase Progressing, revision r2, stage 1/3" {
		t.Errorf("result line %q", line)
	}
}

// lockedWriter collects what a command prints while it runs.
type lockedWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestFollowWatchesTheCanaryRelease drives `status -w` with fake watches:
// a change of the CanaryRelease alone is drawn, and the watch ends only once
// the Deployment's summary agrees that the release ended.
func TestFollowWatchesTheCanaryRelease(t *testing.T) {
	now := time.Now().UTC()
	st := progressing(now)
	d := deployment("web", summary(st), nil, nil)
	cr := recorded(t, d, st, nil, nil)

	kube := kubefake.NewClientset(d)
	deployments := watch.NewFake()
	kube.PrependWatchReactor("deployments", clienttesting.DefaultWatchReactor(deployments, nil))
	c, dyn := fakeCluster(t)
	c.kube = kube
	releases := watch.NewFake()
	dyn.PrependWatchReactor(v1alpha1.CanaryReleaseResource, clienttesting.DefaultWatchReactor(releases, nil))
	dyn.PrependReactor("list", v1alpha1.CanaryReleaseResource, func(clienttesting.Action) (bool, runtime.Object, error) {
		u, err := release.ToUnstructured(cr)
		if err != nil {
			return true, nil, err
		}
		l := &unstructured.UnstructuredList{Items: []unstructured.Unstructured{*u}}
		l.SetResourceVersion(cr.ResourceVersion)
		return true, l, nil
	})

	out := &lockedWriter{}
	o := &statusOptions{common: &common{streams: genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: out, ErrOut: &bytes.Buffer{}}}, output: outputJSON, watch: true}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- o.follow(ctx, c, d) }()

	send := func(w *watch.FakeWatcher, obj runtime.Object) {
		t.Helper()
		sent := make(chan struct{})
		go func() { w.Modify(obj); close(sent) }()
		select {
		case <-sent:
		case err := <-done:
			t.Fatalf("status -w ended before %T was sent: %v\n%s", obj, err, out.String())
		case <-time.After(10 * time.Second):
			t.Fatalf("status -w does not read its watch\n%s", out.String())
		}
	}
	toU := func(cr *v1alpha1.CanaryRelease) *unstructured.Unstructured {
		u, err := release.ToUnstructured(cr)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}

	// Another passing analysis: recorded in the CanaryRelease only.
	next := st
	next.Passes = 4
	cr2 := recorded(t, d, next, nil, nil)
	cr2.ResourceVersion = "12"
	send(releases, toU(cr2))
	// The release is rolled back: recorded first, mirrored last.
	ended := next
	ended.Phase, ended.Weight, ended.Finished, ended.Message = stages.RolledBack, 0, now, "rolled back: error rate"
	cr3 := recorded(t, d, ended, nil, nil)
	cr3.ResourceVersion = "13"
	send(releases, toU(cr3))
	select {
	case err := <-done:
		t.Fatalf("status -w ended before the Deployment's summary said RolledBack: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	d2 := deployment("web", summary(ended), nil, nil)
	d2.ResourceVersion = "8"
	send(deployments, d2)

	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "was rolled back: rolled back: error rate") {
			t.Errorf("status -w ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("status -w did not end once the release ended\n%s", out.String())
	}
	dec := json.NewDecoder(strings.NewReader(out.String()))
	var frames []statusDoc
	for dec.More() {
		var f statusDoc
		if err := dec.Decode(&f); err != nil {
			t.Fatal(err)
		}
		frames = append(frames, f)
	}
	if len(frames) != 3 || frames[1].Verdicts.Passes != 4 || frames[2].Phase != "RolledBack" {
		t.Errorf("%d frames, want the start, the CanaryRelease's new analysis and the end:\n%s", len(frames), out.String())
	}
}
