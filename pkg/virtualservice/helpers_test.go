package virtualservice

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// decodeUnstructured reads YAML or JSON the way the API machinery hands
// objects to controllers: integers as int64, other numbers as float64.
func decodeUnstructured(data []byte) (map[string]any, error) {
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	v, err = intsAsInt64(v)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("not an object but %T", v)
	}
	return m, nil
}

func intsAsInt64(v any) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			c, err := intsAsInt64(e)
			if err != nil {
				return nil, err
			}
			v[k] = c
		}
	case []any:
		for i, e := range v {
			c, err := intsAsInt64(e)
			if err != nil {
				return nil, err
			}
			v[i] = c
		}
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i, nil
		}
		return v.Float64()
	}
	return v, nil
}

// decodePlain reads YAML or JSON the way encoding/json does on its own:
// every number as float64.
func decodePlain(data []byte) (map[string]any, error) {
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("not an object")
	}
	return m, nil
}

// normalize turns any JSON-compatible value into what encoding/json decodes
// from its encoding, so that int64 and float64 weights compare equal.
func normalize(v any) (any, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	err = json.Unmarshal(j, &out)
	return out, err
}

// withoutManagedWeights is a copy of obj with the weight keys of the two
// managed destinations removed; everything else must survive an edit.
func withoutManagedWeights(obj map[string]any, m Managed) map[string]any {
	c, _ := deepCopy(obj).(map[string]any)
	dests, err := routeDestinations(c, m.RouteIndex)
	if err != nil {
		return c
	}
	for _, i := range []int{m.StableIndex, m.CanaryIndex} {
		if i < 0 || i >= len(dests) {
			continue
		}
		if d, ok := dests[i].(map[string]any); ok {
			delete(d, "weight")
		}
	}
	return c
}

func prettyJSON(v any) string {
	j, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return string(j)
}

// constError lets a sentinel error be a constant.
type constError string

func (e constError) Error() string { return string(e) }

// errTestFailed is what applyPatch returns when a `test` op does not hold,
// where the API server answers 422.
const errTestFailed = constError("test operation failed")

