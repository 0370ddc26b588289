package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/apis/meshcanary/v1alpha1"
	"github.com/meshcanary/meshcanary/pkg/stages"
	"github.com/meshcanary/meshcanary/pkg/status"
	"github.com/meshcanary/meshcanary/pkg/virtualservice"
)

// statusDoc is what `status -o json|yaml` prints: the published state of
// one rollout, decoded, with the weights as the VirtualService has them.
type statusDoc struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Phase     string `json:"phase"`
	// Active is true while a release is in flight (Progressing, Paused,
	// Promoting).
	Active   bool       `json:"active"`
	Stage    string     `json:"stage,omitempty"`
	Weight   int        `json:"weight"`
	Weights  weightsDoc `json:"weights"`
	Revision string     `json:"revision,omitempty"`
	Message  string     `json:"message,omitempty"`
	// Clock is the current stage's clock; absent when no stage runs.
	Clock *stageClock `json:"clock,omitempty"`
	// PendingCommands are command annotations the controller has not acted
	// on yet.
	PendingCommands map[string]string `json:"pendingCommands,omitempty"`
	Verdicts        verdicts          `json:"verdicts"`
	Analysis        *status.Analysis  `json:"analysis,omitempty"`
	History         []status.Release  `json:"history,omitempty"`
	// State is the controller's record as it wrote it.
	State stages.State `json:"state"`
	// Warnings say what could not be read, e.g. an unreadable annotation.
	Warnings []string `json:"warnings,omitempty"`
}

// weightsDoc is the traffic split of the managed route.
type weightsDoc struct {
	Stable int `json:"stable"`
	Canary int `json:"canary"`
	// Other is what the route's other destinations take.
	Other int `json:"other,omitempty"`
	// Source says where the weights were read: the VirtualService, or the
	// controller's weight annotation when the VirtualService could not be
	// read.
	Source string `json:"source"`
}

// stageClock is how far the current stage has run. The stage's duration
// comes from the policy, which the controller does not publish; it is known
// here only when the meshcanary.io/stage-duration annotation sets it.
type stageClock struct {
	Started          time.Time `json:"started"`
	ElapsedSeconds   float64   `json:"elapsedSeconds"`
	DurationSeconds  *float64  `json:"durationSeconds,omitempty"`
	RemainingSeconds *float64  `json:"remainingSeconds,omitempty"`
	Paused           bool      `json:"paused,omitempty"`
}

// verdicts summarises the recent analysis intervals of the stage.
type verdicts struct {
	Last     string `json:"last,omitempty"`
	Passes   int    `json:"passes"`
	Failures int    `json:"failures"`
	Outages  int    `json:"outages"`
}

// buildStatus decodes what is published about a rollout: the Deployment's
// summary and pending commands, and the state, last analysis and history
// of its CanaryRelease (cr, nil when it has none). Weights come from the
// caller, who may have read them from the VirtualService.
func buildStatus(d *appsv1.Deployment, cr *v1alpha1.CanaryRelease, w weightsDoc, now time.Time) statusDoc {
	v, err := status.ReadWith(d, cr)
	doc := statusDoc{
		Namespace: d.Namespace,
		Name:      d.Name,
		Phase:     v.Phase,
		Active:    stages.Phase(v.Phase).Active(),
		Stage:     v.Stage,
		Weight:    v.Weight,
		Weights:   w,
		Revision:  v.Revision,
		Message:   v.Message,
		Verdicts: verdicts{
			Last:     string(v.State.LastVerdict),
			Passes:   v.State.Passes,
			Failures: v.State.Failures,
			Outages:  v.State.Outages,
		},
		Analysis: v.Analysis,
		History:  v.History,
		State:    v.State,
	}
	if err != nil {
		doc.Warnings = append(doc.Warnings, err.Error())
	}
	if doc.Phase == "" {
		doc.Warnings = append(doc.Warnings, "the controller has not reconciled this Deployment yet (no "+annotations.Phase+" annotation); is it running?")
	}
	if len(v.Commands) > 0 {
		doc.PendingCommands = v.Commands
	}
	if doc.Active && !v.State.StageStart.IsZero() {
		clock := &stageClock{
			Started:        v.State.StageStart,
			ElapsedSeconds: stages.StageElapsed(v.State, now).Round(time.Second).Seconds(),
			Paused:         v.State.Phase == stages.Paused,
		}
		dur, ok := v.State.StageDuration, v.State.StageDuration > 0
		if !ok {
			dur, ok = stageDuration(d)
		}
		if ok {
			total := dur.Seconds()
			left := max(0, dur-stages.StageElapsed(v.State, now)).Round(time.Second).Seconds()
			clock.DurationSeconds, clock.RemainingSeconds = &total, &left
		}
		doc.Clock = clock
	}
	return doc
}

