package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

// ValidationError lists every problem of a policy file, each with the path
// of the field at fault, so that one edit-and-reload cycle can fix them all.
type ValidationError struct {
	Errors field.ErrorList
}

func (e *ValidationError) Error() string {
	msgs := make([]string, 0, len(e.Errors))
	for _, fe := range e.Errors {
		msgs = append(msgs, fe.Error())
	}
	if len(msgs) == 1 {
		return "invalid policy file: " + msgs[0]
	}
	return fmt.Sprintf("invalid policy file, %d problems: %s", len(msgs), strings.Join(msgs, "; "))
}

// Unwrap exposes each *field.Error to errors.As and errors.Is.
func (e *ValidationError) Unwrap() []error {
	errs := make([]error, 0, len(e.Errors))
	for _, fe := range e.Errors {
		errs = append(errs, fe)
	}
	return errs
}

// Parse reads a policy file, fills defaults and validates it. Problems are
// returned together as a *ValidationError; only a document that is not YAML
// at all, or not a mapping, fails with a plain error.
//
// Decoding is strict: unknown fields are errors, and field names must match
// in case (encoding/json alone would accept "MinRequests").
func Parse(data []byte) (*File, error) {
	jsonData, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("policy file is not valid YAML: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(jsonData))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, fmt.Errorf("policy file: %w", err)
	}
	if tree == nil {
		// An empty document is far more often a wrong mount or a write in
		// progress than a wish for no policies, which `policies: []` says.
		return nil, errors.New("policy file is empty; list policies under `policies:`, or write `policies: []` for none")
	}
	if _, ok := tree.(map[string]any); !ok {
		return nil, fmt.Errorf("policy file must be a mapping with a policies list, not %v", describe(tree))
	}

	// Strict decoding stops at the first problem and names no path, so the
	// shape of the document is checked first to report every mismatch with
	// its path; the offending parts are then cut out so that decoding and
	// validation can report the rest.
	tree, keep, shapeErrs := checkShape(reflect.TypeFor[File](), tree, nil)
	if !keep {
		tree = nil
	}
	source := data
	if len(shapeErrs) > 0 {
		if source, err = json.Marshal(tree); err != nil {
			return nil, fmt.Errorf("policy file: %w", err)
		}
	}
	var f File
	if err := yaml.UnmarshalStrict(source, &f); err != nil {
		decodeErr := fmt.Errorf("decoding policy file: %w", err)
		if len(shapeErrs) > 0 {
			return nil, errors.Join(&ValidationError{Errors: shapeErrs}, decodeErr)
		}
		return nil, decodeErr
	}

	errs := append(shapeErrs, explicitZeros(tree)...)
	var semantic field.ErrorList
	seen := map[string]int{}
	root := field.NewPath("policies")
	for i := range f.Policies {
		Defaults(&f.Policies[i])
		p := root.Index(i)
		semantic = append(semantic, Validate(f.Policies[i], p)...)
		name := f.Policies[i].Name
		if first, dup := seen[name]; dup && name != "" {
			semantic = append(semantic, &field.Error{
				Type:     field.ErrorTypeDuplicate,
				Field:    p.Child("name").String(),
				BadValue: name,
				Detail:   fmt.Sprintf("policies[%d] has the same name", first),
			})
		} else if !dup {
			seen[name] = i
		}
	}
	errs = append(errs, withoutOverlap(semantic, errs)...)
	if len(errs) > 0 {
		sortByPosition(errs)
		return nil, &ValidationError{Errors: errs}
	}
	return &f, nil
}

// LoadFile reads and parses the policy file at path.
func LoadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading policy file: %w", err)
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// withoutOverlap drops validation errors about fields that the shape check
// already reported, or that contain one: a field cut out for being
// malformed would otherwise also be reported as missing.
func withoutOverlap(errs, reported field.ErrorList) field.ErrorList {
	var out field.ErrorList
	for _, e := range errs {
		overlap := false
		for _, r := range reported {
			if related(e.Field, r.Field) {
				overlap = true
				break
			}
		}
		if !overlap {
			out = append(out, e)
		}
	}
	return out
}

func related(a, b string) bool {
	if a == b {
		return true
	}
	short, long := a, b
	if len(short) > len(long) {
		short, long = long, short
	}
	return strings.HasPrefix(long, short) && (long[len(short)] == '.' || long[len(short)] == '[')
}

