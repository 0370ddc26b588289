package virtualservice

import "fmt"

// RouteAnnotation is the annotation users set to choose the managed route
// when more than one would fit; it is named in error messages only, reading
// it is the caller's business.
const RouteAnnotation = "meshcanary.io/route"

// Target names what meshcanary manages in a VirtualService.
type Target struct {
	// Route is the name of the HTTP route to manage; "" means the only HTTP
	// route that has destinations for both subsets.
	Route        string
	StableSubset string // e.g. "stable"
	CanarySubset string // e.g. "canary"
	// Namespace is the VirtualService's namespace, used to resolve short
	// host names; "" falls back to metadata.namespace of the object.
	Namespace string
}

// Managed is where the managed weights are and what they are now.
type Managed struct {
	RouteIndex  int    // index in spec.http
	RouteName   string // "" if the route has no name
	Host        string // destination host of the stable destination, as written; the canary's names the same service
	StableIndex int    // index in spec.http[RouteIndex].route
	CanaryIndex int
	// StableWeight and CanaryWeight are the weights as they are now. A
	// missing (or null) canary weight reads as 0. A missing stable weight
	// reads as 100−ForeignWeight when the canary weight is missing too, else
	// as 0: a route written before meshcanary arrived typically has no
	// weights at all and Istio sends all of it to the first destination,
	// which is then stable.
	StableWeight  int
	CanaryWeight  int
	ForeignWeight int // sum of the weights of the other destinations in the route, which are kept as they are

	hasName       bool
	canaryHost    string
	stablePresent bool // the weight key is there and not null, so it can be tested
	canaryPresent bool
}

// Edit is the result of SetCanaryWeight.
type Edit struct {
	Managed Managed   // found before the edit
	Ops     []PatchOp // RFC 6902 ops: `test` ops first, then `replace`/`add` of the two weights only
	// Changed is false when the weights already are the desired ones, as
	// read by Find (a missing canary weight already is 0); Ops is then empty.
	Changed bool
	// Result is a deep copy of the input with the edit applied; the input is
	// never mutated. Weights written are int64, as in unstructured content.
	Result map[string]any
}

// Find locates the managed route and destinations of t in obj and reads
// their weights. An object that does not fit is reported as a *FitError.
func Find(obj map[string]any, t Target) (Managed, error) {
	if err := t.validate(); err != nil {
		return Managed{}, err
	}
	if t.Namespace == "" {
		t.Namespace = metadataString(obj, "namespace")
	}
	f := finder{t: t, object: objectName(obj)}
	return f.find(obj)
}

// SetCanaryWeight computes the edit that gives the canary destination of t
// the weight canary (0..100) and the stable destination the rest of what the
// other destinations leave, i.e. 100−ForeignWeight−canary. When the other
// destinations leave less than canary, canary is clamped to what they leave,
// so the weights of the managed route always sum to 100.
func SetCanaryWeight(obj map[string]any, t Target, canary int) (Edit, error) {
	if canary < 0 || canary > 100 {
		return Edit{}, fmt.Errorf("canary weight %d is outside 0..100", canary)
	}
	m, err := Find(obj, t)
	if err != nil {
		return Edit{}, err
	}
	room := 100 - m.ForeignWeight
	canary = min(canary, room)
	stable := room - canary

	copied, ok := deepCopyDepth(obj, 0)
	if !ok {
		return Edit{}, fmt.Errorf("object nests deeper than %d levels; is it cyclic?", maxDepth)
	}
	result, _ := copied.(map[string]any)
	e := Edit{Managed: m, Result: result}
	if m.StableWeight == stable && m.CanaryWeight == canary {
		return e, nil
	}

	dests, err := routeDestinations(result, m.RouteIndex)
	if err != nil {
		// Find has vetted this path in the same object; reaching here means a
		// bug in this package, not a user error.
		return Edit{}, fmt.Errorf("internal error: managed route vanished from the copy: %w", err)
	}
	e.Changed = true
	e.Ops = m.ops(t, stable, canary)
	setWeight(dests, m.StableIndex, stable)
	setWeight(dests, m.CanaryIndex, canary)
	return e, nil
}

// ops are the `test` ops that pin what Find saw, then the two writes. Hosts
// are pinned as well as subsets because an unnamed route is found by index
// only, and a route inserted above it may use the same subset names for
// another service.
func (m Managed) ops(t Target, stable, canary int) []PatchOp {
	route := func(rest ...any) string {
		return pointer(append([]any{"spec", "http", m.RouteIndex}, rest...)...)
	}
	var tests, writes []PatchOp
	if m.hasName {
		tests = append(tests, PatchOp{Op: OpTest, Path: route("name"), Value: m.RouteName})
	}
	sides := []struct {
		index        int
		host, subset string
		present      bool
		now, want    int
	}{
		{m.StableIndex, m.Host, t.StableSubset, m.stablePresent, m.StableWeight, stable},
		{m.CanaryIndex, m.canaryHost, t.CanarySubset, m.canaryPresent, m.CanaryWeight, canary},
	}
	for _, d := range sides {
		tests = append(tests,
			PatchOp{Op: OpTest, Path: route("route", d.index, "destination", "host"), Value: d.host},
			PatchOp{Op: OpTest, Path: route("route", d.index, "destination", "subset"), Value: d.subset},
		)
		weight := route("route", d.index, "weight")
		// "add" creates a missing key and overwrites a null one alike, where
		// "replace" fails on a missing key.
		op := OpAdd
		if d.present {
			// int64, like the value the server encodes, so that the
			// byte-wise comparison of `test` holds for 30 read as 30.0.
			tests = append(tests, PatchOp{Op: OpTest, Path: weight, Value: int64(d.now)})
			op = OpReplace
		}
		writes = append(writes, PatchOp{Op: op, Path: weight, Value: int64(d.want)})
	}
	return append(tests, writes...)
}
