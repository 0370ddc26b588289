package virtualservice

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"testing/quick"
)

// vs wraps an http section (YAML, indented as a list under `http:`) into a
// VirtualService shop/reviews.
func vs(t *testing.T, spec string) map[string]any {
	t.Helper()
	obj, err := decodeUnstructured([]byte("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\n  namespace: shop\n" + spec))
	if err != nil {
		t.Fatalf("bad test input: %v", err)
	}
	return obj
}

func TestFindErrors(t *testing.T) {
	cases := []struct {
		name   string
		spec   string
		route  string
		field  string
		substr string
	}{
		{
			name:  "a VirtualService without spec is rejected",
			spec:  "",
			field: "spec", substr: "expected a VirtualService spec with an http section, found none",
		},
		{
			name:  "a spec that is a list is rejected",
			spec:  "spec: [a, b]\n",
			field: "spec", substr: "expected an object, found a list",
		},
		{
			name:  "a VirtualService with only tcp routes has no http section",
			spec:  "spec:\n  tcp:\n  - route:\n    - destination: {host: db}\n",
			field: "spec.http", substr: "found none (only tcp routes)",
		},
		{
			name:  "an http section that is a string is rejected",
			spec:  "spec:\n  http: everything\n",
			field: "spec.http", substr: `found string "everything"`,
		},
		{
			name:  "an empty http section is rejected",
			spec:  "spec:\n  http: []\n",
			field: "spec.http", substr: "found an empty list",
		},
		{
			name: "a route named in the target that does not exist is reported with the routes there are",
			spec: `spec:
  http:
  - name: canary-header
    route: [{destination: {host: reviews, subset: canary}}]
  - name: default
    route: [{destination: {host: reviews, subset: stable}}, {destination: {host: reviews, subset: canary}}]
  - route: [{destination: {host: reviews, subset: stable}}]
`,
			route: "primary",
			field: `spec.http[name="primary"]`, substr: `expected a route named "primary", found routes "canary-header", "default", spec.http[2] (unnamed)`,
		},
		{
			name: "two routes with the requested name are ambiguous",
			spec: `spec:
  http:
  - name: main
    route: [{destination: {host: reviews, subset: stable}}, {destination: {host: reviews, subset: canary}}]
  - name: main
    route: [{destination: {host: reviews, subset: stable}}, {destination: {host: reviews, subset: canary}}]
`,
			route: "main",
			field: `spec.http[name="main"]`, substr: "found 2 (spec.http[0], spec.http[1])",
		},
		{
			name: "a named route without a canary destination says which subsets it has",
			spec: `spec:
  http:
  - name: other
    route: [{destination: {host: reviews, subset: stable}}, {destination: {host: reviews, subset: canary}}]
  - name: main
    route: [{destination: {host: reviews, subset: stable}, weight: 90}, {destination: {host: reviews-legacy, subset: legacy}, weight: 10}]
`,
			route: "main",
			field: "spec.http[1].route", substr: `expected a destination with subset "canary", found subsets "stable", "legacy"`,
		},
		{
			name: "a lone route without a stable destination is reported precisely",
			spec: `spec:
  http:
  - route: [{destination: {host: reviews}}, {destination: {host: reviews, subset: canary}}]
`,
			field: "spec.http[0].route", substr: `expected a destination with subset "stable", found subsets (none), "canary"`,
		},
		{
			name: "two unnamed-target routes with both subsets need the route annotation",
			spec: `spec:
  http:
  - name: a
    route: [{destination: {host: reviews, subset: stable}}, {destination: {host: reviews, subset: canary}}]
  - name: b
    route: [{destination: {host: reviews, subset: stable}}, {destination: {host: reviews, subset: canary}}]
`,
			field: "spec.http", substr: `found 2 ("a", "b"); set the meshcanary.io/route annotation to choose one`,
		},
		{
			name: "several routes of which none has both subsets are listed",
			spec: `spec:
  http:
  - name: a
    route: [{destination: {host: reviews, subset: stable}}]
  - route: [{destination: {host: reviews, subset: canary}}]
`,
			field: "spec.http", substr: `found none among routes "a", spec.http[1] (unnamed)`,
		},
		{
			name: "a canary destination with another host is rejected",
			spec: `spec:
  http:
  - route: [{destination: {host: reviews, subset: stable}}, {destination: {host: other, subset: canary}}]
`,
			field: "spec.http[0].route[1].destination.host", substr: `expected "reviews", the host of the "stable" destination, found "other"`,
		},
		{
			name: "a host in another namespace is another host",
			spec: `spec:
  http:
  - route: [{destination: {host: reviews, subset: stable}}, {destination: {host: reviews.other.svc.cluster.local, subset: canary}}]
`,
			field: "spec.http[0].route[1].destination.host", substr: `found "reviews.other.svc.cluster.local"`,
		},
		{
			name: "a managed destination without a host is rejected",
			spec: `spec:
  http:
  - route: [{destination: {subset: stable}}, {destination: {host: reviews, subset: canary}}]
`,
			field: "spec.http[0].route[0].destination.host", substr: "expected a host, found none",
		},
		{
			name: "a subset appearing twice is ambiguous",
			spec: `spec:
  http:
  - route:
    - {destination: {host: reviews, subset: stable}, weight: 50}
    - {destination: {host: reviews, subset: canary}, weight: 0}
    - {destination: {host: reviews, subset: stable}, weight: 50}
`,
			field: "spec.http[0].route[2].destination.subset", substr: `expected one destination with subset "stable", found a second one (spec.http[0].route[0] and route[2])`,
		},
		{
			name: "a delegate route chosen by name has no destinations to weigh",
			spec: `spec:
  http:
  - name: api
    delegate: {name: api-routes, namespace: shop}
  - name: web
    route: [{destination: {host: reviews, subset: stable}}, {destination: {host: reviews, subset: canary}}]
`,
			route: "api",
			field: "spec.http[0].delegate", substr: `found a delegate to "shop/api-routes", which has no destinations`,
		},
		{
			name: "a weight with a fraction is rejected",
			spec: `spec:
  http:
  - route: [{destination: {host: reviews, subset: stable}, weight: 12.5}, {destination: {host: reviews, subset: canary}, weight: 87.5}]
`,
			field: "spec.http[0].route[0].weight", substr: "expected an integer weight, found number 12.5",
		},
		{
			name: "a weight written as a string is rejected",
			spec: `spec:
  http:
  - route: [{destination: {host: reviews, subset: stable}, weight: "90"}, {destination: {host: reviews, subset: canary}, weight: 10}]
`,
			field: "spec.http[0].route[0].weight", substr: `found string "90"`,
		},
		{
			name: "a negative weight is rejected",
			spec: `spec:
  http:
  - route: [{destination: {host: reviews, subset: stable}, weight: 110}, {destination: {host: reviews, subset: canary}, weight: -10}]
`,
			field: "spec.http[0].route[1].weight", substr: "expected a weight of 0 or more, found number -10",
		},
		{
			name: "a weight beyond what Istio can hold is rejected",
			spec: `spec:
  http:
  - route: [{destination: {host: reviews, subset: stable}, weight: 3000000000}, {destination: {host: reviews, subset: canary}}]
`,
			field: "spec.http[0].route[0].weight", substr: "at most 2147483647",
		},
		{
			name: "foreign weights above 100 leave no room for stable and canary",
			spec: `spec:
  http:
  - route:
    - {destination: {host: reviews, subset: stable}, weight: 0}
    - {destination: {host: reviews, subset: canary}, weight: 0}
    - {destination: {host: a}, weight: 60}
    - {destination: {host: b}, weight: 60}
`,
			field: "spec.http[0].route", substr: "summing to at most 100, found 120 once spec.http[0].route[3].weight is added",
		},
		{
			name:  "a route that is a string is rejected",
			spec:  "spec:\n  http: [reviews]\n",
			field: "spec.http[0]", substr: `expected an HTTP route object, found string "reviews"`,
		},
		{
			name:  "a route name that is not a string is rejected",
			spec:  "spec:\n  http:\n  - name: [x]\n    route: [{destination: {host: reviews, subset: stable}}, {destination: {host: reviews, subset: canary}}]\n",
			field: "spec.http[0].name", substr: "expected a string, found a list",
		},
		{
			name:  "a route without destinations is rejected",
			spec:  "spec:\n  http:\n  - name: empty\n    redirect: {uri: /v2}\n",
			field: "spec.http[0].route", substr: "found none",
		},
		{
			name:  "a destination list that is an object is rejected",
			spec:  "spec:\n  http:\n  - route: {destination: {host: reviews, subset: stable}}\n",
			field: "spec.http[0].route", substr: "expected a list of destinations, found an object",
		},
		{
			name:  "a destination entry without a destination object is rejected",
			spec:  "spec:\n  http:\n  - route: [{weight: 100}, {destination: {host: reviews, subset: canary}}]\n",
			field: "spec.http[0].route[0].destination", substr: "expected an object with host and subset, found null",
		},
		{
			name:  "a subset that is a number is rejected",
			spec:  "spec:\n  http:\n  - route: [{destination: {host: reviews, subset: 1}}, {destination: {host: reviews, subset: canary}}]\n",
			field: "spec.http[0].route[0].destination.subset", substr: "expected a string, found number 1",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := vs(t, tc.spec)
			target := stableCanary(tc.route)
			_, err := Find(obj, target)
			if err == nil {
				t.Fatal("Find succeeded")
			}
			// Callers wrap; errors.As must still reach the FitError.
			var fit *FitError
			if !errors.As(fmt.Errorf("reconcile shop/reviews: %w", err), &fit) {
				t.Fatalf("error %q (%T) is not a *FitError", err, err)
			}
			if fit.Field != tc.field {
				t.Errorf("Field: got %q, want %q", fit.Field, tc.field)
			}
			if !strings.Contains(err.Error(), tc.substr) {
				t.Errorf("message %q does not contain %q", err, tc.substr)
			}
			if !strings.HasPrefix(err.Error(), "VirtualService shop/reviews: "+tc.field+": ") {
				t.Errorf("message %q does not start with the object and field", err)
			}
			// SetCanaryWeight fails the same way.
			_, err2 := SetCanaryWeight(obj, target, 10)
			var fit2 *FitError
			if !errors.As(err2, &fit2) || !reflect.DeepEqual(fit2, fit) {
				t.Errorf("SetCanaryWeight: got %v, want %v", err2, err)
			}
		})
	}
}