// explicitZeros reports limits written as zero. Defaults cannot tell them
// from limits left out, so without this a user's "failureLimit: 0" would
// silently become 2.
func explicitZeros(tree any) field.ErrorList {
	root, _ := tree.(map[string]any)
	policies, _ := root["policies"].([]any)
	var errs field.ErrorList
	for i, item := range policies {
		p, _ := item.(map[string]any)
		path := field.NewPath("policies").Index(i)
		if isZeroDuration(p["interval"]) {
			errs = append(errs, field.Invalid(path.Child("interval"), "0s", "must be at least 1s"))
		}
		if isZeroNumber(p["minRequests"]) {
			errs = append(errs, field.Invalid(path.Child("minRequests"), int64(0),
				"0 cannot be told from unset, which means the default 50; use 1 to count every window with traffic"))
		}
		for _, key := range []string{"failureLimit", "metricsOutageLimit"} {
			if isZeroNumber(p[key]) {
				errs = append(errs, field.Invalid(path.Child(key), int64(0), "must be at least 1"))
			}
		}
		if isZeroDuration(p["monitor"]) {
			errs = append(errs, field.Invalid(path.Child("monitor"), "0s", "must be at least 1s"))
		}
		if isZeroDuration(p["stuckAfter"]) {
			errs = append(errs, field.Invalid(path.Child("stuckAfter"), "0s",
				"0s cannot be told from unset, which means the default 30m; use 1s to report a stage as soon as it overruns"))
		}
		gates, _ := p["gates"].([]any)
		for j, g := range gates {
			gate, _ := g.(map[string]any)
			if isZeroDuration(gate["timeout"]) {
				errs = append(errs, field.Invalid(path.Child("gates").Index(j).Child("timeout"), "0s", "must be at least 1s"))
			}
		}
		stages, _ := p["stages"].([]any)
		for j, s := range stages {
			stage, _ := s.(map[string]any)
			if isZeroDuration(stage["duration"]) {
				errs = append(errs, field.Invalid(path.Child("stages").Index(j).Child("duration"), "0s", "must be longer than 0s"))
			}
		}
	}
	return errs
}

func isZeroNumber(v any) bool {
	n, ok := v.(json.Number)
	if !ok {
		return false
	}
	f, err := n.Float64()
	return err == nil && f == 0
}

func isZeroDuration(v any) bool {
	s, ok := v.(string)
	if !ok {
		return false
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	return err == nil && d == 0
}

// checkShape compares a decoded JSON node with the Go type it is meant to
// fill. It returns the node with malformed parts removed (keep is false
// when the whole node must go) and an error for each removal.
func checkShape(t reflect.Type, node any, path *field.Path) (pruned any, keep bool, errs field.ErrorList) {
	if node == nil {
		// null leaves a field unset, as encoding/json does.
		return nil, true, nil
	}
	if u, ok := reflect.New(t).Interface().(json.Unmarshaler); ok {
		raw, err := json.Marshal(node)
		if err == nil {
			err = u.UnmarshalJSON(raw)
		}
		if err == nil {
			return node, true, nil
		}
		detail := err.Error()
		var ve *ValueError
		switch {
		case errors.As(err, &ve):
			detail = ve.Expected
		case t == reflect.TypeFor[Duration]():
			detail = durationExpected
		}
		return nil, false, field.ErrorList{field.Invalid(path, describe(node), detail)}
	}
	invalid := func(expected string) (any, bool, field.ErrorList) {
		return nil, false, field.ErrorList{field.Invalid(path, describe(node), expected)}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return checkShape(t.Elem(), node, path)
	case reflect.Struct:
		m, ok := node.(map[string]any)
		if !ok {
			return invalid("expected a mapping")
		}
		fields := jsonFields(t)
		for _, key := range sortedKeys(m) {
			ft, known := fields[key]
			if !known {
				errs = append(errs, field.Forbidden(path.Child(key), unknownFieldDetail(key, fields)))
				delete(m, key)
				continue
			}
			child, keep, childErrs := checkShape(ft, m[key], path.Child(key))
			errs = append(errs, childErrs...)
			if keep {
				m[key] = child
			} else {
				delete(m, key)
			}
		}
		return m, true, errs
	case reflect.Slice:
		list, ok := node.([]any)
		if !ok {
			return invalid("expected a list")
		}
		for i, item := range list {
			child, keep, childErrs := checkShape(t.Elem(), item, path.Index(i))
			errs = append(errs, childErrs...)
			// Emptied rather than removed, so later items keep their
			// index and their errors name the item the user wrote.
			if keep {
				list[i] = child
			} else {
				list[i] = nil
			}
		}
		return list, true, errs
	case reflect.Map:
		m, ok := node.(map[string]any)
		if !ok {
			return invalid("expected a mapping")
		}
		for _, key := range sortedKeys(m) {
			child, keep, childErrs := checkShape(t.Elem(), m[key], path.Key(key))
			errs = append(errs, childErrs...)
			if keep {
				m[key] = child
			} else {
				delete(m, key)
			}
		}
		return m, true, errs
	case reflect.String:
		// sigs.k8s.io/yaml turns scalars meant for strings into strings, so
		// `name: 2024` is a name rather than an error.
		switch v := node.(type) {
		case string:
			return v, true, nil
		case json.Number:
			return string(v), true, nil
		case bool:
			return strconv.FormatBool(v), true, nil
		}
		return invalid("expected a string")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if n, ok := node.(json.Number); ok {
			if _, err := strconv.ParseInt(string(n), 10, t.Bits()); err == nil {
				return n, true, nil
			}
		}
		if t.Kind() == reflect.Int {
			return invalid("expected a whole number")
		}
		return invalid(fmt.Sprintf("expected a whole number from %d to %d", -(int64(1) << (t.Bits() - 1)), int64(1)<<(t.Bits()-1)-1))
	case reflect.Float32, reflect.Float64:
		if n, ok := node.(json.Number); ok {
			if _, err := strconv.ParseFloat(string(n), t.Bits()); err == nil {
				return n, true, nil
			}
		}
		return invalid("expected a number")
	case reflect.Bool:
		if _, ok := node.(bool); ok {
			return node, true, nil
		}
		return invalid("expected true or false")
	}
	return node, true, nil
}

// jsonFields maps the JSON names of a struct's fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		fields[name] = f.Type
	}
	return fields
}

