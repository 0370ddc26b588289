package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/rs/zerolog"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/gates"
	"github.com/meshcanary/meshcanary/pkg/metrics"
	"github.com/meshcanary/meshcanary/pkg/notify"
	"github.com/meshcanary/meshcanary/pkg/policy"
	"github.com/meshcanary/meshcanary/pkg/release"
	"github.com/meshcanary/meshcanary/pkg/stages"
	"github.com/meshcanary/meshcanary/pkg/status"
	"github.com/meshcanary/meshcanary/pkg/virtualservice"
)

func (c *Controller) getDeployment(ns, name string) (*appsv1.Deployment, error) {
	obj, exists, err := c.deploys.GetByKey(ns + "/" + name)
	if err != nil {
		return nil, fmt.Errorf("reading deployment %s/%s from cache: %w", ns, name, err)
	}
	if !exists {
		return nil, nil
	}
	d, ok := obj.(*appsv1.Deployment)
	if !ok {
		return nil, fmt.Errorf("cache holds %T for deployment %s/%s", obj, ns, name)
	}
	return d, nil
}

func (c *Controller) getVirtualService(ns, name string) (*unstructured.Unstructured, error) {
	obj, exists, err := c.vss.GetByKey(ns + "/" + name)
	if err != nil {
		return nil, fmt.Errorf("reading virtualservice %s/%s from cache: %w", ns, name, err)
	}
	if !exists {
		return nil, nil
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("cache holds %T for virtualservice %s/%s", obj, ns, name)
	}
	return u, nil
}

// reconcile is gather → decide → act for one stable Deployment. It returns
// when to be woken again (0: only by watch events).
func (c *Controller) reconcile(ctx context.Context, key string) (time.Duration, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	d, err := c.getDeployment(ns, name)
	if err != nil {
		return 0, err
	}
	if d == nil || !c.managed(d) {
		c.cfg.Metrics.forget(ns, name)
		c.forgetRelease(key)
		if c.pool != nil {
			c.pool.forget(key)
		}
		return 0, nil
	}
	log := c.cfg.Log.With().Str("namespace", ns).Str("deployment", name).Logger()
	now := c.cfg.Clock.Now()
	cr, err := c.releaseOf(ctx, d)
	if err != nil {
		return 0, err
	}
	rec := recordOf(d, cr)
	if rec.lost != "" {
		log.Warn().Str("reason", stages.ReasonStateLost).Msg(rec.lost)
	}
	t, obs, published, err := c.gather(ctx, d, rec, now, log)
	if err != nil {
		return 0, err
	}
	t.cr = cr
	st := rec.state
	dec := c.decide(key, obs, st, now)
	// Labels, notifications and gates speak of the plan the release runs.
	t.plan = stages.EffectivePlan(dec.State, t.plan)
	obs.Plan = t.plan
	if err := c.act(ctx, t, rec, obs, dec, published, log); err != nil {
		return 0, err
	}
	for _, run := range dec.RunGates {
		c.ensureGate(t, dec.State, run)
	}
	return dec.RequeueAfter, nil
}

// recorded runs what follows from a decision once it is on record, even if
// a later write of the same reconcile fails: the retry decides from the
// record and will not see the release end again.
func (c *Controller) recorded(t *target, before stages.State, dec stages.Decision, analysis *status.Analysis, log zerolog.Logger) {
	c.emit(t, dec, analysis, log)
	if releaseEnded(before, dec.State) && c.cfg.Gates != nil {
		c.cfg.Gates.Forget(t.stable.Namespace + "/" + t.stable.Name + "/")
	}
	c.publish(t, before, dec.State)
}

// managed reports whether d is meshcanary's to reconcile: opted in, or
// with a release still in flight. An undo can restore a ReplicaSet's
// annotations from before the opt-in; the release it interrupts must still
// be ended, not left with its canary share unwatched.
func (c *Controller) managed(d *appsv1.Deployment) bool {
	if optedIn(d.Annotations) {
		return true
	}
	cr, err := c.getRelease(d.Namespace, d.Name)
	if err != nil || cr == nil || cr.Status.State == nil {
		return false
	}
	var st stages.State
	return release.DecodeJSON(cr.Status.State, &st) == nil && stages.InFlight(st)
}

