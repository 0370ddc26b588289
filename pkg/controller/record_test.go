package controller

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/apis/meshcanary/v1alpha1"
	"github.com/meshcanary/meshcanary/pkg/stages"
)

func TestRecordOf(t *testing.T) {
	inFlight := `{"phase":"Progressing","revision":"v2","stage":1,"weight":10}`
	cr := func(state string) *v1alpha1.CanaryRelease {
		c := &v1alpha1.CanaryRelease{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app"}}
		if state != "" {
			c.Status.State = &apiextensionsv1.JSON{Raw: []byte(state)}
		}
		return c
	}
	dep := func(ann map[string]string) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "app", Annotations: ann}}
	}
	tests := map[string]struct {
		d        *appsv1.Deployment
		cr       *v1alpha1.CanaryRelease
		phase    stages.Phase
		stage    int
		lost     bool
		history  int
		revision string
	}{
		"the CanaryRelease's state is the state, whatever the annotations say": {
			d:  dep(map[string]string{annotations.State: `{"phase":"Succeeded","revision":"v1"}`, annotations.Phase: "Succeeded"}),
			cr: cr(inFlight), phase: stages.Progressing, stage: 1, revision: "v2",
		},
		"a state kept in annotations by an older version is adopted once, with its history": {
			d:  dep(map[string]string{annotations.State: inFlight, annotations.History: `[{"revision":"v1","result":"promoted"}]`}),
			cr: cr(""), phase: stages.Progressing, stage: 1, history: 1, revision: "v2",
		},
		"an unreadable recorded state is reported lost": {
			d: dep(nil), cr: cr(`{"phase":`), lost: true,
		},
		"a release in flight whose CanaryRelease is gone is reported lost": {
			d: dep(map[string]string{annotations.Phase: "Progressing", annotations.Revision: "v2"}), cr: cr(""), lost: true,
		},
		"a finished release whose CanaryRelease is gone is remembered from the summary, so it is not released again": {
			d: dep(map[string]string{annotations.Phase: "RolledBack", annotations.Revision: "v2"}), cr: cr(""), phase: stages.RolledBack, revision: "v2",
		},
		"a Deployment seen for the first time starts fresh": {
			d: dep(nil), cr: cr(""),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := recordOf(tc.d, tc.cr)
			if (r.lost != "") != tc.lost || r.state.Phase != tc.phase || r.state.Stage != tc.stage || len(r.history) != tc.history || r.state.Revision != tc.revision {
				t.Fatalf("got %+v, lost %q, history %d", r.state, r.lost, len(r.history))
			}
		})
	}
}

func TestStageEnded(t *testing.T) {
	start := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	running := stages.State{Phase: stages.Progressing, Revision: "v2", Stage: 1, StageStart: start}
	tests := []struct {
		name  string
		after func(stages.State) stages.State
		want  bool
	}{
		{"taking up the next stage ends the running one", func(s stages.State) stages.State { s.Stage++; return s }, true},
		{"beginning the promotion ends the last stage", func(s stages.State) stages.State { s.Phase = stages.Promoting; return s }, true},
		{"an analysis within the stage ends nothing", func(s stages.State) stages.State { return s }, false},
		{"a rollback ends the release, not a stage", func(s stages.State) stages.State { s.Phase = stages.RolledBack; return s }, false},
		{"a new revision starting over is no stage ending", func(s stages.State) stages.State { s.Revision, s.Stage = "v3", 2; return s }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := stageEnded(running, tt.after(running)); got != tt.want {
				t.Errorf("stageEnded = %v, want %v", got, tt.want)
			}
		})
	}
}
