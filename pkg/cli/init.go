package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/virtualservice"
)

// initFieldManager owns what `init --apply` writes, so that `kubectl get
// -o yaml --show-managed-fields` tells it apart from the user's fields.
const initFieldManager = "meshcanary-init"

// The subset label values init gives stable and canary pods; the subset
// names are meshcanary's defaults, so no annotation is needed for them.
const (
	stableValue = annotations.DefaultStableSubset
	canaryValue = annotations.DefaultCanarySubset
)

// What init does with one object.
const (
	actionCreate     = "create"
	actionAddSubsets = "add-subsets"
	actionAnnotate   = "annotate"
	actionNone       = "none"
	actionManual     = "manual"
)

// What --apply did with one object.
const (
	resultCreated   = "created"
	resultChanged   = "changed"
	resultUnchanged = "unchanged"
	resultSkipped   = "skipped"
)

// initItem is what init does, or asks the user to do, with one object.
type initItem struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Action is create, add-subsets, annotate, none (the object already
	// fits) or manual (the user must act; see the plan's steps).
	Action string `json:"action"`
	Detail string `json:"detail"`
	// Result is what --apply did: created, changed, unchanged or skipped.
	Result string `json:"result,omitempty"`
	// Object is what is applied: the whole object to create, the
	// annotations to apply, the DestinationRule as it will be after the
	// subsets are added, or the manifest to apply by hand.
	Object map[string]any `json:"object,omitempty"`

	// addSubsets and resourceVersion pin an add-subsets change to the
	// object it was planned on.
	addSubsets      []any
	hasSubsets      bool
	resourceVersion string
}

// initPlan is what `init -o json|yaml` prints.
type initPlan struct {
	Namespace   string     `json:"namespace"`
	Deployment  string     `json:"deployment"`
	Service     string     `json:"service"`
	SubsetLabel string     `json:"subsetLabel"`
	Items       []initItem `json:"items"`
	// Steps are what the user must do by hand, in order.
	Steps []string `json:"steps,omitempty"`
	// Problems block init: nothing is applied while there are any.
	Problems []string `json:"problems,omitempty"`
	Notes    []string `json:"notes,omitempty"`
	Applied  bool     `json:"applied"`
}

type initOptions struct {
	*common
	output         string
	service        string
	subsetLabel    string
	apply          bool
	stableManifest bool
}

func newInitCommand(c *common) *cobra.Command {
	o := &initOptions{common: c}
	cmd := &cobra.Command{
		Use:   "init DEPLOYMENT",
		Short: "Print (or apply) what a Deployment needs for canary releases",
		Long: `Read an existing Deployment and its Service and print what meshcanary needs,
as YAML documents ready for kubectl apply:

  - the canary Deployment <name>-canary: a copy with 0 replicas whose selector
    and pods carry the subset label (--subset-label, values stable/canary);
  - a DestinationRule for the Service's host with the subsets stable and
    canary, or the missing subsets added to the existing one (nothing else in
    it changes);
  - a VirtualService with a route "primary" sending 100% to stable and 0% to
    the canary, or, when one exists for the host, what it must contain;
  - the opt-in annotations on the Deployment.

Nothing the user already has is changed without saying so. A Deployment's
selector cannot be changed (Kubernetes refuses it), so when the stable
Deployment's selector lacks the subset label, init prints the exact steps to
do it by hand, without downtime, instead of applying it; the opt-in then
comes last, as a step.

With --apply the objects are applied with server-side apply (field manager
meshcanary-init) and each is reported as created, changed or unchanged.`,
		Example: `  meshcanary init payment-service
  meshcanary init payment-service --apply
  meshcanary init payment-service --service payments --subset-label version -o json`,
		Args:              oneDeployment,
		ValidArgsFunction: completeAnyDeployment(c),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(cmd, o.output); err != nil {
				return err
			}
			if msgs := validation.IsQualifiedName(o.subsetLabel); len(msgs) > 0 {
				return usagef(cmd, "--subset-label %q: %s", o.subsetLabel, strings.Join(msgs, ", "))
			}
			name, _ := deploymentArg(cmd, args[0])
			return o.run(cmd.Context(), name)
		},
	}
	addOutputFlag(cmd, &o.output)
	cmd.Flags().StringVar(&o.service, "service", "", "The Service in front of the Deployment (default: the one named like it, else the only one selecting its pods)")
	cmd.Flags().StringVar(&o.subsetLabel, "subset-label", "track", "Pod label that tells stable pods (value stable) from canary pods (value canary)")
	cmd.Flags().BoolVar(&o.apply, "apply", false, "Apply the objects (server-side apply, field manager meshcanary-init) instead of printing them")
	cmd.Flags().BoolVar(&o.stableManifest, "stable-manifest", false, "Print only the stable Deployment as it must be recreated when its selector lacks the subset label (a step init prints)")
	cmd.MarkFlagsMutuallyExclusive("apply", "stable-manifest")
	return cmd
}