// gather reads everything the decision needs: the configuration and its
// objects, the commands, gate results and, when one is due, an analysis.
func (c *Controller) gather(ctx context.Context, d *appsv1.Deployment, rec saved, now time.Time, log zerolog.Logger) (*target, stages.Observation, *status.Analysis, error) {
	st := rec.state
	t, err := c.resolve(d)
	obs := stages.Observation{Plan: t.plan, Weight: t.weight, RouteResolved: t.routeOK, StateLost: rec.lost}
	var badCommands string
	obs.Commands, t.dropCommands, badCommands = commandsOf(d)
	if badCommands != "" {
		log.Warn().Str("reason", stages.ReasonCommandIgnored).Msg(badCommands)
		c.cfg.Recorder.Event(d, corev1.EventTypeWarning, stages.ReasonCommandIgnored, badCommands)
	}
	if msg, ok := isInvalid(err); ok {
		obs.Invalid = msg
		log.Warn().Str("reason", stages.ReasonInvalidConfiguration).Msg(msg)
		if !t.routeOK {
			c.resolveRoute(d, t)
			obs.Weight, obs.RouteResolved = t.weight, t.routeOK
		}
	} else if err != nil {
		return nil, obs, nil, err
	}
	if obs.Invalid != "" {
		return t, obs, nil, nil
	}
	obs.Stable = workload(t.stable, t.stableRev)
	obs.Canary = workload(t.canary, t.canaryRev)
	obs.Gates = c.gateResults(t, st)
	due, window := stages.AnalysisDue(st, stages.EffectivePlan(st, t.plan), now)
	if !due || obs.Commands.Rollback != "" {
		// A rollback never waits for Prometheus: it is acted on from its
		// watch event, however slow the queries are.
		return t, obs, nil, nil
	}
	// The window's start comes from the record, not from now − window:
	// now carries a monotonic clock reading, and from one reconcile to the
	// next that start would differ by the drift between the two clocks,
	// so a finished analysis would never match the job that takes it.
	from := stages.EvidenceFrom(st)
	out, ok := c.analysisFor(ctx, analysisJob{key: d.Namespace + "/" + d.Name, from: from, at: from.Add(window), t: t, st: st})
	if !ok {
		return t, obs, nil, nil // asked for; its result wakes this rollout
	}
	if out.invalid != "" {
		obs.Invalid = out.invalid
	} else {
		obs.Analysis = &out.analysis
		obs.Rules = c.ruleHits(t, out.res)
	}
	if out.res == nil {
		return t, obs, nil, nil
	}
	detail := status.FromResult(*out.res, out.at)
	return t, obs, &detail, nil
}

// analysisFor returns the analysis of job's window if it is done, and asks
// the pool for it otherwise. Without a pool (a controller that was never
// Run, as in unit tests) it analyses inline.
func (c *Controller) analysisFor(ctx context.Context, job analysisJob) (analysisOutcome, bool) {
	if c.pool == nil {
		return c.runAnalyses(ctx, []analysisJob{job})[0], true
	}
	// A result is taken only for the same evidence and only when it
	// looked past the last verdict already counted.
	if out, ok := c.pool.take(job.key, job.from, job.st.LastAnalysis); ok {
		return out, true
	}
	c.pool.ask(job)
	return analysisOutcome{}, false
}

// runAnalyses is the pool's work: one verdict from Prometheus over each
// job's window, which its outcome carries. The jobs' queries are sent
// together when the analyzer can batch them.
func (c *Controller) runAnalyses(ctx context.Context, jobs []analysisJob) []analysisOutcome {
	reqs := make([]metrics.Request, len(jobs))
	for i, job := range jobs {
		reqs[i] = c.analysisRequest(job.t, job.st, job.at.Sub(job.from), job.at)
	}
	c.cfg.Metrics.AnalysisBatch.Observe(float64(len(jobs)))
	answers := c.analyzeAll(ctx, reqs)
	out := make([]analysisOutcome, len(jobs))
	for i, job := range jobs {
		a, res, invalid := c.judged(job.t, job.st, reqs[i], answers[i])
		a.At = job.at
		out[i] = analysisOutcome{from: job.from, at: job.at, analysis: a, res: res, invalid: invalid}
	}
	return out
}

