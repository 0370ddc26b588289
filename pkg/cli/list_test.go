package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/stages"
	"github.com/meshcanary/meshcanary/pkg/status"
)

func TestListShowsOnlyOptedInDeploymentsInOrder(t *testing.T) {
	now := epoch()
	st := progressing(now)
	a := deployment("web", published(t, st, nil, releases(now, 2)), nil, nil)
	b := deployment("api", map[string]string{annotations.Enabled: "true", annotations.Phase: "Idle", annotations.Weight: "0", annotations.Stage: "0/4"}, nil, nil)
	other := deployment("db", nil, nil, nil)
	b.Namespace = "core"
	doc := buildList([]appsv1.Deployment{*a, *other, *b}, releaseSet{})
	if len(doc.Items) != 2 || doc.Items[0].Name != "api" || doc.Items[1].Name != "web" {
		t.Fatalf("items %+v", doc.Items)
	}
	tests := []struct {
		name          string
		withNamespace bool
		want          []string
	}{
		{"a namespaced list has no namespace column", false, []string{"NAME   PHASE", "web    Progressing   50%      2/3     promoted 50m ago", "api    Idle          0%       0/4     <none>"}},
		{"-A adds the namespace column", true, []string{"NAMESPACE   NAME", "core        api", "shop        web"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := renderList(&buf, doc, tt.withNamespace, now); err != nil {
				t.Fatal(err)
			}
			for _, s := range tt.want {
				if !strings.Contains(buf.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, buf.String())
				}
			}
			if tt.withNamespace == false && strings.Contains(buf.String(), "NAMESPACE") {
				t.Errorf("namespace column without -A:\n%s", buf.String())
			}
		})
	}
}

func TestHistoryTableShowsDurationsAndImages(t *testing.T) {
	now := epoch()
	h := releases(now, 1)
	h[0].Images = []string{"app=web:v2"}
	var b bytes.Buffer
	if err := renderHistory(&b, h, now, true); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"STARTED", "DURATION", "IMAGES", "60m ago", "10m0s", "app=web:v2", "promoted", "analysis", "all stages passed"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("output lacks %q:\n%s", s, b.String())
		}
	}
}

func TestCommandsWarnWhenTheControllerWillIgnoreThem(t *testing.T) {
	tests := []struct {
		name    string
		act     string
		phase   stages.Phase
		ann     map[string]string
		wantMsg string
	}{
		{"rollback in flight needs no warning", "rollback", stages.Progressing, nil, ""},
		{"rollback with nothing in flight is warned about", "rollback", stages.Succeeded, nil, "no release"},
		{"pause while promoting needs no warning", "pause", stages.Promoting, nil, ""},
		{"promote when idle is warned about", "promote", stages.Idle, nil, "ignores meshcanary.io/promote"},
		{"resume of a paused release needs no warning", "resume", stages.Paused, nil, ""},
		{"resume of a pending pause needs no warning", "resume", stages.Progressing, map[string]string{annotations.Pause: "true"}, ""},
		{"resume when not paused is warned about", "resume", stages.Progressing, nil, "is not paused"},
		{"approve is never warned about", "approve", stages.Idle, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := deployment("web", tt.ann, nil, nil)
			got, refused := precheck(action{name: tt.act, annotation: "meshcanary.io/" + tt.act}, status.View{Phase: string(tt.phase)}, d)
			if (tt.wantMsg == "") != (got == "") || !strings.Contains(got, tt.wantMsg) || refused {
				t.Errorf("precheck = %q, %v; want %q, not refused", got, refused, tt.wantMsg)
			}
		})
	}
}