func (o *initOptions) run(ctx context.Context, name string) error {
	c, err := o.kube.connect()
	if err != nil {
		return err
	}
	in, err := c.gatherInit(ctx, name, o.service)
	if err != nil {
		return err
	}
	in.subsetLabel = o.subsetLabel
	plan := planInit(in)
	if o.stableManifest {
		return printStableManifest(o.streams.Out, o.output, plan)
	}

	var applyErr error
	if o.apply && len(plan.Problems) == 0 {
		applyErr = c.applyPlan(ctx, &plan)
	}
	switch {
	case o.output != outputHuman:
		if err := printDoc(o.streams.Out, o.output, plan); err != nil {
			return err
		}
	case o.apply:
		if err := renderApplied(o.streams.Out, plan); err != nil {
			return err
		}
	default:
		if err := renderInitYAML(o.streams.Out, plan); err != nil {
			return err
		}
	}
	if applyErr != nil {
		return applyErr
	}
	if len(plan.Problems) > 0 {
		return fmt.Errorf("%s: nothing was applied; fix them and run init again", plural(len(plan.Problems), "problem"))
	}
	return nil
}

// printStableManifest prints the recreated stable Deployment alone, so
// that the manual steps can save it to a file with a plain redirection.
func printStableManifest(w io.Writer, output string, p initPlan) error {
	for _, it := range p.Items {
		if it.Kind == "Deployment" && it.Name == p.Deployment && it.Action == actionManual {
			if output == outputHuman {
				output = outputYAML
			}
			return printDoc(w, output, it.Object)
		}
	}
	return fmt.Errorf("deployment %q needs no recreating: its selector already has %s=%s", p.Deployment, p.SubsetLabel, stableValue)
}

// initInput is what init reads from the cluster.
type initInput struct {
	stable  *appsv1.Deployment
	service *corev1.Service
	// canary is the existing canary Deployment, nil when there is none.
	canary      *appsv1.Deployment
	canaryName  string
	drs         []unstructured.Unstructured
	vss         []unstructured.Unstructured
	subsetLabel string
}

func (c *cluster) gatherInit(ctx context.Context, name, serviceName string) (initInput, error) {
	stable, err := c.deployment(ctx, name)
	if err != nil {
		return initInput{}, err
	}
	svc, err := c.serviceFor(ctx, stable, serviceName)
	if err != nil {
		return initInput{}, err
	}
	spec := lenientSpec(stable)
	in := initInput{stable: stable, service: svc, canaryName: spec.Canary}
	if in.canary, err = c.optionalDeployment(ctx, spec.Canary); err != nil {
		return initInput{}, err
	}
	if in.drs, err = c.list(ctx, drGVR()); err != nil {
		return initInput{}, err
	}
	if in.vss, err = c.list(ctx, vsGVR()); err != nil {
		return initInput{}, err
	}
	return in, nil
}

// serviceFor finds the Service in front of a Deployment: the one named, the
// one named like the Deployment, or the only one selecting its pods.
func (c *cluster) serviceFor(ctx context.Context, d *appsv1.Deployment, name string) (*corev1.Service, error) {
	svcs := c.kube.CoreV1().Services(c.namespace)
	if name != "" {
		s, err := svcs.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("service %q not found in namespace %q: %w", name, c.namespace, err)
		}
		if err != nil {
			return nil, fmt.Errorf("getting service %q: %w", name, err)
		}
		return s, nil
	}
	s, err := svcs.Get(ctx, d.Name, metav1.GetOptions{})
	if err == nil {
		return s, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("getting service %q: %w", d.Name, err)
	}
	list, err := svcs.List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing services: %w", err)
	}
	var found []corev1.Service
	for _, s := range list.Items {
		if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
			found = append(found, s)
		}
	}
	switch len(found) {
	case 1:
		return &found[0], nil
	case 0:
		return nil, fmt.Errorf("no Service in namespace %q selects the pods of deployment %q: create one, or name it with --service", c.namespace, d.Name)
	}
	var names []string
	for _, s := range found {
		names = append(names, s.Name)
	}
	return nil, fmt.Errorf("several Services select the pods of deployment %q (%s): choose one with --service", d.Name, strings.Join(names, ", "))
}

