package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/apis/meshcanary/v1alpha1"
	"github.com/meshcanary/meshcanary/pkg/release"
	"github.com/meshcanary/meshcanary/pkg/stages"
	"github.com/meshcanary/meshcanary/pkg/status"
)

// saved is what a CanaryRelease (or, once, a Deployment written by an
// annotation-state version) says about a rollout.
type saved struct {
	state stages.State
	// lost says why the state could not be trusted, for the core.
	lost    string
	history []status.Release
}

func (c *Controller) getRelease(ns, name string) (*v1alpha1.CanaryRelease, error) {
	obj, exists, err := c.crs.GetByKey(ns + "/" + name)
	if err != nil || !exists {
		return nil, err
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("cache holds %T for canaryrelease %s/%s", obj, ns, name)
	}
	return release.FromUnstructured(u)
}

// releaseOf returns d's CanaryRelease, creating it on first sight. The
// resource has nothing a user sets, so creating it is always safe.
func (c *Controller) releaseOf(ctx context.Context, d *appsv1.Deployment) (*v1alpha1.CanaryRelease, error) {
	cr, err := c.getRelease(d.Namespace, d.Name)
	if err != nil || cr != nil {
		return cr, err
	}
	cr, err = release.Create(ctx, c.cfg.Dynamic, release.NewForDeployment(d))
	if apierrors.IsAlreadyExists(err) {
		cr, err = release.Get(ctx, c.cfg.Dynamic, d.Namespace, d.Name)
	}
	if err != nil {
		c.cfg.Metrics.APIErrors.WithLabelValues("canaryrelease").Inc()
		return nil, err
	}
	c.remember(cr)
	return cr, nil
}

func (c *Controller) remember(cr *v1alpha1.CanaryRelease) {
	if u, err := release.ToUnstructured(cr); err == nil {
		c.crs.Mutation(u)
	}
}

// recordOf reads the state to resume from. The CanaryRelease is the only
// source once it holds a state: nothing on the Deployment, which people's
// tools rewrite (kubectl rollout undo restores a ReplicaSet's annotations
// wholesale), is ever read back as state again.
func recordOf(d *appsv1.Deployment, cr *v1alpha1.CanaryRelease) saved {
	var r saved
	if cr.Status.State != nil {
		if err := release.DecodeJSON(cr.Status.State, &r.state); err != nil {
			return saved{lost: fmt.Sprintf("status.state of CanaryRelease %s/%s is unreadable: %v", cr.Namespace, cr.Name, err)}
		}
		_ = convert(cr.Status.History, &r.history)
		return r
	}
	a := d.Annotations
	if raw := a[annotations.State]; raw != "" {
		// Adopted once from a version that kept state in annotations, so
		// releases in flight during an upgrade go on.
		if err := json.Unmarshal([]byte(raw), &r.state); err != nil {
			r.lost = fmt.Sprintf("annotation %s is not valid JSON: %v", annotations.State, err)
		}
		_ = json.Unmarshal([]byte(a[annotations.History]), &r.history)
		return r
	}
	return fromMirror(a)
}

// fromMirror seeds a state when the CanaryRelease lost it (deleted, status
// emptied) from the summary last mirrored on the Deployment. A finished
// release is remembered, so a rejected revision is not released again; a
// release that was in flight is reported lost and starts over.
func fromMirror(a map[string]string) saved {
	switch p := stages.Phase(a[annotations.Phase]); p {
	case "", stages.Idle:
		return saved{}
	case stages.Succeeded, stages.RolledBack:
		return saved{state: stages.State{Phase: p, Revision: a[annotations.Revision]}}
	default:
		return saved{lost: fmt.Sprintf("the CanaryRelease holding the state of a release in phase %s is gone", p)}
	}
}

// convert moves values between types that share their JSON form.
func convert(from, to any) error {
	b, err := json.Marshal(from)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, to)
}

// recordRelease writes the decision to the CanaryRelease's status before
// anything it decided happens. The write is conditional on the version the
// decision was made from, and skipped when nothing changed.
func (c *Controller) recordRelease(ctx context.Context, t *target, rec saved, dec stages.Decision, ended bool, analysis *status.Analysis) error {
	next, err := c.nextStatus(t, rec, dec, ended, analysis)
	if err != nil {
		return err
	}
	if sameStatus(t.cr.Status, next) {
		return nil
	}
	cr := t.cr.DeepCopy()
	cr.Status = next
	out, err := release.UpdateStatus(ctx, c.cfg.Dynamic, cr)
	if err != nil {
		if !apierrors.IsConflict(err) {
			c.cfg.Metrics.APIErrors.WithLabelValues("state").Inc()
		}
		return err
	}
	c.remember(out)
	t.cr = out
	return nil
}