// analyzeAll answers reqs in one batch when the analyzer batches, one by
// one otherwise.
func (c *Controller) analyzeAll(ctx context.Context, reqs []metrics.Request) []metrics.Answer {
	if b, ok := c.cfg.Analyzer.(BatchAnalyzer); ok {
		return b.AnalyzeAll(ctx, reqs)
	}
	out := make([]metrics.Answer, len(reqs))
	for i, req := range reqs {
		out[i].Result, out[i].Err = c.cfg.Analyzer.Analyze(ctx, req)
	}
	return out
}

// analysisRequest asks for one verdict over the stage's evidence so far
// (window, ending now): the checks' confidence sequences stay sound
// however often they look, so each verdict judges all of it, and a quiet
// 1% canary accumulates evidence instead of staying inconclusive. Custom
// metrics keep their per-interval window.
func (c *Controller) analysisRequest(t *target, st stages.State, window time.Duration, now time.Time) metrics.Request {
	return metrics.Request{
		Namespace:    t.stable.Namespace,
		Stable:       t.stable.Name,
		Canary:       t.canary.Name,
		Window:       window,
		CustomWindow: customWindow(t.policy, st, now),
		CanaryWeight: st.Weight,
		At:           now,
		Checks:       t.policy.ChecksFor(st.Stage),
		Metrics:      t.policy.Metrics,
		MinRequests:  t.policy.MinRequests,
		Observe:      ruleMetrics(t.policy),
	}
}

// judged turns Prometheus's answer to req into the core's analysis. A
// broken custom query is the user's to fix: it comes back as an
// invalid-configuration message, not as an outage.
func (c *Controller) judged(t *target, st stages.State, req metrics.Request, ans metrics.Answer) (stages.Analysis, *metrics.Result, string) {
	if err := ans.Err; err != nil {
		if metrics.IsUserError(err) {
			c.cfg.Metrics.AnalysisErrors.WithLabelValues("user").Inc()
			return stages.Analysis{}, nil, fmt.Sprintf("policy %q: %v", t.policy.Name, err)
		}
		c.cfg.Metrics.AnalysisErrors.WithLabelValues("outage").Inc()
		return stages.Analysis{Verdict: stages.Outage, Message: err.Error()}, nil, ""
	}
	res := ans.Result
	c.publishAnalysis(t, req, res)
	// The forecast needs a rate worth projecting: two intervals of the
	// stage, not the first seconds Prometheus may not have scraped yet.
	steps := stages.EffectivePlan(st, t.plan).Steps
	if st.Stage >= 0 && st.Stage < len(steps) && req.Window >= 2*t.plan.Interval {
		res.Forecast = metrics.Forecast(res, steps[st.Stage:], req.Checks, req.MinRequests)
		for i := range res.Forecast {
			res.Forecast[i].Stage += st.Stage
		}
	}
	a := res.Analysis(req.At)
	a.Forecast = metrics.ShortStages(res.Forecast, req.MinRequests)
	return a, &res, ""
}

// customWindow is the window custom metrics are queried over: since the
// last look, or the policy's lookback when longer, never reaching before
// the stage began.
func customWindow(p policy.Policy, st stages.State, now time.Time) time.Duration {
	last := st.StageStart
	if st.LastAnalysis.After(last) {
		last = st.LastAnalysis
	}
	window := now.Sub(last)
	if lb := p.Lookback.Duration; lb > window {
		window = min(lb, now.Sub(st.StageStart))
	}
	return window
}

// publishAnalysis exports one analysis as the controller's metrics.
func (c *Controller) publishAnalysis(t *target, req metrics.Request, res metrics.Result) {
	ns, name := t.stable.Namespace, t.stable.Name
	c.cfg.Metrics.Verdicts.WithLabelValues(ns, name, string(res.Verdict)).Inc()
	for _, cr := range res.Checks {
		c.cfg.Metrics.AnalysisValue.WithLabelValues(ns, name, cr.Metric, "canary").Set(cr.Canary)
		c.cfg.Metrics.AnalysisValue.WithLabelValues(ns, name, cr.Metric, "stable").Set(cr.Stable)
	}
	c.cfg.Metrics.AnalysisThreshold.DeleteRollout(ns, name)
	for _, th := range metrics.Thresholds(req.Checks) {
		c.cfg.Metrics.AnalysisThreshold.WithLabelValues(ns, name, th.Metric, th.Bound).Set(th.Value)
	}
}