func unknownFieldDetail(key string, fields map[string]reflect.Type) string {
	for _, name := range sortedKeys(fields) {
		if strings.EqualFold(name, key) {
			return fmt.Sprintf("unknown field, did you mean %q?", name)
		}
	}
	return "unknown field, expected one of: " + strings.Join(sortedKeys(fields), ", ")
}

// describe renders a node for an error message: scalars as written,
// containers by kind, since echoing a whole list back helps nobody.
func describe(node any) any {
	switch v := node.(type) {
	case string, bool, json.Number:
		return v
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case nil:
		return "null"
	}
	return fmt.Sprint(node)
}

// sortByPosition orders errors as their fields appear in a policy file,
// which is how a user reads the file while fixing it: by index, and within
// an item by the order of the fields in the types.
func sortByPosition(errs field.ErrorList) {
	rank := map[string]int{}
	for _, t := range []reflect.Type{reflect.TypeFor[File](), reflect.TypeFor[Policy](), reflect.TypeFor[Stage](), reflect.TypeFor[Check](), reflect.TypeFor[MetricQuery](),
		reflect.TypeFor[Rule](), reflect.TypeFor[Gate](), reflect.TypeFor[NotifyRoute]()} {
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			if _, seen := rank[name]; !seen {
				rank[name] = i
			}
		}
	}
	key := func(path string) []pathSegment {
		var segs []pathSegment
		for part := range strings.SplitSeq(path, ".") {
			name, rest, _ := strings.Cut(part, "[")
			segs = append(segs, pathSegment{name: name, rank: rankOf(rank, name)})
			for rest != "" {
				var idx string
				idx, rest, _ = strings.Cut(rest, "]")
				rest = strings.TrimPrefix(rest, "[")
				n, err := strconv.Atoi(idx)
				if err != nil {
					n = -1
				}
				segs = append(segs, pathSegment{name: idx, rank: n, index: true})
			}
		}
		return segs
	}
	slices.SortStableFunc(errs, func(a, b *field.Error) int {
		ka, kb := key(a.Field), key(b.Field)
		for i := range min(len(ka), len(kb)) {
			if c := ka[i].compare(kb[i]); c != 0 {
				return c
			}
		}
		return len(ka) - len(kb)
	})
}

type pathSegment struct {
	name  string
	rank  int
	index bool
}

func (s pathSegment) compare(o pathSegment) int {
	if s.rank != o.rank {
		return s.rank - o.rank
	}
	return strings.Compare(s.name, o.name)
}

// rankOf puts names the types do not know, such as misspelt fields, after
// the known ones.
func rankOf(rank map[string]int, name string) int {
	if r, ok := rank[name]; ok {
		return r
	}
	return len(rank) + 1
}