func (c *Controller) nextStatus(t *target, rec saved, dec stages.Decision, ended bool, analysis *status.Analysis) (v1alpha1.CanaryReleaseStatus, error) {
	s, plan := dec.State, t.plan
	next := *t.cr.Status.DeepCopy()
	var err error
	if next.State, err = release.EncodeJSON(s); err != nil {
		return next, err
	}
	if len(s.Steps) > 0 {
		if next.Plan, err = release.EncodeJSON(map[string]any{"steps": s.Steps}); err != nil {
			return next, err
		}
	}
	if analysis != nil {
		if next.LastAnalysis, err = release.EncodeJSON(analysis); err != nil {
			return next, err
		}
	}
	if s.Phase == stages.Promoting && rec.state.Phase != stages.Promoting {
		// Recorded before stable is changed, so a rollback during the
		// promotion can put stable back.
		if next.PreviousStable, err = release.EncodeJSON(t.stable.Spec.Template); err != nil {
			return next, err
		}
	}
	next.ObservedGeneration = t.cr.Generation
	next.Phase, next.Revision = string(s.Phase), s.Revision
	next.Stage, next.Stages = int32(max(s.Stage, 0)), int32(len(plan.Steps))
	next.StageLabel = stages.StageLabel(s, plan)
	next.Weight = int32(s.Weight)
	next.Message = release.TruncateMessage(s.Message)
	history := c.history(t, rec.history, dec, ended)
	if err := convert(history, &next.History); err != nil {
		return next, fmt.Errorf("encoding history: %w", err)
	}
	setConditions(&next, s, dec, t.cr.Generation)
	return next, nil
}

// history appends the release that ended, and a person's change of stable
// between releases, to what was recorded.
func (c *Controller) history(t *target, h []status.Release, dec stages.Decision, ended bool) []status.Release {
	s := dec.State
	h = slices.Clone(h)
	if ended {
		rel := status.Release{
			Revision: s.Revision, Started: s.Started, Finished: s.Finished,
			StagesReached: stages.StageLabel(s, t.plan), Result: string(s.Result),
			Reason: s.Message, DecidedBy: s.DecidedBy,
		}
		if t.canary != nil {
			rel.Images = status.Images(t.canary)
		}
		h = status.AppendHistory(h, rel, c.cfg.HistoryLimit)
	}
	if dec.Reverted != "" {
		now := c.cfg.Clock.Now()
		h = status.AppendHistory(h, status.Release{
			Revision: dec.Reverted, Started: now, Finished: now, Result: string(stages.ResultReverted),
			Reason: "stable's template changed outside meshcanary (kubectl rollout undo, edit, apply or set image)", DecidedBy: stages.DecidedByStableChanged,
			Images: status.Images(t.stable),
		}, c.cfg.HistoryLimit)
	}
	return h
}

// sameStatus compares two statuses with their JSON fields in canonical
// form: the API server returns them with its own key order.
func sameStatus(a, b v1alpha1.CanaryReleaseStatus) bool {
	for _, p := range []struct{ x, y **apiextensionsv1.JSON }{{&a.State, &b.State}, {&a.Plan, &b.Plan}, {&a.LastAnalysis, &b.LastAnalysis}} {
		if canonical(*p.x) != canonical(*p.y) {
			return false
		}
		*p.x, *p.y = nil, nil
	}
	return equality.Semantic.DeepEqual(a, b)
}

func canonical(j *apiextensionsv1.JSON) string {
	if j == nil {
		return ""
	}
	var v any
	if err := json.Unmarshal(j.Raw, &v); err != nil {
		return string(j.Raw)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return string(j.Raw)
	}
	return string(b)
}

// setConditions keeps Ready, Progressing and Stalled in step with the
// phase. A condition's reason is the Event reason that changed it, so a
// person can find the Event that explains it.
func setConditions(st *v1alpha1.CanaryReleaseStatus, s stages.State, dec stages.Decision, gen int64) {
	reason := string(s.Phase)
	if n := len(dec.Events); n > 0 {
		reason = dec.Events[n-1].Reason
	}
	msg := release.TruncateMessage(s.Message)
	set := func(typ string, on bool) {
		cond := metav1.Condition{Type: typ, Status: metav1.ConditionFalse, Reason: reason, Message: msg, ObservedGeneration: gen}
		if on {
			cond.Status = metav1.ConditionTrue
		}
		if old := findCondition(st.Conditions, typ); old != nil && old.Status == cond.Status && len(dec.Events) == 0 {
			cond.Reason = old.Reason // nothing new happened: keep the reason that explains it
		}
		release.SetCondition(&st.Conditions, cond)
	}
	stalled := s.Phase == stages.Invalid || s.StuckReported
	set(v1alpha1.ConditionReady, !s.Phase.Active() && !stalled)
	set(v1alpha1.ConditionProgressing, s.Phase.Active())
	set(v1alpha1.ConditionStalled, stalled)
}

func findCondition(conds []metav1.Condition, typ string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

// restoreStable puts back stable's pod template as recorded before the
// promotion that a rollback stopped. The write is conditional on the
// version read; a conflict is retried by the next reconcile, which asks
// for the restore again until stable is seen back.
func (c *Controller) restoreStable(ctx context.Context, t *target) error {
	if t.cr.Status.PreviousStable == nil {
		msg := "rolled back during promotion, but stable's previous template was not recorded (a release adopted from an older version): put it back with kubectl rollout undo"
		c.cfg.Recorder.Event(t.stable, corev1.EventTypeWarning, stages.ReasonRolledBack, msg)
		return nil
	}
	var tmpl corev1.PodTemplateSpec
	if err := release.DecodeJSON(t.cr.Status.PreviousStable, &tmpl); err != nil {
		return fmt.Errorf("reading stable's recorded template: %w", err)
	}
	out, err := c.writeTemplate(ctx, t.stable, tmpl)
	if err != nil {
		return fmt.Errorf("putting back stable %s/%s's template: %w", t.stable.Namespace, t.stable.Name, err)
	}
	t.stable = out
	return nil
}