// stageDuration is the stage duration the annotation sets for every stage.
func stageDuration(d *appsv1.Deployment) (time.Duration, bool) {
	raw, ok := d.Annotations[annotations.StageDuration]
	if !ok {
		return 0, false
	}
	dur, err := time.ParseDuration(strings.TrimSpace(raw))
	return dur, err == nil && dur > 0
}

// publishedWeights is the split as the controller last published it, for
// when the VirtualService cannot be read: the CanaryRelease's
// status.weight, or the weight annotation of a Deployment without one.
func publishedWeights(d *appsv1.Deployment, cr *v1alpha1.CanaryRelease) weightsDoc {
	v, _ := status.ReadWith(d, cr)
	return weightsDoc{Stable: 100 - v.Weight, Canary: v.Weight, Source: weightSource(cr)}
}

// weightSource names where publishedWeights reads the weight.
func weightSource(cr *v1alpha1.CanaryRelease) string {
	if cr == nil || cr.Status.State == nil {
		return "annotation " + annotations.Weight
	}
	return "CanaryRelease " + cr.Namespace + "/" + cr.Name + " status.weight"
}

// managed is the managed route of a rollout's VirtualService.
type managed struct {
	spec  annotations.Spec
	vs    string
	route virtualservice.Managed
}

// managedRoute reads the VirtualService the Deployment's annotations name
// and finds the managed route in it, as the controller does.
func (c *cluster) managedRoute(ctx context.Context, d *appsv1.Deployment) (managed, error) {
	spec, err := annotations.Parse(d.Name, d.Annotations)
	if err != nil {
		return managed{}, fmt.Errorf("deployment %q: %w", d.Name, err)
	}
	vs, err := c.virtualService(ctx, spec.VirtualService)
	if err != nil {
		return managed{}, err
	}
	if vs == nil {
		return managed{}, fmt.Errorf("VirtualService %q not found in namespace %q (annotation %s, default the Deployment's name)", spec.VirtualService, d.Namespace, annotations.VirtualService)
	}
	m, err := virtualservice.Find(vs.Object, virtualservice.Target{
		Route: spec.Route, StableSubset: spec.StableSubset, CanarySubset: spec.CanarySubset, Namespace: d.Namespace,
	})
	if err != nil {
		return managed{}, fmt.Errorf("reading weights: %w", err)
	}
	return managed{spec: spec, vs: spec.VirtualService, route: m}, nil
}

// weights reads the split from the VirtualService, falling back to the
// published weight with a warning.
func (c *cluster) weights(ctx context.Context, r rollout) (weightsDoc, string) {
	d := r.d
	m, err := c.managedRoute(ctx, d)
	if err != nil {
		return publishedWeights(d, r.cr), err.Error()
	}
	return weightsDoc{
		Stable: m.route.StableWeight,
		Canary: m.route.CanaryWeight,
		Other:  m.route.ForeignWeight,
		Source: "VirtualService " + d.Namespace + "/" + m.vs,
	}, ""
}

// status reads everything `status` shows about a rollout.
func (c *cluster) status(ctx context.Context, r rollout, now time.Time) statusDoc {
	w, warning := c.weights(ctx, r)
	return assemble(r, w, warning, now)
}

// assemble is buildStatus with the warning of a failed VirtualService read.
func assemble(r rollout, w weightsDoc, vsWarning string, now time.Time) statusDoc {
	doc := buildStatus(r.d, r.cr, w, now)
	if vsWarning != "" {
		from := "the " + annotations.Weight + " annotation"
		if r.cr != nil && r.cr.Status.State != nil {
			from = "the CanaryRelease's status.weight"
		}
		doc.Warnings = append(doc.Warnings, "weights from "+from+": "+vsWarning)
	}
	return doc
}

// rolloutOf reads d's CanaryRelease, for the commands that show one
// rollout.
func (c *cluster) rolloutOf(ctx context.Context, d *appsv1.Deployment) (rollout, error) {
	cr, err := c.release(ctx, d)
	if err != nil {
		return rollout{}, err
	}
	return rollout{d: d, cr: cr}, nil
}

// sortedKeys returns a map's keys in order, for stable output.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