// act performs the decision. The decision is recorded first, in the
// CanaryRelease, so every effect below is intent already on record: a write
// that fails, or a process that dies before it, is finished by the next
// reconcile towards the same outcome (a rollback never turns back into
// canary traffic). Events follow the record, then weight, scale and
// promotion in that order; the Deployment's summary and the removal of
// consumed commands come last.
func (c *Controller) act(ctx context.Context, t *target, rec saved, obs stages.Observation, dec stages.Decision, analysis *status.Analysis, log zerolog.Logger) error {
	if err := c.recordRelease(ctx, t, rec, dec, releaseEnded(rec.state, dec.State), analysis); err != nil {
		return err
	}
	c.recorded(t, rec.state, dec, analysis, log)
	if dec.SetWeight != nil {
		if err := c.writeWeight(ctx, t, *dec.SetWeight); err != nil {
			c.cfg.Metrics.APIErrors.WithLabelValues("virtualservice").Inc()
			return err
		}
		log.Info().Int("canaryWeight", *dec.SetWeight).Msg("weights written")
	}
	if dec.ScaleCanary != nil {
		if err := c.scaleCanary(ctx, t.canary, *dec.ScaleCanary); err != nil {
			c.cfg.Metrics.APIErrors.WithLabelValues("scale").Inc()
			return err
		}
		log.Info().Int32("replicas", *dec.ScaleCanary).Str("canary", t.canary.Name).Msg("canary scaled")
	}
	if dec.Promote {
		if err := c.promote(ctx, t); err != nil {
			c.cfg.Metrics.APIErrors.WithLabelValues("promote").Inc()
			return err
		}
		log.Info().Str("revision", dec.State.Revision).Msg("stable updated to the canary's template")
	}
	if dec.RestoreStable {
		if err := c.restoreStable(ctx, t); err != nil {
			c.cfg.Metrics.APIErrors.WithLabelValues("restore").Inc()
			return err
		}
		log.Info().Str("revision", dec.State.StableRevision).Msg("stable's template put back after a rollback during promotion")
	}
	if err := c.mirror(ctx, t, obs, dec); err != nil {
		// A conflict is the optimistic lock doing its job (a command came
		// in between); the retry decides again, so it is not an API error
		// worth alerting on.
		if !apierrors.IsConflict(err) {
			c.cfg.Metrics.APIErrors.WithLabelValues("mirror").Inc()
		}
		return err
	}
	return nil
}

// emit records the decision's Events and hands them to the notifier.
func (c *Controller) emit(t *target, dec stages.Decision, analysis *status.Analysis, log zerolog.Logger) {
	for _, e := range dec.Events {
		typ := corev1.EventTypeNormal
		ev := log.Info()
		if e.Warning {
			typ = corev1.EventTypeWarning
			ev = log.Warn()
		}
		c.cfg.Recorder.Event(t.stable, typ, e.Reason, e.Message)
		c.cfg.Metrics.EventsEmitted.Inc()
		ev.Str("reason", e.Reason).Msg(e.Message)
		c.notify(t, dec, analysis, e)
	}
}

// notify hands an event to the notifier, routed by the policy's notify
// list plus the channels a rule names. It never blocks.
func (c *Controller) notify(t *target, dec stages.Decision, analysis *status.Analysis, e stages.Event) {
	if c.cfg.Notifier == nil {
		return
	}
	kind, ok := notify.KindForReason(e.Reason)
	if !ok {
		return
	}
	m := notify.Message{
		Kind: kind, Namespace: t.stable.Namespace, Deployment: t.stable.Name,
		Revision: dec.State.Revision, Stage: stages.StageLabel(dec.State, t.plan),
		CanaryWeight: dec.State.Weight, Reason: e.Reason, Text: e.Message,
		DecidedBy: dec.State.DecidedBy, Page: e.Page, Resolve: e.Resolve, At: c.cfg.Clock.Now(),
	}
	if t.canary != nil {
		m.Images = status.Images(t.canary)
	}
	if analysis != nil {
		m.Checks = notify.ChecksFromStatus(analysis.Checks)
	}
	routes := t.policy.Notify
	for _, ch := range e.Notify {
		routes = append(routes, policy.NotifyRoute{On: []string{string(kind)}, To: ch})
	}
	c.cfg.Notifier.Notify(routes, m)
}

