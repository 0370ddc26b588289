package meshsim

import (
	"math/rand/v2"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

const (
	unknown = "unknown"

	clusterDomain = "svc.cluster.local"

	flagNone              = "-"
	flagNoHealthyUpstream = "UH"
	// flagNoCluster is what Envoy reports when a route names a cluster that
	// does not exist, as with a subset no DestinationRule defines.
	flagNoCluster = "NC"
)

func virtualServiceGVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
}

func destinationRuleGVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "destinationrules"}
}

// nsWatch is the cached state of one namespace.
type nsWatch struct {
	namespace        string
	pods             corelisters.PodLister
	services         corelisters.ServiceLister
	virtualServices  cache.GenericLister
	destinationRules cache.GenericLister
}

// plan is the routing of one service frozen for one step.
type plan struct {
	targets []target
	total   int
	// noRoute is the destination reported when no target has weight.
	noRoute destService
}

type target struct {
	weight int
	dest   destService
	// flags is set when Envoy would fail before picking an endpoint.
	flags string
	pods  []*podInfo
}

type destService struct {
	fqdn, name string
}

// outcome is one simulated request.
type outcome struct {
	dest      destService
	pod       *podInfo // nil when no pod was reached
	code      int
	flags     string
	latencyMs float64
}

func (p *plan) serve(rng *rand.Rand) outcome {
	if p.total <= 0 {
		return outcome{dest: p.noRoute, code: 503, flags: flagNoCluster}
	}
	r := rng.IntN(p.total)
	var t *target
	for i := range p.targets {
		if r < p.targets[i].weight {
			t = &p.targets[i]
			break
		}
		r -= p.targets[i].weight
	}
	if t.flags != "" {
		return outcome{dest: t.dest, code: 503, flags: t.flags}
	}
	if len(t.pods) == 0 {
		return outcome{dest: t.dest, code: 503, flags: flagNoHealthyUpstream}
	}
	pod := t.pods[rng.IntN(len(t.pods))]
	code := 200
	if pod.errorRate > 0 && rng.Float64() < pod.errorRate {
		code = 500
	}
	return outcome{dest: t.dest, pod: pod, code: code, flags: flagNone, latencyMs: pod.sampleLatencyMs(rng)}
}

// planFor reads the caches once and resolves every destination of the
// default route down to its endpoints.
func (s *Sim) planFor(svc Service) *plan {
	w := s.watches[svc.Namespace]
	fqdn := qualify(svc.Host, svc.Namespace)
	self := destService{fqdn: fqdn, name: svc.Host}
	dests, ok := w.defaultRoute(fqdn)
	if !ok {
		return &plan{
			targets: []target{{weight: 100, dest: self, pods: s.endpoints(svc.Namespace, svc.Host, nil)}},
			total:   100,
			noRoute: self,
		}
	}
	p := &plan{noRoute: self}
	for _, d := range dests {
		if d.weight <= 0 {
			continue
		}
		name, ns, inCluster := splitServiceFQDN(d.host)
		t := target{weight: d.weight, dest: destService{fqdn: d.host, name: name}}
		if !inCluster {
			t.dest.name = d.host
		}
		switch {
		case !inCluster:
			// A host outside the cluster has no pods to pick from here.
		case d.subset == "":
			t.pods = s.endpoints(ns, name, nil)
		default:
			dw := s.watches[ns]
			if dw == nil {
				break
			}
			sel, found := dw.subsetLabels(d.host, d.subset)
			if !found {
				t.flags = flagNoCluster
				break
			}
			t.pods = s.endpoints(ns, name, sel)
		}
		p.targets = append(p.targets, t)
		p.total += d.weight
	}
	return p
}

// endpoints are the Ready pods of a Service, narrowed by subset labels. A
// missing Service leaves only the subset labels to select by, which lets
// tests route to pods without creating Services.
func (s *Sim) endpoints(namespace, name string, subset map[string]string) []*podInfo {
	w := s.watches[namespace]
	if w == nil {
		return nil
	}
	var selectors []labels.Selector
	svc, err := w.services.Services(namespace).Get(name)
	switch {
	case err == nil:
		// Kubernetes makes no endpoints for a Service without selector.
		if len(svc.Spec.Selector) == 0 {
			return nil
		}
		selectors = append(selectors, labels.SelectorFromSet(svc.Spec.Selector))
	case apierrors.IsNotFound(err):
		if len(subset) == 0 {
			return nil
		}
	default:
		return nil
	}
	if len(subset) > 0 {
		selectors = append(selectors, labels.SelectorFromSet(subset))
	}
	pods, err := w.pods.Pods(namespace).List(selectors[0])
	if err != nil {
		return nil
	}
	var out []*podInfo
	for _, pod := range pods {
		if !podReady(pod) || !matchesAll(selectors[1:], pod) {
			continue
		}
		out = append(out, newPodInfo(pod))
	}
	// Lister order is map order; sorting keeps a seed's traffic repeatable.
	slices.SortFunc(out, func(a, b *podInfo) int { return strings.Compare(a.name, b.name) })
	return out
}

func matchesAll(sels []labels.Selector, pod *corev1.Pod) bool {
	for _, sel := range sels {
		if !sel.Matches(labels.Set(pod.Labels)) {
			return false
		}
	}
	return true
}

type routeDest struct {
	host   string // qualified
	subset string
	weight int
}