// planInit decides what to create, extend, leave alone or ask the user to
// do. It reads only its input, so every case is testable without a
// cluster.
func planInit(in initInput) initPlan {
	d, svc, key := in.stable, in.service, in.subsetLabel
	ns, host := d.Namespace, svc.Name
	p := initPlan{Namespace: ns, Deployment: d.Name, Service: svc.Name, SubsetLabel: key, Items: []initItem{}}
	stableSubset := map[string]string{key: stableValue}
	canarySubset := map[string]string{key: canaryValue}

	if v, ok := d.Spec.Template.Labels[key]; ok && v != stableValue {
		p.Problems = append(p.Problems, fmt.Sprintf("Deployment %s/%s: spec.template.metadata.labels: %s=%q, but init labels stable pods %s=%s; choose another label with --subset-label",
			ns, d.Name, key, v, key, stableValue))
	}
	p.checkService(svc, d, key)
	p.planCanary(in, key)
	p.planDestinationRule(in.drs, ns, host, stableSubset, canarySubset)
	vsName := p.planVirtualService(in, host)
	p.planStable(d, key, vsName)

	// The opt-in comes last, and only once everything it needs is in
	// place: an opted-in Deployment whose objects do not fit would only
	// sit in phase Invalid.
	want := map[string]string{annotations.Enabled: "true"}
	if vsName != d.Name && d.Annotations[annotations.VirtualService] != vsName {
		want[annotations.VirtualService] = vsName
	}
	manual := slices.ContainsFunc(p.Items, func(it initItem) bool { return it.Action == actionManual })
	switch {
	case len(p.Problems) > 0:
		// Steps written for objects that cannot be used as they are would
		// mislead; the problems come first.
		p.Steps = nil
	case manual:
		args := []string{}
		for _, k := range sortedKeys(want) {
			args = append(args, k+"="+want[k])
		}
		p.Steps = append(p.Steps,
			fmt.Sprintf("kubectl -n %s annotate deployment %s %s --overwrite   # opt in, once the steps above are done", ns, d.Name, strings.Join(args, " ")),
			fmt.Sprintf("meshcanary -n %s lint %s   # should find no problems", ns, d.Name))
	default:
		p.Items = append(p.Items, optInItem(d, want))
	}
	return p
}

func (p *initPlan) checkService(svc *corev1.Service, d *appsv1.Deployment, key string) {
	where := fmt.Sprintf("Service %s/%s: spec.selector", svc.Namespace, svc.Name)
	switch {
	case len(svc.Spec.Selector) == 0:
		p.Problems = append(p.Problems, where+": none; meshcanary needs a Service that selects the pods of both Deployments")
	case svc.Spec.Selector[key] != "":
		p.Problems = append(p.Problems, fmt.Sprintf("%s: includes %s=%s, so it would not select the canary's pods; remove %s from it", where, key, svc.Spec.Selector[key], key))
	case !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)):
		p.Problems = append(p.Problems, fmt.Sprintf("%s: %s does not select the pods of deployment %s", where, labels.SelectorFromSet(svc.Spec.Selector), d.Name))
	}
	for _, port := range svc.Spec.Ports {
		proto := strings.ToLower(port.Name)
		if port.AppProtocol != nil {
			proto = strings.ToLower(*port.AppProtocol)
		}
		if strings.HasPrefix(proto, "http") || strings.HasPrefix(proto, "grpc") {
			return
		}
	}
	p.Notes = append(p.Notes, fmt.Sprintf("Service %s/%s has no port named http… or grpc… (nor such an appProtocol): Istio then treats its traffic as TCP, and HTTP routes, meshcanary's weights among them, do not apply to it", svc.Namespace, svc.Name))
}