// applyPatch applies an RFC 6902 patch with add, replace and test ops to a
// JSON document. It stands in for gopkg.in/evanphx/json-patch.v4, which the
// API server uses but which go.mod does not list; like that library, `test`
// compares the encoded JSON of both values.
func applyPatch(doc, patch []byte) ([]byte, error) {
	var ops []struct {
		Op    string          `json:"op"`
		Path  string          `json:"path"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(patch, &ops); err != nil {
		return nil, fmt.Errorf("decode patch: %w", err)
	}
	var root any
	if err := json.Unmarshal(doc, &root); err != nil {
		return nil, fmt.Errorf("decode document: %w", err)
	}
	for n, op := range ops {
		if op.Value == nil {
			return nil, fmt.Errorf("op %d (%s %s): no value", n, op.Op, op.Path)
		}
		var value any
		if err := json.Unmarshal(op.Value, &value); err != nil {
			return nil, fmt.Errorf("op %d: decode value: %w", n, err)
		}
		tokens, err := parsePointer(op.Path)
		if err != nil || len(tokens) == 0 {
			return nil, fmt.Errorf("op %d: bad path %q", n, op.Path)
		}
		parent, err := walk(root, tokens[:len(tokens)-1])
		if err != nil {
			return nil, fmt.Errorf("op %d (%s %s): %w", n, op.Op, op.Path, err)
		}
		last := tokens[len(tokens)-1]
		switch op.Op {
		case "test":
			current, err := walk(parent, []string{last})
			if err != nil {
				return nil, fmt.Errorf("op %d (test %s): %w", n, op.Path, err)
			}
			got, _ := json.Marshal(current)
			var want bytes.Buffer
			if err := json.Compact(&want, op.Value); err != nil {
				return nil, err
			}
			if !bytes.Equal(got, want.Bytes()) {
				return nil, fmt.Errorf("op %d (test %s): %s != %s: %w", n, op.Path, got, want.Bytes(), errTestFailed)
			}
		case "replace":
			if _, err := walk(parent, []string{last}); err != nil {
				return nil, fmt.Errorf("op %d (replace %s): %w", n, op.Path, err)
			}
			if err := set(parent, last, value); err != nil {
				return nil, fmt.Errorf("op %d: %w", n, err)
			}
		case "add":
			if err := set(parent, last, value); err != nil {
				return nil, fmt.Errorf("op %d: %w", n, err)
			}
		default:
			return nil, fmt.Errorf("op %d: unsupported op %q", n, op.Op)
		}
	}
	return json.Marshal(root)
}

func parsePointer(p string) ([]string, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("pointer %q does not start with /", p)
	}
	tokens := strings.Split(p[1:], "/")
	for i, t := range tokens {
		tokens[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return tokens, nil
}

func walk(v any, tokens []string) (any, error) {
	for _, t := range tokens {
		switch c := v.(type) {
		case map[string]any:
			e, ok := c[t]
			if !ok {
				return nil, fmt.Errorf("no member %q", t)
			}
			v = e
		case []any:
			i, err := strconv.Atoi(t)
			if err != nil || i < 0 || i >= len(c) {
				return nil, fmt.Errorf("no element %q", t)
			}
			v = c[i]
		default:
			return nil, fmt.Errorf("cannot index %T with %q", v, t)
		}
	}
	return v, nil
}

// set assigns a member of an object; the package never adds list elements,
// so lists only support replacing an existing index.
func set(parent any, key string, value any) error {
	switch c := parent.(type) {
	case map[string]any:
		c[key] = value
		return nil
	case []any:
		i, err := strconv.Atoi(key)
		if err != nil || i < 0 || i >= len(c) {
			return fmt.Errorf("no element %q", key)
		}
		c[i] = value
		return nil
	}
	return fmt.Errorf("cannot set %q in %T", key, parent)
}

// checkEdit asserts what must hold for every successful edit of input:
// the managed weights are in range and the route sums to 100, nothing but
// those two weights changed, the patch turns the input into Result, and the
// input was not touched. It returns a description of the first violation.
func checkEdit(input, pristine map[string]any, t Target, canary int, e Edit) error {
	if !reflect.DeepEqual(input, pristine) {
		return errors.New("input was mutated")
	}
	after, err := Find(e.Result, t)
	if err != nil {
		return fmt.Errorf("result no longer fits: %w", err)
	}
	if after.RouteIndex != e.Managed.RouteIndex || after.StableIndex != e.Managed.StableIndex ||
		after.CanaryIndex != e.Managed.CanaryIndex {
		return fmt.Errorf("result manages another place: before %+v, after %+v", e.Managed, after)
	}
	if after.StableWeight < 0 || after.StableWeight > 100 || after.CanaryWeight < 0 || after.CanaryWeight > 100 {
		return fmt.Errorf("weights out of range: stable %d, canary %d", after.StableWeight, after.CanaryWeight)
	}
	if after.ForeignWeight != e.Managed.ForeignWeight {
		return fmt.Errorf("foreign weight changed from %d to %d", e.Managed.ForeignWeight, after.ForeignWeight)
	}
	if sum := after.StableWeight + after.CanaryWeight + after.ForeignWeight; sum != 100 {
		return fmt.Errorf("weights sum to %d: %+v", sum, after)
	}
	if want := min(canary, 100-after.ForeignWeight); after.CanaryWeight != want {
		return fmt.Errorf("canary weight is %d, want %d", after.CanaryWeight, want)
	}
	if !reflect.DeepEqual(withoutManagedWeights(input, e.Managed), withoutManagedWeights(e.Result, e.Managed)) {
		return fmt.Errorf("more than the two weights changed:\ninput  %s\nresult %s", prettyJSON(input), prettyJSON(e.Result))
	}
	if e.Changed != (len(e.Ops) > 0) {
		return fmt.Errorf("Changed is %v with %d ops", e.Changed, len(e.Ops))
	}
	if !e.Changed && !reflect.DeepEqual(input, e.Result) {
		return errors.New("unchanged edit has a different result")
	}
	for i, op := range e.Ops {
		if op.Op != OpTest && i < len(e.Ops)-2 {
			return fmt.Errorf("op %d is %q before the last two ops", i, op.Op)
		}
	}
	doc, err := json.Marshal(input)
	if err != nil {
		return fmt.Errorf("encode input: %w", err)
	}
	patch, err := e.PatchJSON()
	if err != nil {
		return fmt.Errorf("encode patch: %w", err)
	}
	patched, err := applyPatch(doc, patch)
	if err != nil {
		return fmt.Errorf("apply patch %s: %w", patch, err)
	}
	var got any
	if err := json.Unmarshal(patched, &got); err != nil {
		return err
	}
	want, err := normalize(e.Result)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(got, want) {
		return fmt.Errorf("patched input differs from Result:\npatched %s\nresult  %s", prettyJSON(got), prettyJSON(want))
	}
	return nil
}
