package virtualservice

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

func (t Target) validate() error {
	switch {
	case t.StableSubset == "" || t.CanarySubset == "":
		return fmt.Errorf("invalid target: both subsets must be named (stable %q, canary %q)", t.StableSubset, t.CanarySubset)
	case t.StableSubset == t.CanarySubset:
		return fmt.Errorf("invalid target: stable and canary subsets are both %q", t.StableSubset)
	}
	return nil
}

// finder carries what every FitError needs.
type finder struct {
	t      Target
	object string
}

func (f finder) fail(field, expected, found string) *FitError {
	return &FitError{Object: f.object, Field: field, Expected: expected, Found: found}
}

func (f finder) bothSubsets() string {
	return fmt.Sprintf("subsets %s and %s", quote(f.t.StableSubset), quote(f.t.CanarySubset))
}

func (f finder) find(obj map[string]any) (Managed, error) {
	routes, err := f.httpRoutes(obj)
	if err != nil {
		return Managed{}, err
	}
	var index int
	if f.t.Route != "" {
		index, err = f.routeByName(routes)
	} else {
		index, err = f.onlyCandidate(routes)
	}
	if err != nil {
		return Managed{}, err
	}
	return f.inspect(routes, index)
}

func (f finder) httpRoutes(obj map[string]any) ([]any, error) {
	specValue, ok := obj["spec"]
	if !ok || specValue == nil {
		return nil, f.fail("spec", "a VirtualService spec with an http section", "none")
	}
	spec, ok := specValue.(map[string]any)
	if !ok {
		return nil, f.fail("spec", "an object", describe(specValue))
	}
	httpValue, ok := spec["http"]
	if !ok || httpValue == nil {
		found := "none"
		if others := otherSections(spec); others != "" {
			found = "none (only " + others + ")"
		}
		return nil, f.fail("spec.http", "a list of HTTP routes with destinations for "+f.bothSubsets(), found)
	}
	routes, ok := httpValue.([]any)
	if !ok {
		return nil, f.fail("spec.http", "a list of HTTP routes", describe(httpValue))
	}
	if len(routes) == 0 {
		return nil, f.fail("spec.http", "a list of HTTP routes with destinations for "+f.bothSubsets(), "an empty list")
	}
	return routes, nil
}

// otherSections names the non-HTTP route sections, because a VirtualService
// with only tcp or tls routes is a common mistake that deserves a clear word.
func otherSections(spec map[string]any) string {
	_, tls := spec["tls"]
	_, tcp := spec["tcp"]
	switch {
	case tls && tcp:
		return "tls and tcp routes"
	case tls:
		return "tls routes"
	case tcp:
		return "tcp routes"
	}
	return ""
}

func (f finder) routeByName(routes []any) (int, error) {
	field := fmt.Sprintf("spec.http[name=%s]", quote(f.t.Route))
	var matches []string
	index := -1
	for i, r := range routes {
		if name, ok := routeName(r); ok && name == f.t.Route {
			matches = append(matches, fmt.Sprintf("spec.http[%d]", i))
			index = i
		}
	}
	switch len(matches) {
	case 0:
		return 0, &FitError{
			Object:   f.object,
			Field:    field,
			Expected: "a route named " + quote(f.t.Route),
			Found:    "routes " + routeList(routes),
			Hint:     "fix the " + RouteAnnotation + " annotation or the route's name",
		}
	case 1:
		return index, nil
	}
	return 0, f.fail(field, "one route named "+quote(f.t.Route), fmt.Sprintf("%d (%s)", len(matches), listed(matches)))
}

// onlyCandidate picks the one route with destinations for both subsets. A
// lone route is picked even when it does not fit, so that inspect can say
// precisely what is missing in it.
func (f finder) onlyCandidate(routes []any) (int, error) {
	if len(routes) == 1 {
		return 0, nil
	}
	var candidates []int
	for i, r := range routes {
		if f.hasBothSubsets(r) {
			candidates = append(candidates, i)
		}
	}
	switch len(candidates) {
	case 1:
		return candidates[0], nil
	case 0:
		return 0, f.fail("spec.http",
			"a route with destinations for "+f.bothSubsets(),
			"none among routes "+routeList(routes))
	}
	return 0, &FitError{
		Object:   f.object,
		Field:    "spec.http",
		Expected: "one route with destinations for " + f.bothSubsets(),
		Found:    fmt.Sprintf("%d (%s)", len(candidates), routeListAt(routes, candidates)),
		Hint:     "set the " + RouteAnnotation + " annotation to choose one",
	}
}