func (p *initPlan) planCanary(in initInput, key string) {
	d := in.stable
	if c := in.canary; c != nil {
		item := initItem{Kind: "Deployment", Namespace: c.Namespace, Name: c.Name, Action: actionNone}
		selOK := c.Spec.Selector != nil && c.Spec.Selector.MatchLabels[key] == canaryValue
		if !selOK || c.Spec.Template.Labels[key] != canaryValue {
			p.Problems = append(p.Problems, fmt.Sprintf("Deployment %s/%s exists, but its selector and pods are not labelled %s=%s; init leaves it alone: delete it (a canary at rest has 0 replicas) and run init again",
				c.Namespace, c.Name, key, canaryValue))
			return
		}
		item.Detail = fmt.Sprintf("exists with %s=%s on its selector and pods; left as it is", key, canaryValue)
		p.Items = append(p.Items, item)
		return
	}
	canary := canaryFrom(d, in.canaryName, key)
	p.Items = append(p.Items, initItem{
		Kind: "Deployment", Namespace: d.Namespace, Name: in.canaryName, Action: actionCreate,
		Detail: fmt.Sprintf("copy of %s with 0 replicas, %s=%s added to its selector and pod labels", d.Name, key, canaryValue),
		Object: toMap(canary),
	})
}

// canaryFrom copies the stable Deployment's spec into a canary at rest.
// Deployment-level annotations are not copied: they belong to the stable
// Deployment (meshcanary's state among them); the pod template's are, as
// they are part of what runs.
func canaryFrom(d *appsv1.Deployment, name, key string) *appsv1.Deployment {
	spec := d.Spec.DeepCopy()
	spec.Replicas = new(int32)
	spec.Paused = false
	if spec.Selector == nil {
		spec.Selector = &metav1.LabelSelector{}
	}
	spec.Selector.MatchLabels = withLabel(spec.Selector.MatchLabels, key, canaryValue)
	spec.Template.Labels = withLabel(spec.Template.Labels, key, canaryValue)
	meta := metav1.ObjectMeta{Name: name, Namespace: d.Namespace, Labels: maps.Clone(d.Labels)}
	if _, ok := meta.Labels[key]; ok {
		meta.Labels[key] = canaryValue
	}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: meta,
		Spec:       *spec,
	}
}

func withLabel(m map[string]string, k, v string) map[string]string {
	out := maps.Clone(m)
	if out == nil {
		out = map[string]string{}
	}
	out[k] = v
	return out
}

func subsetEntry(name string, lbls map[string]string) map[string]any {
	l := map[string]any{}
	for k, v := range lbls {
		l[k] = v
	}
	return map[string]any{"name": name, "labels": l}
}

func (p *initPlan) planDestinationRule(drs []unstructured.Unstructured, ns, host string, stable, canary map[string]string) {
	var dr *unstructured.Unstructured
	for i := range drs {
		h, _, _ := unstructured.NestedString(drs[i].Object, "spec", "host")
		if virtualservice.HostsEqual(h, host, ns) {
			dr = &drs[i]
			break
		}
	}
	want := []struct {
		name   string
		labels map[string]string
	}{{stableValue, stable}, {canaryValue, canary}}
	if dr == nil {
		for _, other := range drs {
			if other.GetName() == host {
				h, _, _ := unstructured.NestedString(other.Object, "spec", "host")
				p.Problems = append(p.Problems, fmt.Sprintf("DestinationRule %s/%s exists for another host (%q); init cannot create one of that name for host %q", ns, host, h, host))
				return
			}
		}
		var subsets []any
		for _, w := range want {
			subsets = append(subsets, subsetEntry(w.name, w.labels))
		}
		p.Items = append(p.Items, initItem{
			Kind: "DestinationRule", Namespace: ns, Name: host, Action: actionCreate,
			Detail: fmt.Sprintf("subsets %s (%s) and %s (%s) of host %s", stableValue, labels.Set(stable), canaryValue, labels.Set(canary), host),
			Object: map[string]any{
				"apiVersion": "networking.istio.io/v1",
				"kind":       "DestinationRule",
				"metadata":   map[string]any{"name": host, "namespace": ns},
				"spec":       map[string]any{"host": host, "subsets": subsets},
			},
		})
		return
	}

	have := drSubsets(*dr)
	var missing []any
	var names []string
	conflicts := len(p.Problems)
	for _, w := range want {
		got, ok := have[w.name]
		switch {
		case !ok:
			missing = append(missing, subsetEntry(w.name, w.labels))
			names = append(names, fmt.Sprintf("%s (%s)", w.name, labels.Set(w.labels)))
		case !maps.Equal(got, w.labels):
			p.Problems = append(p.Problems, fmt.Sprintf("DestinationRule %s/%s: spec.subsets[name=%s] selects %s, but init labels those pods %s; make the subset select %s, or choose the label with --subset-label",
				ns, dr.GetName(), w.name, orNone(labels.Set(got).String()), labels.Set(w.labels), labels.Set(w.labels)))
		}
	}
	if len(p.Problems) > conflicts {
		return
	}
	item := initItem{Kind: "DestinationRule", Namespace: ns, Name: dr.GetName()}
	if len(missing) == 0 {
		item.Action, item.Detail = actionNone, fmt.Sprintf("has the subsets %s and %s for host %s", stableValue, canaryValue, host)
		p.Items = append(p.Items, item)
		return
	}
	after := cleanObject(dr.DeepCopy().Object)
	existing, hasSubsets, _ := unstructured.NestedSlice(after, "spec", "subsets")
	_ = unstructured.SetNestedSlice(after, append(existing, missing...), "spec", "subsets")
	item.Action = actionAddSubsets
	item.Detail = "add the subsets " + strings.Join(names, " and ") + "; nothing else in it changes"
	item.Object = after
	item.addSubsets, item.hasSubsets, item.resourceVersion = missing, hasSubsets, dr.GetResourceVersion()
	p.Items = append(p.Items, item)
}