// writeWeight patches only the two managed weights. The patch's test
// operations make the server refuse it if the route moved underneath; then
// the VirtualService is read fresh and the edit recomputed.
func (c *Controller) writeWeight(ctx context.Context, t *target, w int) error {
	vsc := c.cfg.Dynamic.Resource(VirtualServiceGVR()).Namespace(t.vs.GetNamespace())
	obj := t.vs
	var lastErr error
	for attempt := 0; attempt < 4; attempt++ {
		edit, err := virtualservice.SetCanaryWeight(obj.Object, t.vsTgt, w)
		if err != nil {
			return fmt.Errorf("editing VirtualService %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
		}
		if !edit.Changed {
			return nil
		}
		patch, err := edit.PatchJSON()
		if err != nil {
			return fmt.Errorf("encoding VirtualService patch: %w", err)
		}
		out, err := vsc.Patch(ctx, obj.GetName(), types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: "meshcanary"})
		if err == nil {
			c.vss.Mutation(out)
			return nil
		}
		lastErr = err
		if !apierrors.IsInvalid(err) && !apierrors.IsConflict(err) && !apierrors.IsBadRequest(err) {
			return fmt.Errorf("patching VirtualService %s/%s: %w", obj.GetNamespace(), obj.GetName(), err)
		}
		fresh, gerr := vsc.Get(ctx, obj.GetName(), metav1.GetOptions{})
		if gerr != nil {
			return fmt.Errorf("re-reading VirtualService %s/%s after a rejected patch: %w", obj.GetNamespace(), obj.GetName(), gerr)
		}
		obj = fresh
	}
	return fmt.Errorf("patching VirtualService %s/%s: still rejected after re-reading: %w", obj.GetNamespace(), obj.GetName(), lastErr)
}

func (c *Controller) scaleCanary(ctx context.Context, d *appsv1.Deployment, n int32) error {
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, n)
	out, err := c.cfg.Kube.AppsV1().Deployments(d.Namespace).Patch(ctx, d.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "meshcanary"})
	if err != nil {
		return fmt.Errorf("scaling canary %s/%s to %d: %w", d.Namespace, d.Name, n, err)
	}
	c.deploys.Mutation(out)
	return nil
}

// promote copies the canary's pod template into stable, keeping the labels
// that put stable's pods in the stable subset and that its selector needs.
func (c *Controller) promote(ctx context.Context, t *target) error {
	stable := t.stable.DeepCopy()
	tmpl := t.canary.Spec.Template.DeepCopy()
	if tmpl.Labels == nil {
		tmpl.Labels = map[string]string{}
	}
	for _, k := range t.subsetKeys {
		delete(tmpl.Labels, k)
	}
	for k, v := range t.stableLabels {
		tmpl.Labels[k] = v
	}
	if sel := stable.Spec.Selector; sel != nil {
		for k, v := range sel.MatchLabels {
			tmpl.Labels[k] = v
		}
	}
	out, err := c.writeTemplate(ctx, stable, *tmpl)
	if err != nil {
		return fmt.Errorf("updating stable %s/%s to the canary's template: %w", stable.Namespace, stable.Name, err)
	}
	t.stable = out
	return nil
}