func (f finder) hasBothSubsets(r any) bool {
	route, _ := r.(map[string]any)
	dests, _ := route["route"].([]any)
	var stable, canary bool
	for _, d := range dests {
		dest, _ := d.(map[string]any)
		destination, _ := dest["destination"].(map[string]any)
		switch subset, _ := destination["subset"].(string); subset {
		case f.t.StableSubset:
			stable = true
		case f.t.CanarySubset:
			canary = true
		}
	}
	return stable && canary
}

// destination is what inspect learns about one entry of a route's list.
type destination struct {
	index   int
	host    string
	weight  int64
	present bool
}

func (f finder) inspect(routes []any, index int) (Managed, error) {
	base := fmt.Sprintf("spec.http[%d]", index)
	route, ok := routes[index].(map[string]any)
	if !ok {
		return Managed{}, f.fail(base, "an HTTP route object", describe(routes[index]))
	}
	m := Managed{RouteIndex: index}
	if v, ok := route["name"]; ok && v != nil {
		name, ok := v.(string)
		if !ok {
			return Managed{}, f.fail(base+".name", "a string", describe(v))
		}
		m.RouteName, m.hasName = name, true
	}
	if d, ok := route["delegate"]; ok && d != nil {
		return Managed{}, &FitError{
			Object:   f.object,
			Field:    base + ".delegate",
			Expected: "a route with its own destinations for " + f.bothSubsets(),
			Found:    "a delegate" + delegateName(d) + ", which has no destinations",
			Hint:     "manage the delegate VirtualService instead, or choose another route",
		}
	}
	destsValue, ok := route["route"]
	if !ok || destsValue == nil {
		return Managed{}, f.fail(base+".route", "a list of destinations for "+f.bothSubsets(), "none")
	}
	dests, ok := destsValue.([]any)
	if !ok {
		return Managed{}, f.fail(base+".route", "a list of destinations", describe(destsValue))
	}

	var stable, canary *destination
	var foreign int64
	var subsets []string
	for j, entry := range dests {
		path := fmt.Sprintf("%s.route[%d]", base, j)
		d, subset, err := f.destination(entry, path, j)
		if err != nil {
			return Managed{}, err
		}
		subsets = append(subsets, subset)
		var slot **destination
		switch subset {
		case f.t.StableSubset:
			slot = &stable
		case f.t.CanarySubset:
			slot = &canary
		default:
			// Each weight is bounded by maxWeight, so the sum cannot
			// overflow before it is checked.
			foreign += d.weight
			if foreign > 100 {
				return Managed{}, f.fail(base+".route",
					"weights of the destinations other than "+f.bothSubsets()+" summing to at most 100",
					fmt.Sprintf("%d once %s.weight is added", foreign, path))
			}
			continue
		}
		if *slot != nil {
			return Managed{}, f.fail(path+".destination.subset",
				"one destination with subset "+quote(subset),
				fmt.Sprintf("a second one (%s.route[%d] and route[%d])", base, (*slot).index, j))
		}
		*slot = &d
	}
	for _, s := range []struct {
		d      *destination
		subset string
	}{{stable, f.t.StableSubset}, {canary, f.t.CanarySubset}} {
		if s.d == nil {
			found := "no destinations"
			if len(subsets) > 0 {
				found = "subsets " + subsetList(subsets)
			}
			return Managed{}, f.fail(base+".route", "a destination with subset "+quote(s.subset), found)
		}
	}
	for _, d := range []*destination{stable, canary} {
		if d.host == "" {
			return Managed{}, f.fail(fmt.Sprintf("%s.route[%d].destination.host", base, d.index), "a host", "none")
		}
	}
	if !HostsEqual(stable.host, canary.host, f.t.Namespace) {
		return Managed{}, f.fail(fmt.Sprintf("%s.route[%d].destination.host", base, canary.index),
			quote(stable.host)+", the host of the "+quote(f.t.StableSubset)+" destination",
			quote(canary.host))
	}

	m.Host, m.canaryHost = stable.host, canary.host
	m.StableIndex, m.CanaryIndex = stable.index, canary.index
	m.ForeignWeight = int(foreign)
	m.stablePresent, m.canaryPresent = stable.present, canary.present
	m.StableWeight, m.CanaryWeight = int(stable.weight), int(canary.weight)
	if !stable.present && !canary.present {
		m.StableWeight = 100 - m.ForeignWeight
	}
	return m, nil
}