// planVirtualService returns the name of the VirtualService the rollout
// will use.
func (p *initPlan) planVirtualService(in initInput, host string) string {
	d := in.stable
	ns := d.Namespace
	spec := lenientSpec(d)
	target := virtualservice.Target{StableSubset: stableValue, CanarySubset: canaryValue, Namespace: ns, Route: spec.Route}
	example := exampleRoute(host)

	var named *unstructured.Unstructured
	var forHost []*unstructured.Unstructured
	for i := range in.vss {
		u := &in.vss[i]
		if u.GetName() == spec.VirtualService {
			named = u
		}
		hosts, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "hosts")
		if slices.ContainsFunc(hosts, func(h string) bool { return virtualservice.HostsEqual(h, host, ns) }) {
			forHost = append(forHost, u)
		}
	}
	candidates := forHost
	if named != nil {
		candidates = []*unstructured.Unstructured{named}
	}
	if len(candidates) == 0 {
		p.Items = append(p.Items, initItem{
			Kind: "VirtualService", Namespace: ns, Name: spec.VirtualService, Action: actionCreate,
			Detail: fmt.Sprintf("route %q for host %s: stable 100%%, canary 0%%", "primary", host),
			Object: map[string]any{
				"apiVersion": "networking.istio.io/v1",
				"kind":       "VirtualService",
				"metadata":   map[string]any{"name": spec.VirtualService, "namespace": ns},
				"spec": map[string]any{
					"hosts": []any{host},
					"http":  []any{example},
				},
			},
		})
		return spec.VirtualService
	}
	var firstErr error
	for _, u := range candidates {
		m, err := virtualservice.Find(u.Object, target)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		route := m.RouteName
		if route == "" {
			route = fmt.Sprintf("spec.http[%d]", m.RouteIndex)
		}
		p.Items = append(p.Items, initItem{
			Kind: "VirtualService", Namespace: ns, Name: u.GetName(), Action: actionNone,
			Detail: fmt.Sprintf("route %s fits: stable %d%%, canary %d%%; left as it is", route, m.StableWeight, m.CanaryWeight),
		})
		return u.GetName()
	}
	u := candidates[0]
	snippet, _ := yaml.Marshal(map[string]any{"http": []any{example}})
	p.Items = append(p.Items, initItem{
		Kind: "VirtualService", Namespace: ns, Name: u.GetName(), Action: actionManual,
		Detail: fmt.Sprintf("exists for host %s but does not fit: %v. It must contain an HTTP route with destinations for the subsets %s and %s of host %s, for example:\n%s",
			host, firstErr, stableValue, canaryValue, host, strings.TrimRight(string(snippet), "\n")),
	})
	p.Steps = append(p.Steps, fmt.Sprintf("kubectl -n %s edit virtualservice %s   # add the route shown above (init never edits an existing VirtualService)", ns, u.GetName()))
	return u.GetName()
}

