package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/apis/meshcanary/v1alpha1"
	"github.com/meshcanary/meshcanary/pkg/policy"
	"github.com/meshcanary/meshcanary/pkg/stages"
	"github.com/meshcanary/meshcanary/pkg/virtualservice"
)

// target is everything resolved about one opted-in Deployment before the
// core is asked: configuration, the objects it touches and what they say.
type target struct {
	// cr is the rollout's CanaryRelease, where its state is recorded.
	cr     *v1alpha1.CanaryRelease
	stable *appsv1.Deployment
	canary *appsv1.Deployment
	vs     *unstructured.Unstructured
	policy policy.Policy
	plan   stages.Plan
	vsTgt  virtualservice.Target
	// routeOK: the managed route was found, so its weight is known even
	// if a later check made the configuration invalid.
	routeOK bool
	// weight is the canary weight the VirtualService carries now.
	weight int
	// stableLabels are the stable subset's labels, kept on promotion.
	stableLabels map[string]string
	// subsetKeys are the label keys that tell the subsets apart; they do
	// not count towards a revision.
	subsetKeys []string
	stableRev  string
	canaryRev  string
	// dropCommands are malformed command annotations to remove.
	dropCommands []string
}

// invalidError is bad user input: it parks the rollout in Invalid and is
// never retried with backoff (a fix arrives as a watch event).
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }

func invalidf(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

// resolve reads the configuration and the objects it names from the caches,
// and checks that they fit together. Every failure that a user must fix is
// an *invalidError naming the object and field.
func (c *Controller) resolve(d *appsv1.Deployment) (*target, error) {
	t := &target{stable: d}
	spec, err := annotations.Parse(d.Name, d.Annotations)
	if err != nil {
		return t, invalidf("Deployment %s/%s: %v", d.Namespace, d.Name, err)
	}
	pol, ok := c.cfg.Policies.Get(spec.Policy)
	if !ok {
		why := ""
		if rej := c.cfg.Policies.Rejected(); rej != nil {
			why = fmt.Sprintf("; the newest policies file was rejected: %v", rej)
		}
		return t, invalidf("annotation %s: policy %q not found (known: %s)%s", annotations.Policy, spec.Policy, strings.Join(c.cfg.Policies.Names(), ", "), why)
	}
	// The annotation overrides are applied once, to this reconcile's copy
	// of the policy, so the plan and the per-stage checks agree.
	pol.Stages = effectiveStages(pol, spec)
	t.policy = pol
	plan, err := buildPlan(pol, c.cfg.ProgressDeadline)
	if err != nil {
		return t, invalidf("policy %q: %v", pol.Name, err)
	}
	t.plan = plan

	canary, err := c.getDeployment(d.Namespace, spec.Canary)
	if err != nil {
		return t, err
	}
	if canary == nil {
		return t, invalidf("canary Deployment %s/%s not found (annotation %s, default <name>-canary)", d.Namespace, spec.Canary, annotations.Canary)
	}
	t.canary = canary

	vs, err := c.getVirtualService(d.Namespace, spec.VirtualService)
	if err != nil {
		return t, err
	}
	if vs == nil {
		return t, invalidf("VirtualService %s/%s not found (annotation %s, default the Deployment's name)", d.Namespace, spec.VirtualService, annotations.VirtualService)
	}
	t.vs = vs
	t.vsTgt = virtualservice.Target{Route: spec.Route, StableSubset: spec.StableSubset, CanarySubset: spec.CanarySubset, Namespace: d.Namespace}
	m, err := virtualservice.Find(vs.Object, t.vsTgt)
	if err != nil {
		return t, invalidf("VirtualService %s/%s: %v", d.Namespace, spec.VirtualService, err)
	}
	t.weight = m.CanaryWeight
	t.routeOK = true

	stableLabels, canaryLabels, err := c.subsets(d.Namespace, m.Host, spec)
	if err != nil {
		return t, err
	}
	if err := podsMatch(d, stableLabels, spec.StableSubset); err != nil {
		return t, err
	}
	if err := podsMatch(canary, canaryLabels, spec.CanarySubset); err != nil {
		return t, err
	}
	t.stableLabels = stableLabels
	keys := map[string]bool{}
	for k := range stableLabels {
		keys[k] = true
	}
	for k := range canaryLabels {
		keys[k] = true
	}
	t.subsetKeys = slices.Sorted(maps.Keys(keys))
	t.stableRev = revision(&d.Spec.Template, t.subsetKeys)
	t.canaryRev = revision(&canary.Spec.Template, t.subsetKeys)
	return t, nil
}

// indexDRByHost indexes DestinationRules by "namespace/first DNS label of
// spec.host", lower-cased: "pay", "pay.payments" and
// "pay.payments.svc.cluster.local." all index as "payments/pay". Two hosts
// that virtualservice.HostsEqual holds equal share their first label, so
// the index finds every candidate and HostsEqual, the one authority on
// host equality, still picks among the few it finds. Looking a rule up is
// then independent of how many DestinationRules the cluster has; listing
// them all on every reconcile was 6% of the controller's CPU at 1,000
// rollouts.
const indexDRByHost = "meshcanary/destinationrule-host"

// addDestinationRuleIndexers adds the indexers subsets looks rules up by;
// call it before the informer starts.
func addDestinationRuleIndexers(inf cache.SharedIndexInformer) error {
	if err := inf.AddIndexers(cache.Indexers{indexDRByHost: drHostIndex}); err != nil {
		return fmt.Errorf("adding destinationrule indexers: %w", err)
	}
	return nil
}

func drHostIndex(obj any) ([]string, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, nil
	}
	h, _, _ := unstructured.NestedString(u.Object, "spec", "host")
	if h == "" {
		// HostsEqual never holds for an empty host.
		return nil, nil
	}
	return []string{drHostKey(u.GetNamespace(), h)}, nil
}