// mirror writes the summary people read with kubectl get -o jsonpath
// (phase, weight, stage, revision, message) on the stable Deployment, when
// it changed for more than a verdict's counts, and
// removes the commands the decision consumed, in one merge patch. The
// summary is only ever written, never read back as state, so rewriting it
// after a person's tool rewound it (an undo) is all it takes. When a
// command is removed the patch carries the resourceVersion the decision
// was made on: a command written since then makes the patch conflict and
// the key is retried, so no command is lost.
func (c *Controller) mirror(ctx context.Context, t *target, obs stages.Observation, dec stages.Decision) error {
	d := t.stable
	want := map[string]*string{}
	set := func(k, v string) {
		if d.Annotations[k] != v {
			want[k] = &v
		}
	}
	set(annotations.Phase, string(dec.State.Phase))
	set(annotations.Weight, strconv.Itoa(dec.State.Weight))
	set(annotations.Stage, stages.StageLabel(dec.State, obs.Plan))
	set(annotations.Revision, dec.State.Revision)
	// The message changes with every verdict's counts: rewriting the
	// Deployment for that alone would cost a write per rollout per
	// interval. It follows the rest of the summary, and whatever the
	// decision had to say in an Event; the CanaryRelease's status has
	// every verdict.
	if len(want) > 0 || len(dec.Events) > 0 || d.Annotations[annotations.Message] == "" {
		set(annotations.Message, dec.State.Message) // bounded by the core
	}
	// State that older versions kept here now lives in the CanaryRelease;
	// left here it would be copied onto ReplicaSets and restored by undo.
	for _, k := range []string{annotations.State, annotations.Analysis, annotations.History} {
		if _, ok := d.Annotations[k]; ok {
			want[k] = nil
		}
	}
	anyConsumed := c.dropConsumed(t, dec, want)
	if len(want) == 0 {
		return nil
	}
	meta := map[string]any{"annotations": want}
	if anyConsumed {
		meta["resourceVersion"] = d.ResourceVersion
	}
	patch, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return fmt.Errorf("encoding the summary patch: %w", err)
	}
	out, err := c.cfg.Kube.AppsV1().Deployments(d.Namespace).Patch(ctx, d.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "meshcanary"})
	if err != nil {
		return fmt.Errorf("writing the rollout summary on %s/%s: %w", d.Namespace, d.Name, err)
	}
	c.deploys.Mutation(out)
	t.stable = out
	return nil
}

// dropConsumed adds the removal of consumed and malformed commands (and a
// rule's pause) to want, and reports whether the patch must be guarded.
func (c *Controller) dropConsumed(t *target, dec stages.Decision, want map[string]*string) bool {
	d := t.stable
	consumed := map[string]bool{
		annotations.Rollback: dec.Consumed.Rollback,
		annotations.Promote:  dec.Consumed.Promote,
		annotations.Pause:    dec.Consumed.Pause,
		annotations.Approve:  dec.Consumed.Approve,
		annotations.Retry:    dec.Consumed.Retry,
	}
	for _, k := range t.dropCommands {
		consumed[k] = true
	}
	anyConsumed := false
	for k, yes := range consumed {
		if _, present := d.Annotations[k]; yes && present {
			want[k] = nil
			anyConsumed = true
		}
	}
	if dec.SetPause && d.Annotations[annotations.Pause] != "true" {
		// A rule paused the rollout; a person resumes it by removing the
		// annotation, exactly as after their own pause.
		v := "true"
		want[annotations.Pause] = &v
		anyConsumed = true
	}
	return anyConsumed
}

// publish updates the controller's own metrics after a decision.
func (c *Controller) publish(t *target, before, after stages.State) {
	ns, name := t.stable.Namespace, t.stable.Name
	c.cfg.Metrics.setPhase(ns, name, after.Phase)
	c.cfg.Metrics.Weight.WithLabelValues(ns, name).Set(float64(after.Weight))
	if n := len(t.plan.Steps); n > 0 {
		c.cfg.Metrics.StageInfo.DeleteRollout(ns, name)
		stage := 0
		if after.Phase != stages.Idle {
			stage = min(after.Stage+1, n)
		}
		c.cfg.Metrics.StageInfo.WithLabelValues(ns, name, strconv.Itoa(n)).Set(float64(stage))
	}
	if releaseEnded(before, after) {
		c.cfg.Metrics.Rollouts.WithLabelValues(ns, name, string(after.Result)).Inc()
	}
	if stageEnded(before, after) {
		lag := stages.StageElapsed(before, c.cfg.Clock.Now()) - before.StageDuration
		c.cfg.Metrics.StageLag.Observe(max(lag, 0).Seconds())
	}
}

// stageEnded reports whether a decision completed a running stage: the
// next stage was taken up or the promotion began.
func stageEnded(before, after stages.State) bool {
	if before.Phase != stages.Progressing || before.StageStart.IsZero() || after.Revision != before.Revision {
		return false
	}
	return after.Stage > before.Stage || after.Phase == stages.Promoting
}

// releaseEnded reports whether a decision finished a release. The core
// stamps Finished exactly once per release, so a phase restored after an
// invalid configuration is not counted again.
func releaseEnded(before, after stages.State) bool {
	return !after.Finished.IsZero() && !after.Finished.Equal(before.Finished)
}