// exampleRoute is the route meshcanary manages, at rest.
func exampleRoute(host string) map[string]any {
	return map[string]any{
		"name": "primary",
		"route": []any{
			map[string]any{"destination": map[string]any{"host": host, "subset": stableValue}, "weight": int64(100)},
			map[string]any{"destination": map[string]any{"host": host, "subset": canaryValue}, "weight": int64(0)},
		},
	}
}

// planStable checks the stable Deployment's selector. Adding the subset
// label to it is the one change init cannot make: Kubernetes refuses to
// change a Deployment's selector, so it would have to delete and recreate
// the Deployment, which is for its owner to decide. Init prints the steps,
// which keep the old pods serving until the new ones are up.
func (p *initPlan) planStable(d *appsv1.Deployment, key, vsName string) {
	if d.Spec.Selector != nil && d.Spec.Selector.MatchLabels[key] == stableValue {
		return
	}
	ns, name := d.Namespace, d.Name
	manifest := stableManifest(d, key, vsName)
	oldSelector := "<the old selector>"
	if sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err == nil {
		oldSelector = sel.String()
	}
	p.Items = append(p.Items, initItem{
		Kind: "Deployment", Namespace: ns, Name: name, Action: actionManual,
		Detail: fmt.Sprintf("its selector and pods need %s=%s, so that it does not also select the canary's pods; a Deployment's selector is immutable, so this is not applied: follow the steps", key, stableValue),
		Object: toMap(manifest),
	})
	p.Steps = append(p.Steps,
		fmt.Sprintf("kubectl -n %s get deployment %s -o yaml > %s.backup.yaml   # keep a copy", ns, name, name),
		fmt.Sprintf("meshcanary -n %s init %s --subset-label %s --stable-manifest > %s-stable.yaml   # the Deployment as it must be recreated", ns, name, key, name),
		fmt.Sprintf("kubectl -n %s delete deployment %s --cascade=orphan   # its ReplicaSet and pods stay and keep serving", ns, name),
		fmt.Sprintf("kubectl -n %s apply --server-side --field-manager=%s -f %s-stable.yaml   # recreate it with the new selector", ns, initFieldManager, name),
		fmt.Sprintf("kubectl -n %s rollout status deployment/%s   # wait for the new pods", ns, name),
		fmt.Sprintf("kubectl -n %s delete replicaset -l '%s,!%s'   # the old pods, which no Deployment selects any more", ns, oldSelector, key),
	)
}

// stableManifest is the stable Deployment as it must be recreated: with the
// subset label on selector and pods, without what the API server set.
func stableManifest(d *appsv1.Deployment, key, vsName string) *appsv1.Deployment {
	spec := d.Spec.DeepCopy()
	if spec.Selector == nil {
		spec.Selector = &metav1.LabelSelector{}
	}
	spec.Selector.MatchLabels = withLabel(spec.Selector.MatchLabels, key, stableValue)
	spec.Template.Labels = withLabel(spec.Template.Labels, key, stableValue)
	ann := map[string]string{}
	for k, v := range d.Annotations {
		switch k {
		case "deployment.kubernetes.io/revision", "kubectl.kubernetes.io/last-applied-configuration":
			continue
		}
		ann[k] = v
	}
	if vsName != d.Name {
		ann[annotations.VirtualService] = vsName
	}
	if len(ann) == 0 {
		ann = nil
	}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: d.Name, Namespace: d.Namespace, Labels: maps.Clone(d.Labels), Annotations: ann},
		Spec:       *spec,
	}
}