func drHostKey(ns, host string) string {
	first, _, _ := strings.Cut(strings.ToLower(strings.TrimSuffix(host, ".")), ".")
	return ns + "/" + first
}

// destinationRules returns the DestinationRules of the namespace whose
// spec.host is the route's host, by name so that the choice among several
// is the same on every reconcile.
func (c *Controller) destinationRules(ns, host string) ([]*unstructured.Unstructured, error) {
	objs, err := c.cfg.DRs.GetIndexer().ByIndex(indexDRByHost, drHostKey(ns, host))
	if err != nil {
		return nil, fmt.Errorf("looking up DestinationRules for host %q in %s: %w", host, ns, err)
	}
	var out []*unstructured.Unstructured
	for _, o := range objs {
		u, ok := o.(*unstructured.Unstructured)
		if !ok || u.GetNamespace() != ns {
			continue
		}
		h, _, _ := unstructured.NestedString(u.Object, "spec", "host")
		if virtualservice.HostsEqual(h, host, ns) {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b *unstructured.Unstructured) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out, nil
}

// subsets finds the DestinationRule for the route's host and returns the
// label selectors of the two subsets.
func (c *Controller) subsets(ns, host string, spec annotations.Spec) (stable, canary map[string]string, err error) {
	drs, err := c.destinationRules(ns, host)
	if err != nil {
		return nil, nil, err
	}
	for _, u := range drs {
		subs, _, _ := unstructured.NestedSlice(u.Object, "spec", "subsets")
		found := map[string]map[string]string{}
		for _, s := range subs {
			sm, ok := s.(map[string]any)
			if !ok {
				continue
			}
			name, _ := sm["name"].(string)
			labels := map[string]string{}
			if lm, ok := sm["labels"].(map[string]any); ok {
				for k, v := range lm {
					if vs, ok := v.(string); ok {
						labels[k] = vs
					}
				}
			}
			found[name] = labels
		}
		st, okS := found[spec.StableSubset]
		ca, okC := found[spec.CanarySubset]
		switch {
		case !okS:
			return nil, nil, invalidf("DestinationRule %s/%s: spec.subsets: no subset named %q (annotation %s)", ns, u.GetName(), spec.StableSubset, annotations.Subsets)
		case !okC:
			return nil, nil, invalidf("DestinationRule %s/%s: spec.subsets: no subset named %q (annotation %s)", ns, u.GetName(), spec.CanarySubset, annotations.Subsets)
		case len(st) == 0 || len(ca) == 0:
			return nil, nil, invalidf("DestinationRule %s/%s: spec.subsets: subsets %q and %q need labels that tell their pods apart", ns, u.GetName(), spec.StableSubset, spec.CanarySubset)
		case maps.Equal(st, ca):
			return nil, nil, invalidf("DestinationRule %s/%s: spec.subsets: subsets %q and %q select the same labels", ns, u.GetName(), spec.StableSubset, spec.CanarySubset)
		}
		return st, ca, nil
	}
	return nil, nil, invalidf("no DestinationRule in namespace %s has spec.host %q with subsets %q and %q", ns, host, spec.StableSubset, spec.CanarySubset)
}

// podsMatch checks that a Deployment's pods carry its subset's labels:
// otherwise weights would send traffic to nobody.
func podsMatch(d *appsv1.Deployment, subset map[string]string, name string) error {
	for k, v := range subset {
		if d.Spec.Template.Labels[k] != v {
			return invalidf("Deployment %s/%s: spec.template.metadata.labels: %s=%q expected by DestinationRule subset %q, found %q", d.Namespace, d.Name, k, v, name, d.Spec.Template.Labels[k])
		}
	}
	return nil
}

// buildPlan resolves a policy, its stages already overridden by the
// annotations (effectiveStages), into the plan the core walks. Blue/green is a plan too: one stage at 100% whose
// canary (green) is stable's full size, so one decision core serves both
// strategies.
func buildPlan(p policy.Policy, deadline time.Duration) (stages.Plan, error) {
	plan := stages.Plan{
		Interval:         p.Interval.Duration,
		FailureLimit:     p.FailureLimit,
		OutageLimit:      p.MetricsOutageLimit,
		ProgressDeadline: deadline,
		StuckAfter:       p.StuckAfter.Duration,
	}
	if p.Strategy == policy.StrategyBlueGreen {
		plan.Steps = []stages.Step{{Weight: 100, Duration: p.Monitor.Duration}}
	} else {
		for _, s := range p.Stages {
			step := stages.Step{Weight: s.Weight, Duration: s.Duration.Duration}
			if s.CanaryReplicas != nil {
				step.CanaryReplicas = *s.CanaryReplicas
			}
			plan.Steps = append(plan.Steps, step)
		}
	}
	var err error
	if plan.Window, err = schedule(p.Window, "window"); err != nil {
		return plan, err
	}
	if plan.StartAt, err = schedule(p.StartAt, "startAt"); err != nil {
		return plan, err
	}
	for i, f := range p.Freeze {
		sch, err := schedule(f, fmt.Sprintf("freeze[%d]", i))
		if err != nil {
			return plan, err
		}
		plan.Freeze = append(plan.Freeze, sch)
	}
	for _, g := range p.Gates {
		plan.Gates = append(plan.Gates, stages.Gate{
			Name: g.Name, Type: stages.GateType(g.Type), Stage: g.Stage - 1, Hold: g.OnFailure == policy.OnFailureHold,
		})
	}
	for _, r := range p.Rules {
		plan.Rules = append(plan.Rules, stages.Rule{Name: r.Name, For: r.For.Duration, Action: stages.RuleAction(r.Action), Notify: r.Notify})
	}
	return plan, nil
}

// schedule parses an optional cron schedule; nil when not set.
func schedule(spec, field string) (stages.Schedule, error) {
	if spec == "" {
		return nil, nil
	}
	s, err := policy.ParseSchedule(spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return s, nil
}

// effectiveStages applies meshcanary.io/stages and stage-duration. When the
// weights are overridden the policy's stage of the same position lends its
// duration (the last one beyond its length); per-stage checks and replica
// counts belong to the policy's own weights and are kept only when the
// number of stages is unchanged.
func effectiveStages(p policy.Policy, spec annotations.Spec) []policy.Stage {
	out := slices.Clone(p.Stages)
	if len(spec.Stages) > 0 {
		same := len(spec.Stages) == len(p.Stages)
		out = make([]policy.Stage, len(spec.Stages))
		for i, w := range spec.Stages {
			src := p.Stages[min(i, len(p.Stages)-1)]
			out[i] = policy.Stage{Weight: w, Duration: src.Duration}
			if same {
				out[i].Checks, out[i].CanaryReplicas = src.Checks, src.CanaryReplicas
			}
		}
	}
	if spec.StageDuration > 0 {
		for i := range out {
			out[i].Duration = policy.Duration{Duration: spec.StageDuration}
		}
	}
	return out
}

// revision identifies a pod template regardless of which subset it runs in:
// the subset labels and kubectl's restart stamp are left out, so stable and
// canary running the same release have the same revision.
func revision(t *corev1.PodTemplateSpec, subsetKeys []string) string {
	cp := t.DeepCopy()
	for _, k := range subsetKeys {
		delete(cp.Labels, k)
	}
	delete(cp.Annotations, "kubectl.kubernetes.io/restartedAt")
	if len(cp.Labels) == 0 {
		cp.Labels = nil
	}
	if len(cp.Annotations) == 0 {
		cp.Annotations = nil
	}
	b, err := json.Marshal(cp)
	if err != nil {
		// A PodTemplateSpec always marshals; keep a stable answer anyway.
		return "unknown"
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:10]
}

func workload(d *appsv1.Deployment, rev string) stages.Workload {
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	st := d.Status
	return stages.Workload{
		Revision:  rev,
		Replicas:  replicas,
		Available: st.AvailableReplicas,
		Settled: st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == replicas &&
			st.Replicas == replicas && st.AvailableReplicas == replicas,
	}
}

// commandsOf reads the command annotations. A malformed one is reported
// and dropped, never held against the others: a typo in promote=yes must
// not block a rollback. It returns the malformed keys for removal and what
// to tell the user about them.
func commandsOf(d *appsv1.Deployment) (stages.Commands, []string, string) {
	cmd, err := annotations.ParseCommands(d.Annotations)
	var bad []string
	msg := ""
	var pe *annotations.ParseError
	if errors.As(err, &pe) {
		for _, p := range pe.Problems {
			bad = append(bad, p.Key)
		}
		msg = fmt.Sprintf("ignored and removed: %v", err)
	}
	return stages.Commands{Rollback: cmd.Rollback, Promote: cmd.Promote, Pause: cmd.Pause, Approve: cmd.Approve, Retry: cmd.Retry}, bad, msg
}
func isInvalid(err error) (string, bool) {
	var ie *invalidError
	if errors.As(err, &ie) {
		return ie.msg, true
	}
	return "", false
}

// resolveRoute finds the managed route of a rollout whose configuration is
// invalid elsewhere (a bad stage duration, an unknown policy), from the
// annotations that name it alone: a person's rollback must still reach the
// route while they fix the rest.
func (c *Controller) resolveRoute(d *appsv1.Deployment, t *target) {
	only := map[string]string{}
	for _, k := range []string{annotations.VirtualService, annotations.Route, annotations.Subsets} {
		if v, ok := d.Annotations[k]; ok {
			only[k] = v
		}
	}
	spec, err := annotations.Parse(d.Name, only)
	if err != nil {
		return
	}
	vs, err := c.getVirtualService(d.Namespace, spec.VirtualService)
	if err != nil || vs == nil {
		return
	}
	tgt := virtualservice.Target{Route: spec.Route, StableSubset: spec.StableSubset, CanarySubset: spec.CanarySubset, Namespace: d.Namespace}
	m, err := virtualservice.Find(vs.Object, tgt)
	if err != nil {
		return
	}
	t.vs, t.vsTgt, t.weight, t.routeOK = vs, tgt, m.CanaryWeight, true
}