// ruleMetrics lists the metrics the policy's rules look at.
func ruleMetrics(p policy.Policy) []string {
	var out []string
	for _, r := range p.Rules {
		if cond, err := policy.ParseCondition(r.When); err == nil && !slices.Contains(out, cond.Metric) {
			out = append(out, cond.Metric)
		}
	}
	return out
}

// ruleHits evaluates the rules' conditions on the canary's values over the
// analysed window. A canary that served fewer than minRequests does not
// make a condition hold: a lone error is not a sustained error rate.
func (c *Controller) ruleHits(t *target, res *metrics.Result) []stages.RuleHit {
	if res == nil {
		return nil
	}
	var hits []stages.RuleHit
	for _, r := range t.policy.Rules {
		cond, err := policy.ParseCondition(r.When)
		if err != nil {
			continue
		}
		o, ok := res.Observed[cond.Metric]
		held := ok && o.CanaryRequests >= float64(t.policy.MinRequests) && cond.Holds(o.Canary)
		hits = append(hits, stages.RuleHit{Name: r.Name, Held: held,
			Message: fmt.Sprintf("%s (canary %s)", cond, metrics.FormatValue(cond.Metric, o.Canary))})
	}
	return hits
}

// gateKey names one gate run: a new attempt or revision is a new run.
func gateKey(t *target, gate, revision string, attempt int) string {
	return fmt.Sprintf("%s/%s/%s/%s/%d", t.stable.Namespace, t.stable.Name, gate, revision, attempt)
}

// gateResults reports the runs the recorded state asked for. Asking the
// runner again is idempotent; after a restart it reruns a gate whose result
// was lost with the old process.
func (c *Controller) gateResults(t *target, st stages.State) map[string]stages.GateResult {
	// Only a release in flight waits for gates; a finished one's runs were
	// forgotten and must not start again.
	if c.cfg.Gates == nil || len(st.Gates) == 0 || !st.Phase.Active() {
		return nil
	}
	out := map[string]stages.GateResult{}
	for name, gs := range st.Gates {
		if gs.Passed || !gs.FailedAt.IsZero() || gs.Attempt == 0 {
			continue
		}
		if res, ok := c.runGate(t, st, name, gs.Attempt); ok {
			out[name] = res
		}
	}
	return out
}

func (c *Controller) ensureGate(t *target, st stages.State, run stages.GateRun) {
	if c.cfg.Gates != nil {
		c.runGate(t, st, run.Name, run.Attempt)
	}
}

func (c *Controller) runGate(t *target, st stages.State, name string, attempt int) (stages.GateResult, bool) {
	var g *policy.Gate
	for i := range t.policy.Gates {
		if t.policy.Gates[i].Name == name {
			g = &t.policy.Gates[i]
		}
	}
	if g == nil || g.URL == "" {
		return stages.GateResult{}, false
	}
	req := gates.Request{
		Key:     gateKey(t, name, st.Revision, attempt),
		Rollout: t.stable.Namespace + "/" + t.stable.Name,
		URL:     g.URL,
		Timeout: g.Timeout.Duration,
		Retries: g.RetriesOrDefault(),
		Body: gates.Body{
			Version: gates.BodyVersion, Gate: name, Type: g.Type,
			Namespace: t.stable.Namespace, Deployment: t.stable.Name, Canary: t.canary.Name,
			Revision: st.Revision, Stage: st.Stage + 1, Stages: len(t.plan.Steps), CanaryWeight: st.Weight,
			Images: status.Images(t.canary), Attempt: attempt,
		},
	}
	res := c.cfg.Gates.Ensure(req)
	switch res.Status {
	case gates.Passed:
		return stages.GateResult{Status: stages.GatePassed, Message: res.Message}, true
	case gates.Failed:
		return stages.GateResult{Status: stages.GateFailed, Message: res.Message}, true
	}
	return stages.GateResult{Status: stages.GateRunning, Message: res.Message}, true
}

// optedIn reports whether a Deployment is meshcanary's to look at: enabled
// with "true", or with a value that is neither true nor false, which must
// be reported as invalid rather than silently ignored.
func optedIn(ann map[string]string) bool {
	v, ok := ann[annotations.Enabled]
	if !ok {
		return false
	}
	return annotations.IsEnabled(ann) || !strings.EqualFold(strings.TrimSpace(v), "false")
}