// optInItem applies the opt-in annotations, and only them.
func optInItem(d *appsv1.Deployment, want map[string]string) initItem {
	item := initItem{Kind: "Deployment", Namespace: d.Namespace, Name: d.Name}
	var changes []string
	for _, k := range sortedKeys(want) {
		cur, ok := d.Annotations[k]
		switch {
		case !ok:
			changes = append(changes, fmt.Sprintf("%s=%s", k, want[k]))
		case cur != want[k] && (k != annotations.Enabled || !annotations.IsEnabled(d.Annotations)):
			// "True" already opts in; only other values are overwritten.
			changes = append(changes, fmt.Sprintf("%s=%s (was %q)", k, want[k], cur))
		}
	}
	if len(changes) == 0 {
		item.Action, item.Detail = actionNone, "already opted in"
		return item
	}
	ann := map[string]any{}
	for k, v := range want {
		ann[k] = v
	}
	item.Action = actionAnnotate
	item.Detail = "opt in: " + strings.Join(changes, ", ")
	item.Object = map[string]any{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata":   map[string]any{"name": d.Name, "namespace": d.Namespace, "annotations": ann},
	}
	return item
}

// toMap converts a typed object for printing and applying, without the
// empty status and timestamps a Go struct always carries.
func toMap(obj runtime.Object) map[string]any {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		// A Deployment always converts; keep the output well-formed anyway.
		return map[string]any{"error": err.Error()}
	}
	return cleanObject(m)
}

// cleanObject removes what the API server owns from an object to print or
// apply.
func cleanObject(m map[string]any) map[string]any {
	delete(m, "status")
	if meta, ok := m["metadata"].(map[string]any); ok {
		for _, k := range []string{"creationTimestamp", "resourceVersion", "uid", "generation", "managedFields", "selfLink"} {
			delete(meta, k)
		}
		if ann, ok := meta["annotations"].(map[string]any); ok {
			delete(ann, "kubectl.kubernetes.io/last-applied-configuration")
			if len(ann) == 0 {
				delete(meta, "annotations")
			}
		}
	}
	unstructured.RemoveNestedField(m, "spec", "template", "metadata", "creationTimestamp")
	return m
}

func gvrOf(kind string) (schema.GroupVersionResource, string) {
	switch kind {
	case "DestinationRule":
		return drGVR(), "destinationrule.networking.istio.io"
	case "VirtualService":
		return vsGVR(), "virtualservice.networking.istio.io"
	}
	return schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, "deployment.apps"
}

// applyPlan applies the plan's items in order (canary, DestinationRule,
// VirtualService, opt-in last), stopping at the first failure.
func (c *cluster) applyPlan(ctx context.Context, p *initPlan) error {
	for i := range p.Items {
		it := &p.Items[i]
		if err := c.applyItem(ctx, it); err != nil {
			for j := i + 1; j < len(p.Items); j++ {
				if p.Items[j].Action != actionNone && p.Items[j].Action != actionManual {
					p.Items[j].Result = resultSkipped
				}
			}
			_, res := gvrOf(it.Kind)
			return fmt.Errorf("applying %s/%s: %w", res, it.Name, err)
		}
	}
	p.Applied = true
	return nil
}

func (c *cluster) applyItem(ctx context.Context, it *initItem) error {
	gvr, _ := gvrOf(it.Kind)
	client := c.dyn.Resource(gvr).Namespace(it.Namespace)
	switch it.Action {
	case actionCreate, actionAnnotate:
		before, err := client.Get(ctx, it.Name, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		data, err := json.Marshal(it.Object)
		if err != nil {
			return fmt.Errorf("encoding: %w", err)
		}
		// No force: a field another manager owns with another value is a
		// conflict to report, not to take over.
		after, err := client.Patch(ctx, it.Name, types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: initFieldManager})
		if err != nil {
			if apierrors.IsConflict(err) {
				return fmt.Errorf("%w (another tool manages these fields; change them with kubectl, or rerun init after they are removed)", err)
			}
			return err
		}
		switch {
		case before == nil:
			it.Result = resultCreated
		case before.GetResourceVersion() != after.GetResourceVersion():
			it.Result = resultChanged
		default:
			it.Result = resultUnchanged
		}
	case actionAddSubsets:
		// Istio's CRD declares spec.subsets an atomic list, so applying
		// it would take ownership of every subset from the user's field
		// manager; a JSON patch appends the missing subsets only, and
		// fails if the object changed since it was read.
		ops := []map[string]any{{"op": "test", "path": "/metadata/resourceVersion", "value": it.resourceVersion}}
		if it.hasSubsets {
			for _, s := range it.addSubsets {
				ops = append(ops, map[string]any{"op": "add", "path": "/spec/subsets/-", "value": s})
			}
		} else {
			ops = append(ops, map[string]any{"op": "add", "path": "/spec/subsets", "value": it.addSubsets})
		}
		data, err := json.Marshal(ops)
		if err != nil {
			return fmt.Errorf("encoding: %w", err)
		}
		if _, err := client.Patch(ctx, it.Name, types.JSONPatchType, data, metav1.PatchOptions{FieldManager: initFieldManager}); err != nil {
			if apierrors.IsInvalid(err) || apierrors.IsConflict(err) {
				return fmt.Errorf("%w (it changed since it was read; run init again)", err)
			}
			return err
		}
		it.Result = resultChanged
	case actionNone:
		it.Result = resultUnchanged
	case actionManual:
		it.Result = resultSkipped
	default:
		return errors.New("unknown action " + it.Action)
	}
	return nil
}