// defaultRoute finds the VirtualService for host and returns the
// destinations of the route a plain request takes; ok is false when no
// VirtualService applies.
func (w *nsWatch) defaultRoute(host string) (dests []routeDest, ok bool) {
	objs, err := w.virtualServices.ByNamespace(w.namespace).List(labels.Everything())
	if err != nil {
		return nil, false
	}
	vss := sortedUnstructured(objs)
	var exact, wild *unstructured.Unstructured
	for _, vs := range vss {
		if !appliesToMesh(vs) {
			continue
		}
		hosts, _, _ := unstructured.NestedStringSlice(vs.Object, "spec", "hosts")
		for _, h := range hosts {
			q := qualify(h, vs.GetNamespace())
			if q == host && exact == nil {
				exact = vs
			} else if wild == nil && hostMatchesWildcard(q, host) {
				wild = vs
			}
		}
	}
	vs := exact
	if vs == nil {
		vs = wild
	}
	if vs == nil {
		return nil, false
	}
	routes, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
	if len(routes) == 0 {
		// Istio would send such a host nowhere; treating it as having no
		// usable route makes the misconfiguration visible as 503 NC.
		return nil, true
	}
	chosen, _ := routes[0].(map[string]any)
	for _, r := range routes {
		m, _ := r.(map[string]any)
		if m == nil {
			continue
		}
		if matches, _ := m["match"].([]any); len(matches) == 0 {
			chosen = m
			break
		}
	}
	raw, _ := chosen["route"].([]any)
	for _, r := range raw {
		m, _ := r.(map[string]any)
		if m == nil {
			continue
		}
		d := routeDest{}
		if dst, _ := m["destination"].(map[string]any); dst != nil {
			h, _ := dst["host"].(string)
			d.host = qualify(h, vs.GetNamespace())
			d.subset, _ = dst["subset"].(string)
		}
		if wv, present := m["weight"]; present {
			d.weight = toInt(wv)
		} else if len(raw) == 1 {
			d.weight = 100
		}
		dests = append(dests, d)
	}
	return dests, true
}

// subsetLabels finds a subset among the DestinationRules for host, merging
// several rules by subset name with the oldest rule winning.
func (w *nsWatch) subsetLabels(host, subset string) (map[string]string, bool) {
	objs, err := w.destinationRules.ByNamespace(w.namespace).List(labels.Everything())
	if err != nil {
		return nil, false
	}
	var wildcard []*unstructured.Unstructured
	for _, dr := range sortedUnstructured(objs) {
		h, _, _ := unstructured.NestedString(dr.Object, "spec", "host")
		q := qualify(h, dr.GetNamespace())
		if q == host {
			if sel, ok := findSubset(dr, subset); ok {
				return sel, true
			}
		} else if hostMatchesWildcard(q, host) {
			wildcard = append(wildcard, dr)
		}
	}
	// Istio only falls back to a wildcard rule when no exact one exists;
	// checking them after all exact rules is the same for subset lookup.
	for _, dr := range wildcard {
		if sel, ok := findSubset(dr, subset); ok {
			return sel, true
		}
	}
	return nil, false
}

func findSubset(dr *unstructured.Unstructured, name string) (map[string]string, bool) {
	subsets, _, _ := unstructured.NestedSlice(dr.Object, "spec", "subsets")
	for _, raw := range subsets {
		m, _ := raw.(map[string]any)
		if m == nil || m["name"] != name {
			continue
		}
		sel := map[string]string{}
		lbls, _ := m["labels"].(map[string]any)
		for k, v := range lbls {
			if s, ok := v.(string); ok {
				sel[k] = s
			}
		}
		return sel, true
	}
	return nil, false
}

func appliesToMesh(vs *unstructured.Unstructured) bool {
	gws, found, _ := unstructured.NestedStringSlice(vs.Object, "spec", "gateways")
	return !found || len(gws) == 0 || slices.Contains(gws, "mesh")
}

// sortedUnstructured orders objects oldest first, as Istio resolves
// conflicts between configs in favour of the oldest.
func sortedUnstructured(objs []runtime.Object) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, o := range objs {
		if u, ok := o.(*unstructured.Unstructured); ok {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b *unstructured.Unstructured) int {
		ta, tb := a.GetCreationTimestamp(), b.GetCreationTimestamp()
		if !ta.Equal(&tb) {
			if ta.Before(&tb) {
				return -1
			}
			return 1
		}
		return strings.Compare(a.GetName(), b.GetName())
	})
	return out
}

// qualify expands a host the way Istio does: only a name without a dot is
// taken relative to the config's namespace; "reviews.default" stays as is.
func qualify(host, namespace string) string {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "" || host == "*" || strings.Contains(host, ".") {
		return host
	}
	return host + "." + namespace + "." + clusterDomain
}

func hostMatchesWildcard(pattern, host string) bool {
	if pattern == "*" {
		return true
	}
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		return strings.HasSuffix(host, suffix)
	}
	return false
}

// splitServiceFQDN splits name.namespace.svc.cluster.local.
func splitServiceFQDN(fqdn string) (name, namespace string, ok bool) {
	rest, ok := strings.CutSuffix(fqdn, "."+clusterDomain)
	if !ok {
		return "", "", false
	}
	name, namespace, ok = strings.Cut(rest, ".")
	if !ok || name == "" || namespace == "" || strings.Contains(namespace, ".") {
		return "", "", false
	}
	return name, namespace, true
}

func toInt(v any) int {
	var n int64
	switch x := v.(type) {
	case int64:
		n = x
	case int:
		n = int64(x)
	case int32:
		n = int64(x)
	case float64:
		n = int64(x)
	default:
		return 0
	}
	if n < 0 {
		return 0
	}
	return int(n)
}