func TestSetCanaryWeightRejectsBadArguments(t *testing.T) {
	obj := vs(t, "spec:\n  http:\n  - route: [{destination: {host: reviews, subset: stable}}, {destination: {host: reviews, subset: canary}}]\n")
	cases := []struct {
		name   string
		target Target
		canary int
		substr string
	}{
		{"a negative canary weight is an error", stableCanary(""), -1, "outside 0..100"},
		{"a canary weight above 100 is an error", stableCanary(""), 101, "outside 0..100"},
		{"a target without a canary subset is an error", Target{StableSubset: "stable"}, 10, "both subsets must be named"},
		{"a target with the same subset twice is an error", Target{StableSubset: "v1", CanarySubset: "v1"}, 10, `both "v1"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := SetCanaryWeight(obj, tc.target, tc.canary)
			if err == nil || !strings.Contains(err.Error(), tc.substr) {
				t.Fatalf("got %v, want an error containing %q", err, tc.substr)
			}
			var fit *FitError
			if errors.As(err, &fit) {
				t.Errorf("a caller mistake is reported as a FitError: %v", err)
			}
		})
	}
}

func TestOpsPinWhatFindSaw(t *testing.T) {
	cases := []struct {
		name  string
		spec  string
		route string
		want  string
	}{
		{
			name:  "a named route with both weights present is tested, then replaced",
			route: "a~b/c",
			spec: `spec:
  http:
  - name: header
    route: [{destination: {host: reviews, subset: canary}}]
  - name: a~b/c
    route:
    - {destination: {host: reviews-legacy, subset: legacy}, weight: 0}
    - {destination: {host: reviews.shop, subset: canary}, weight: 0}
    - {destination: {host: reviews, subset: stable}, weight: 100}
`,
			want: `[` +
				`{"op":"test","path":"/spec/http/1/name","value":"a~b/c"},` +
				`{"op":"test","path":"/spec/http/1/route/2/destination/host","value":"reviews"},` +
				`{"op":"test","path":"/spec/http/1/route/2/destination/subset","value":"stable"},` +
				`{"op":"test","path":"/spec/http/1/route/2/weight","value":100},` +
				`{"op":"test","path":"/spec/http/1/route/1/destination/host","value":"reviews.shop"},` +
				`{"op":"test","path":"/spec/http/1/route/1/destination/subset","value":"canary"},` +
				`{"op":"test","path":"/spec/http/1/route/1/weight","value":0},` +
				`{"op":"replace","path":"/spec/http/1/route/2/weight","value":90},` +
				`{"op":"replace","path":"/spec/http/1/route/1/weight","value":10}]`,
		},
		{
			name: "an unnamed route with missing weights gets add ops and no weight tests",
			spec: `spec:
  http:
  - route: [{destination: {host: reviews, subset: stable}}, {destination: {host: reviews, subset: canary}, weight: null}]
`,
			want: `[` +
				`{"op":"test","path":"/spec/http/0/route/0/destination/host","value":"reviews"},` +
				`{"op":"test","path":"/spec/http/0/route/0/destination/subset","value":"stable"},` +
				`{"op":"test","path":"/spec/http/0/route/1/destination/host","value":"reviews"},` +
				`{"op":"test","path":"/spec/http/0/route/1/destination/subset","value":"canary"},` +
				`{"op":"add","path":"/spec/http/0/route/0/weight","value":90},` +
				`{"op":"add","path":"/spec/http/0/route/1/weight","value":10}]`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := vs(t, tc.spec)
			pristine, _ := deepCopy(obj).(map[string]any)
			e, err := SetCanaryWeight(obj, stableCanary(tc.route), 10)
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.PatchJSON()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("patch:\ngot  %s\nwant %s", got, tc.want)
			}
			if err := checkEdit(obj, pristine, stableCanary(tc.route), 10, e); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestPatchIsRejectedAfterAConcurrentChange(t *testing.T) {
	const spec = `spec:
  http:
  - name: main
    route: [{destination: {host: reviews, subset: stable}, weight: 100}, {destination: {host: reviews, subset: canary}, weight: 0}]
`
	cases := []struct {
		name   string
		change func(http []any) []any
	}{
		{"a route inserted above the managed route makes the patch fail", func(http []any) []any {
			inserted := map[string]any{"name": "new", "route": []any{
				map[string]any{"destination": map[string]any{"host": "reviews", "subset": "stable"}, "weight": 100.0},
				map[string]any{"destination": map[string]any{"host": "reviews", "subset": "canary"}, "weight": 0.0},
			}}
			return append([]any{inserted}, http...)
		}},
		{"a canary weight changed by hand makes the patch fail", func(http []any) []any {
			dest(http, 0, 1)["weight"] = 5.0
			return http
		}},
		{"a renamed stable subset makes the patch fail", func(http []any) []any {
			dest(http, 0, 0)["destination"].(map[string]any)["subset"] = "v1"
			return http
		}},
		{"a renamed route makes the patch fail", func(http []any) []any {
			http[0].(map[string]any)["name"] = "primary"
			return http
		}},
		{"a destination pointed at another host makes the patch fail", func(http []any) []any {
			dest(http, 0, 1)["destination"].(map[string]any)["host"] = "ratings"
			return http
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := vs(t, spec)
			e, err := SetCanaryWeight(obj, stableCanary(""), 10)
			if err != nil {
				t.Fatal(err)
			}
			patch, err := e.PatchJSON()
			if err != nil {
				t.Fatal(err)
			}
			// The server's copy moved on after obj was read.
			server, _ := normalize(obj)
			serverSpec := server.(map[string]any)["spec"].(map[string]any)
			serverSpec["http"] = tc.change(serverSpec["http"].([]any))
			doc, _ := json.Marshal(server)
			if _, err := applyPatch(doc, patch); !errors.Is(err, errTestFailed) {
				t.Fatalf("patch applied to a changed object: err %v", err)
			}
		})
	}
	t.Run("an unchanged object takes the patch", func(t *testing.T) {
		obj := vs(t, spec)
		e, err := SetCanaryWeight(obj, stableCanary(""), 10)
		if err != nil {
			t.Fatal(err)
		}
		patch, _ := e.PatchJSON()
		doc, _ := json.Marshal(obj)
		if _, err := applyPatch(doc, patch); err != nil {
			t.Fatal(err)
		}
	})
}

func dest(http []any, route, index int) map[string]any {
	return http[route].(map[string]any)["route"].([]any)[index].(map[string]any)
}

func TestHostsEqual(t *testing.T) {
	cases := []struct {
		name      string
		a, b, ns  string
		wantEqual bool
	}{
		{"a short name equals itself", "reviews", "reviews", "shop", true},
		{"a short name equals the name with its namespace", "reviews", "reviews.shop", "shop", true},
		{"a short name equals the service domain form", "reviews", "reviews.shop.svc", "shop", true},
		{"a short name equals the fully qualified form", "reviews", "reviews.shop.svc.cluster.local", "shop", true},
		{"the namespace form equals the service domain form", "reviews.shop", "reviews.shop.svc", "shop", true},
		{"case and a trailing dot do not matter", "Reviews.SHOP.svc.cluster.local.", "reviews", "shop", true},
		{"another service is another host", "reviews", "ratings", "shop", false},
		{"the same name in another namespace is another host", "reviews", "reviews.other.svc.cluster.local", "shop", false},
		{"a short name in another namespace is not resolved", "reviews.other", "reviews.other.svc.cluster.local", "shop", false},
		{"an external host equals only itself", "api.example.com", "api.example.com", "shop", true},
		{"without a namespace only identical hosts are equal", "reviews", "reviews.shop", "", false},
		{"without a namespace identical hosts are equal", "reviews", "reviews", "", true},
		{"an empty host equals nothing", "", "", "shop", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := HostsEqual(tc.a, tc.b, tc.ns); got != tc.wantEqual {
				t.Errorf("HostsEqual(%q, %q, %q) = %v", tc.a, tc.b, tc.ns, got)
			}
			if got := HostsEqual(tc.b, tc.a, tc.ns); got != tc.wantEqual {
				t.Errorf("HostsEqual(%q, %q, %q) = %v (not symmetric)", tc.b, tc.a, tc.ns, got)
			}
		})
	}
}

func TestPatchOpJSON(t *testing.T) {
	cases := []struct {
		name string
		op   PatchOp
		want string
	}{
		{"a test of weight 0 keeps its value", PatchOp{Op: OpTest, Path: "/w", Value: int64(0)}, `{"op":"test","path":"/w","value":0}`},
		{"an add of an empty string keeps its value", PatchOp{Op: OpAdd, Path: "/s", Value: ""}, `{"op":"add","path":"/s","value":""}`},
		{"a replace with null keeps its value", PatchOp{Op: OpReplace, Path: "/n"}, `{"op":"replace","path":"/n","value":null}`},
		{"a remove has no value", PatchOp{Op: "remove", Path: "/r"}, `{"op":"remove","path":"/r"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(tc.op)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
	t.Run("an edit without ops is an empty patch", func(t *testing.T) {
		got, err := Edit{}.PatchJSON()
		if err != nil || string(got) != "[]" {
			t.Errorf("got %s, %v", got, err)
		}
	})
}

func TestPointerEscaping(t *testing.T) {
	cases := []struct {
		name   string
		tokens []any
		want   string
	}{
		{"indexes and plain keys are written as they are", []any{"spec", "http", 3, "route"}, "/spec/http/3/route"},
		{"a slash in a key is escaped as ~1", []any{"a/b"}, "/a~1b"},
		{"a tilde in a key is escaped as ~0 before slashes are escaped", []any{"~1/"}, "/~01~1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := pointer(tc.tokens...); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestInputIsNeverMutated(t *testing.T) {
	obj := vs(t, `spec:
  http:
  - route: [{destination: {host: reviews, subset: stable}, weight: 100}, {destination: {host: reviews, subset: canary}}]
`)
	pristine, _ := deepCopy(obj).(map[string]any)
	e, err := SetCanaryWeight(obj, stableCanary(""), 40)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(obj, pristine) {
		t.Fatal("input was mutated")
	}
	// Result shares no containers with the input: writing into it must not
	// reach the input either.
	dest(e.Result["spec"].(map[string]any)["http"].([]any), 0, 1)["destination"].(map[string]any)["host"] = "changed"
	if !reflect.DeepEqual(obj, pristine) {
		t.Fatal("Result shares containers with the input")
	}
}

func TestFindReadsMissingWeights(t *testing.T) {
	cases := []struct {
		name                           string
		stable, canary, foreign        string // weight YAML, "" for none
		wantStable, wantCanary, wantFW int
	}{
		{"both weights missing read as all traffic on stable", "", "", "", 100, 0, 0},
		{"a missing canary weight reads as 0", "100", "", "", 100, 0, 0},
		{"a missing stable weight reads as 0 when the canary has one", "", "30", "", 0, 30, 0},
		{"both weights missing leave stable what the foreign destinations leave", "", "", "20", 80, 0, 20},
		{"null weights read as missing ones", "null", "null", "", 100, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			weight := func(w string) string {
				if w == "" {
					return ""
				}
				return ", weight: " + w
			}
			spec := "spec:\n  http:\n  - route:\n" +
				"    - {destination: {host: reviews, subset: stable}" + weight(tc.stable) + "}\n" +
				"    - {destination: {host: reviews, subset: canary}" + weight(tc.canary) + "}\n"
			if tc.foreign != "" {
				spec += "    - {destination: {host: legacy}" + weight(tc.foreign) + "}\n"
			}
			m, err := Find(vs(t, spec), stableCanary(""))
			if err != nil {
				t.Fatal(err)
			}
			if m.StableWeight != tc.wantStable || m.CanaryWeight != tc.wantCanary || m.ForeignWeight != tc.wantFW {
				t.Errorf("got stable %d canary %d foreign %d, want %d %d %d",
					m.StableWeight, m.CanaryWeight, m.ForeignWeight, tc.wantStable, tc.wantCanary, tc.wantFW)
			}
		})
	}
}

// routeWith builds a VirtualService with one route: stable and canary with
// the given weights (nil for none) and foreign destinations with theirs.
func routeWith(stable, canary *int64, foreign []int64) map[string]any {
	destination := func(host, subset string, w *int64) map[string]any {
		d := map[string]any{"destination": map[string]any{"host": host, "subset": subset}}
		if w != nil {
			d["weight"] = *w
		}
		return d
	}
	dests := []any{destination("reviews", "stable", stable)}
	for i, w := range foreign {
		dests = append(dests, destination("legacy", fmt.Sprintf("old-%d", i), &w))
	}
	dests = append(dests, destination("reviews.shop.svc.cluster.local", "canary", canary))
	return map[string]any{
		"apiVersion": "networking.istio.io/v1",
		"kind":       "VirtualService",
		"metadata":   map[string]any{"name": "reviews", "namespace": "shop"},
		"spec": map[string]any{"http": []any{
			map[string]any{"name": "main", "route": dests, "timeout": "5s"},
		}},
	}
}

func TestEveryWeightSplitsToHundred(t *testing.T) {
	target := stableCanary("")
	step := int64(1)
	if testing.Short() {
		step = 7
	}
	for foreign := int64(0); foreign <= 100; foreign += step {
		var foreignDests []int64
		if foreign > 0 {
			// Split it over two destinations, one maybe 0, to exercise the sum.
			foreignDests = []int64{foreign / 3, foreign - foreign/3}
		}
		stable, canary := 100-foreign, int64(0)
		obj := routeWith(&stable, &canary, foreignDests)
		pristine, _ := deepCopy(obj).(map[string]any)
		for want := 0; want <= 100; want++ {
			e, err := SetCanaryWeight(obj, target, want)
			if err != nil {
				t.Fatalf("foreign %d, canary %d: %v", foreign, want, err)
			}
			gotCanary := min(want, 100-int(foreign))
			if e.Changed != (gotCanary != 0) {
				t.Errorf("foreign %d, canary %d: Changed %v", foreign, want, e.Changed)
			}
			if err := checkEdit(obj, pristine, target, want, e); err != nil {
				t.Fatalf("foreign %d, canary %d: %v", foreign, want, err)
			}
		}
	}
}

// Random starting points, present or missing weights, any number of foreign
// destinations: either a FitError or an edit that keeps every invariant.
func TestRandomWeightsKeepInvariants(t *testing.T) {
	target := stableCanary("")
	property := func(stable, canary uint8, hasStable, hasCanary bool, foreign []uint8, want uint8) bool {
		var sp, cp *int64
		if hasStable {
			s := int64(stable)
			sp = &s
		}
		if hasCanary {
			c := int64(canary)
			cp = &c
		}
		fw := make([]int64, len(foreign)%5)
		var sum int64
		for i := range fw {
			fw[i] = int64(foreign[i]) % 60
			sum += fw[i]
		}
		obj := routeWith(sp, cp, fw)
		pristine, _ := deepCopy(obj).(map[string]any)
		e, err := SetCanaryWeight(obj, target, int(want)%101)
		if sum > 100 {
			var fit *FitError
			return errors.As(err, &fit) && fit.Field == "spec.http[0].route"
		}
		if err != nil {
			t.Logf("unexpected error: %v", err)
			return false
		}
		if err := checkEdit(obj, pristine, target, int(want)%101, e); err != nil {
			t.Log(err)
			return false
		}
		return true
	}
	cfg := &quick.Config{MaxCount: 2000, Rand: rand.New(rand.NewSource(1))}
	if err := quick.Check(property, cfg); err != nil {
		t.Error(err)
	}
}

func TestWeightNumberTypes(t *testing.T) {
	cases := []struct {
		name   string
		weight any
		ok     bool
	}{
		{"an int64 weight from unstructured is read", int64(30), true},
		{"a float64 weight from encoding/json is read", float64(30), true},
		{"a json.Number weight from a UseNumber decoder is read", json.Number("30"), true},
		{"a json.Number weight written with a zero fraction is read", json.Number("30.0"), true},
		{"an int weight from a map built in code is read", 30, true},
		{"a uint8 weight from a map built in code is read", uint8(30), true},
		{"a float64 weight with a fraction is rejected", 30.5, false},
		{"a json.Number weight with a fraction is rejected", json.Number("30.5"), false},
		{"a json.Number weight beyond float64 is rejected", json.Number("1e400"), false},
		{"a huge uint64 weight is rejected", uint64(1 << 63), false},
		{"a boolean weight is rejected", true, false},
		{"an object weight is rejected", map[string]any{"value": 30}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := routeWith(nil, nil, nil)
			dest(obj["spec"].(map[string]any)["http"].([]any), 0, 1)["weight"] = tc.weight
			m, err := Find(obj, stableCanary(""))
			if !tc.ok {
				var fit *FitError
				if !errors.As(err, &fit) || fit.Field != "spec.http[0].route[1].weight" {
					t.Fatalf("got %v, want a FitError on the canary weight", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.CanaryWeight != 30 || m.StableWeight != 0 {
				t.Errorf("got stable %d canary %d, want 0 and 30", m.StableWeight, m.CanaryWeight)
			}
			e, err := SetCanaryWeight(obj, stableCanary(""), 40)
			if err != nil {
				t.Fatal(err)
			}
			if got := e.Ops[len(e.Ops)-3]; got.Op != OpTest || got.Value != int64(30) {
				t.Errorf("weight test op is %+v, want a test of int64 30", got)
			}
		})
	}
}

func TestCyclicObjectIsAnErrorNotACrash(t *testing.T) {
	obj := routeWith(nil, nil, nil)
	obj["self"] = obj
	if _, err := SetCanaryWeight(obj, stableCanary(""), 10); err == nil || !strings.Contains(err.Error(), "cyclic") {
		t.Fatalf("got %v, want an error about nesting", err)
	}
}