// renderInitYAML prints the plan as YAML documents kubectl can apply, each
// with a comment saying what it is; objects that need nothing, problems,
// notes and manual steps are comments.
func renderInitYAML(w io.Writer, plan initPlan) error {
	p := newPrinter(w)
	p.printf("# meshcanary init %s: namespace %s, Service %s, subset label %s\n", plan.Deployment, plan.Namespace, plan.Service, plan.SubsetLabel)
	for _, pr := range plan.Problems {
		p.comment("PROBLEM: " + pr)
	}
	for _, it := range plan.Items {
		if it.Action == actionNone || it.Object == nil {
			p.comment(fmt.Sprintf("%s %s/%s: %s: %s", it.Kind, it.Namespace, it.Name, describeAction(it.Action), it.Detail))
		}
	}
	for _, n := range plan.Notes {
		p.comment("Note: " + n)
	}
	for _, it := range plan.Items {
		if it.Action == actionNone || it.Object == nil {
			continue
		}
		b, err := yaml.Marshal(it.Object)
		if err != nil {
			return fmt.Errorf("writing YAML: %w", err)
		}
		p.println("---")
		p.comment(fmt.Sprintf("%s %s/%s: %s: %s", it.Kind, it.Namespace, it.Name, describeAction(it.Action), it.Detail))
		if it.Action == actionManual {
			// Commented out, so that applying init's output as a whole
			// cannot attempt the change Kubernetes refuses.
			p.comment(strings.TrimRight(string(b), "\n"))
			continue
		}
		p.write(b)
	}
	if len(plan.Steps) > 0 {
		p.println("---")
		p.comment("Steps to do by hand, in order:")
		for i, s := range plan.Steps {
			p.comment(fmt.Sprintf("  %d. %s", i+1, s))
		}
	}
	return p.err
}

func describeAction(a string) string {
	switch a {
	case actionCreate:
		return "create"
	case actionAddSubsets:
		return "change"
	case actionAnnotate:
		return "annotate"
	case actionManual:
		return "apply by hand"
	}
	return "unchanged"
}

// comment writes text as YAML comment lines.
func (p *printer) comment(text string) {
	for _, line := range strings.Split(text, "\n") {
		p.println(strings.TrimRight("# "+line, " "))
	}
}

// renderApplied reports what --apply did, kubectl style, then what is left
// to do by hand.
func renderApplied(w io.Writer, plan initPlan) error {
	p := newPrinter(w)
	for _, pr := range plan.Problems {
		p.println("problem: " + pr)
	}
	for _, it := range plan.Items {
		_, res := gvrOf(it.Kind)
		result := it.Result
		switch {
		case it.Action == actionManual:
			result = "not applied: " + it.Detail
		case result == "":
			result = "not applied"
		default:
			result += " (" + it.Detail + ")"
		}
		p.printf("%s/%s %s\n", res, it.Name, result)
	}
	for _, n := range plan.Notes {
		p.println("Note: " + n)
	}
	if len(plan.Steps) == 0 {
		return p.err
	}
	p.println()
	p.println("Steps to do by hand, in order:")
	for i, s := range plan.Steps {
		p.printf("  %d. %s\n", i+1, s)
	}
	for _, it := range plan.Items {
		if it.Action != actionManual || it.Object == nil {
			continue
		}
		b, err := yaml.Marshal(it.Object)
		if err != nil {
			return fmt.Errorf("writing YAML: %w", err)
		}
		p.printf("\n# %s %s/%s: apply by hand\n%s", it.Kind, it.Namespace, it.Name, b)
	}
	return p.err
}