func TestWaitConditions(t *testing.T) {
	finished := epoch()
	prior := status.View{State: stages.State{Finished: finished.Add(-time.Hour)}}
	dep := func(phase stages.Phase, fin time.Time, ann map[string]string) *appsv1.Deployment {
		a := map[string]string{annotations.Phase: string(phase)}
		st := stages.State{Phase: phase, Finished: fin}
		b, _ := jsonString(st)
		a[annotations.State] = b
		for k, v := range ann {
			a[k] = v
		}
		return deployment("web", a, nil, nil)
	}
	tests := []struct {
		name     string
		act      action
		d        *appsv1.Deployment
		wantDone bool
		wantErr  string
	}{
		{"promote waits while the command is pending", action{name: "promote", annotation: annotations.Promote}, dep(stages.Progressing, time.Time{}, map[string]string{annotations.Promote: "true"}), false, ""},
		{"promote waits while promoting", action{name: "promote", annotation: annotations.Promote}, dep(stages.Promoting, time.Time{}, nil), false, ""},
		{"promote is done once a new release succeeded", action{name: "promote", annotation: annotations.Promote}, dep(stages.Succeeded, finished, nil), true, ""},
		{"an older success is not the promotion asked for", action{name: "promote", annotation: annotations.Promote}, dep(stages.Succeeded, prior.State.Finished, nil), false, "did not act"},
		{"a rollback instead of the promotion fails", action{name: "promote", annotation: annotations.Promote}, dep(stages.RolledBack, finished, nil), false, "rolled back instead"},
		{"pause is done when paused", action{name: "pause", annotation: annotations.Pause}, dep(stages.Paused, time.Time{}, map[string]string{annotations.Pause: "true"}), true, ""},
		{"a pause consumed with nothing in flight fails", action{name: "pause", annotation: annotations.Pause}, dep(stages.Idle, time.Time{}, nil), false, "did not act"},
		{"resume waits while still paused", action{name: "resume", annotation: annotations.Pause}, dep(stages.Paused, time.Time{}, nil), false, ""},
		{"resume is done when progressing", action{name: "resume", annotation: annotations.Pause}, dep(stages.Progressing, time.Time{}, nil), true, ""},
		{"rollback waits while the command is pending", action{name: "rollback", annotation: annotations.Rollback}, dep(stages.Progressing, time.Time{}, map[string]string{annotations.Rollback: "x"}), false, ""},
		{"a rollback consumed without rolling back fails", action{name: "rollback", annotation: annotations.Rollback}, dep(stages.Succeeded, prior.State.Finished, nil), false, "did not act"},
		{"an earlier release's rollback is not the one asked for", action{name: "rollback", annotation: annotations.Rollback}, dep(stages.RolledBack, prior.State.Finished, nil), false, "did not act"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &actionOptions{act: tt.act}
			done, seen, err := o.result(context.Background(), nil, prior, rollout{d: tt.d})
			if done != tt.wantDone || (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("result = %v, %q, %v; want %v, error %q", done, seen, err, tt.wantDone, tt.wantErr)
			}
		})
	}
}

func TestApproverDefaults(t *testing.T) {
	if got := approver("alice, CHG-1", &cluster{user: "admin"}); got != "alice, CHG-1" {
		t.Errorf("--by given: %q", got)
	}
	if got := approver("", &cluster{user: "admin"}); got != "admin" {
		t.Errorf("kubeconfig user: %q", got)
	}
	if got := approver(" ", &cluster{}); got == "" {
		t.Error("no approver at all")
	}
}

func TestCommandsToAQueuedRelease(t *testing.T) {
	queued := status.View{Phase: string(stages.Succeeded), State: stages.State{Phase: stages.Succeeded, QueuedAt: epoch()}}
	tests := []struct {
		name    string
		act     string
		wantMsg string
	}{
		{"a rollback needs no warning: it cancels the queued release", "rollback", ""},
		{"a promote is warned about: nothing is in flight to promote", "promote", "no release"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, refused := precheck(action{name: tt.act, annotation: "meshcanary.io/" + tt.act}, queued, deployment("web", nil, nil, nil))
			if (tt.wantMsg == "") != (got == "") || !strings.Contains(got, tt.wantMsg) || refused {
				t.Errorf("precheck = %q, %v; want %q, not refused", got, refused, tt.wantMsg)
			}
		})
	}
}