// destination reads one entry of a route's destination list. Entries that are
// not managed are checked too: a malformed one means the object is not what
// Istio accepted, and guessing around it could misplace traffic.
func (f finder) destination(entry any, path string, index int) (destination, string, error) {
	d := destination{index: index}
	dest, ok := entry.(map[string]any)
	if !ok {
		return d, "", f.fail(path, "a destination object", describe(entry))
	}
	if v, ok := dest["weight"]; ok && v != nil {
		w, ok := asInt(v)
		if !ok {
			return d, "", f.fail(path+".weight", "an integer weight", describe(v))
		}
		if w < 0 {
			return d, "", f.fail(path+".weight", "a weight of 0 or more", describe(v))
		}
		if w > maxWeight {
			return d, "", f.fail(path+".weight", "a weight Istio can hold (at most 2147483647)", describe(v))
		}
		d.weight, d.present = w, true
	}
	target, ok := dest["destination"].(map[string]any)
	if !ok {
		return d, "", f.fail(path+".destination", "an object with host and subset", describe(dest["destination"]))
	}
	var subset string
	if v, ok := target["subset"]; ok && v != nil {
		if subset, ok = v.(string); !ok {
			return d, "", f.fail(path+".destination.subset", "a string", describe(v))
		}
	}
	if v, ok := target["host"]; ok && v != nil {
		if d.host, ok = v.(string); !ok {
			return d, "", f.fail(path+".destination.host", "a string", describe(v))
		}
	}
	return d, subset, nil
}

// routeName is the name of a route, if it is a route and has a name.
func routeName(r any) (string, bool) {
	route, _ := r.(map[string]any)
	name, ok := route["name"].(string)
	return name, ok && name != ""
}

// routeList lists all routes for a message, by name or else by index.
func routeList(routes []any) string {
	all := make([]int, len(routes))
	for i := range routes {
		all[i] = i
	}
	return routeListAt(routes, all)
}

func routeListAt(routes []any, indexes []int) string {
	labels := make([]string, len(indexes))
	for n, i := range indexes {
		if name, ok := routeName(routes[i]); ok {
			labels[n] = quote(name)
		} else {
			labels[n] = "spec.http[" + strconv.Itoa(i) + "] (unnamed)"
		}
	}
	return listed(labels)
}

func subsetList(subsets []string) string {
	labels := make([]string, len(subsets))
	for i, s := range subsets {
		if s == "" {
			labels[i] = "(none)"
		} else {
			labels[i] = quote(s)
		}
	}
	return listed(labels)
}

// listed joins labels for a message, cutting long lists short so that an odd
// object cannot produce an error message of unbounded size.
func listed(labels []string) string {
	const maxListed = 10
	if len(labels) > maxListed {
		more := fmt.Sprintf("and %d more", len(labels)-maxListed)
		labels = append(labels[:maxListed:maxListed], more)
	}
	return strings.Join(labels, ", ")
}

func delegateName(d any) string {
	m, _ := d.(map[string]any)
	name, _ := m["name"].(string)
	ns, _ := m["namespace"].(string)
	switch {
	case name != "" && ns != "":
		return " to " + quote(ns+"/"+name)
	case name != "":
		return " to " + quote(name)
	}
	return ""
}

// objectName names the object in errors the way kubectl users know it.
func objectName(obj map[string]any) string {
	kind, _ := obj["kind"].(string)
	if kind == "" {
		kind = "VirtualService"
	}
	name := metadataString(obj, "name")
	if name == "" {
		return kind
	}
	if ns := metadataString(obj, "namespace"); ns != "" {
		name = ns + "/" + name
	}
	// Quote only names that need it, so ordinary ones read as kubectl shows them.
	if q := quote(name); q != `"`+name+`"` {
		name = q
	}
	return kind + " " + name
}

func metadataString(obj map[string]any, key string) string {
	meta, _ := obj["metadata"].(map[string]any)
	s, _ := meta[key].(string)
	return s
}

// routeDestinations returns the destination list of spec.http[index] in obj.
func routeDestinations(obj map[string]any, index int) ([]any, error) {
	spec, _ := obj["spec"].(map[string]any)
	routes, _ := spec["http"].([]any)
	if index < 0 || index >= len(routes) {
		return nil, errors.New("no spec.http[" + strconv.Itoa(index) + "]")
	}
	route, _ := routes[index].(map[string]any)
	dests, ok := route["route"].([]any)
	if !ok {
		return nil, errors.New("no spec.http[" + strconv.Itoa(index) + "].route")
	}
	return dests, nil
}

// setWeight writes a weight as int64, the type unstructured content uses, so
// that Result survives runtime.DeepCopyJSON (which panics on int).
func setWeight(dests []any, index, weight int) {
	if index < 0 || index >= len(dests) {
		return
	}
	if d, ok := dests[index].(map[string]any); ok {
		d["weight"] = int64(weight)
	}
}
