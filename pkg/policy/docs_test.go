package policy

import (
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// policiesDoc is the user's reference for every field of the policy file.
const policiesDoc = "../../docs/policies.md"

// docSections maps each struct type a policy file is made of to the heading
// in docs/policies.md whose first table lists its fields, one `field` per
// row in the first column.
func docSections() map[reflect.Type]string {
	return map[reflect.Type]string{
		reflect.TypeFor[Policy]():      "### Policy",
		reflect.TypeFor[Stage]():       "### Stages",
		reflect.TypeFor[MetricQuery](): "### Custom metrics",
		reflect.TypeFor[Check]():       "### Checks",
		reflect.TypeFor[Rule]():        "## Rules",
		reflect.TypeFor[Gate]():        "## Gates",
		reflect.TypeFor[NotifyRoute](): "## Notifications",
	}
}

// scalarStructs are struct types written as one YAML scalar ("1%", "5m"):
// they have no fields of their own in the file.
func scalarStructs() map[reflect.Type]bool {
	return map[reflect.Type]bool{
		reflect.TypeFor[Value]():    true,
		reflect.TypeFor[Duration](): true,
	}
}

// fileFields walks t and every struct type reachable from its fields
// (through pointers, slices and maps), and returns each struct type's JSON
// field names in declaration order. Scalar structs are not entered.
func fileFields(t reflect.Type, scalars map[reflect.Type]bool) map[reflect.Type][]string {
	out := map[reflect.Type][]string{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || scalars[t] {
			return
		}
		if _, seen := out[t]; seen {
			return
		}
		out[t] = []string{}
		for f := range t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			out[t] = append(out[t], name)
			walk(f.Type)
		}
	}
	walk(t)
	return out
}

// tableFields returns the first column, backticks removed, of the first
// table under heading (an exact line) and before the next heading. Fenced
// code is skipped, so a YAML comment is not taken for a heading.
func tableFields(doc, heading string) ([]string, error) {
	lines := strings.Split(doc, "\n")
	start := slices.Index(lines, heading)
	if start < 0 {
		return nil, fmt.Errorf("no heading %q", heading)
	}
	var rows []string
	inFence, inTable := false, false
	for _, line := range lines[start+1:] {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") {
			inFence = !inFence
			continue
		}
		if inFence {
			continue
		}
		if strings.HasPrefix(trimmed, "#") {
			break
		}
		if !strings.HasPrefix(trimmed, "|") {
			if inTable {
				break
			}
			continue
		}
		if !inTable { // the header row
			inTable = true
			continue
		}
		cells := strings.Split(trimmed, "|")
		first := strings.TrimSpace(cells[1])
		if strings.Trim(first, "-: ") == "" { // the separator row
			continue
		}
		rows = append(rows, strings.Trim(first, "`"))
	}
	if !inTable {
		return nil, fmt.Errorf("no table under %q", heading)
	}
	return rows, nil
}

// compareFields lists the fields missing from the table and the rows that
// name no field.
func compareFields(fields, rows []string) (missing, stale []string) {
	for _, f := range fields {
		if !slices.Contains(rows, f) {
			missing = append(missing, f)
		}
	}
	for _, r := range rows {
		if !slices.Contains(fields, r) {
			stale = append(stale, r)
		}
	}
	return missing, stale
}

func TestDocsListEveryPolicyField(t *testing.T) {
	data, err := os.ReadFile(policiesDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	sections := docSections()
	fields := fileFields(reflect.TypeFor[Policy](), scalarStructs())
	for typ := range fields {
		if _, ok := sections[typ]; !ok {
			t.Errorf("policy.%s is part of the policy file but has no table in %s: add one and list it in docSections", typ.Name(), policiesDoc)
		}
	}
	types := slices.SortedFunc(maps.Keys(sections), func(a, b reflect.Type) int { return strings.Compare(sections[a], sections[b]) })
	for _, typ := range types {
		heading := sections[typ]
		t.Run(fmt.Sprintf("every field of %s is in the table under %s", typ.Name(), heading), func(t *testing.T) {
			names, reached := fields[typ]
			if !reached {
				t.Fatalf("policy.%s is no longer part of the policy file: drop it from docSections", typ.Name())
			}
			rows, err := tableFields(doc, heading)
			if err != nil {
				t.Fatalf("%s: %v", policiesDoc, err)
			}
			missing, stale := compareFields(names, rows)
			for _, f := range missing {
				t.Errorf("%s: the table under %q has no row for `%s`", policiesDoc, heading, f)
			}
			for _, r := range stale {
				t.Errorf("%s: the table under %q has a row `%s`, which is no field of policy.%s", policiesDoc, heading, r, typ.Name())
			}
		})
	}
}

func TestTableFields(t *testing.T) {
	const doc = "# Doc\n\n" +
		"## Fields\n\nIntro.\n\n" +
		"| field | meaning |\n| --- | --- |\n| `name` | a name |\n| `interval` | how often |\n\n" +
		"Text after the table.\n\n| `other` | a second table |\n\n" +
		"## Notify\n\n```yaml\n# a comment, not a heading\nnotify: []\n```\n\n" +
		"| field | meaning |\n|:--|--:|\n| `on` | events |\n| `to` | channel |\n" +
		"## Empty\n\nNo table here.\n\n## After\n\n| field |\n| --- |\n| `x` |\n"
	cases := []struct {
		name, heading string
		want          []string
		wantErr       bool
	}{
		{name: "the first table under the heading is read, and only it", heading: "## Fields", want: []string{"name", "interval"}},
		{name: "a comment in a code block does not end the section", heading: "## Notify", want: []string{"on", "to"}},
		{name: "a section without a table is an error, not a later section's table", heading: "## Empty", wantErr: true},
		{name: "a heading that is not in the document is an error", heading: "## Missing", wantErr: true},
		{name: "a heading must match its level exactly", heading: "### Fields", wantErr: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := tableFields(doc, c.heading)
			if (err != nil) != c.wantErr {
				t.Fatalf("error %v, want an error: %v", err, c.wantErr)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("rows %q, want %q", got, c.want)
			}
		})
	}
}

func TestCompareFields(t *testing.T) {
	cases := []struct {
		name               string
		fields, rows       []string
		missing, staleRows []string
	}{
		{name: "a table with every field passes", fields: []string{"interval", "lookback"}, rows: []string{"lookback", "interval"}},
		{name: "a field missing from the table is reported", fields: []string{"interval", "lookback"}, rows: []string{"interval"}, missing: []string{"lookback"}},
		{name: "a row naming no field is reported", fields: []string{"interval"}, rows: []string{"interval", "lookbak"}, staleRows: []string{"lookbak"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			missing, stale := compareFields(c.fields, c.rows)
			if !slices.Equal(missing, c.missing) || !slices.Equal(stale, c.staleRows) {
				t.Errorf("missing %q and stale %q, want %q and %q", missing, stale, c.missing, c.staleRows)
			}
		})
	}
}

func TestFileFieldsWalksNestedTypes(t *testing.T) {
	fields := fileFields(reflect.TypeFor[Policy](), scalarStructs())
	cases := []struct {
		name  string
		typ   reflect.Type
		field string
	}{
		{"a top-level field is found", reflect.TypeFor[Policy](), "lookback"},
		{"a field of a struct in a slice is found", reflect.TypeFor[Stage](), "canaryReplicas"},
		{"a pointer field of a struct in a slice is found", reflect.TypeFor[Check](), "maxIncrease"},
		{"a field of a struct in a map is found", reflect.TypeFor[MetricQuery](), "query"},
		{"a field of a struct with its own decoder is found", reflect.TypeFor[NotifyRoute](), "on"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !slices.Contains(fields[c.typ], c.field) {
				t.Errorf("%s has fields %q, want %q among them", c.typ.Name(), fields[c.typ], c.field)
			}
		})
	}
	for _, scalar := range []reflect.Type{reflect.TypeFor[Value](), reflect.TypeFor[Duration]()} {
		if _, entered := fields[scalar]; entered {
			t.Errorf("%s is written as a scalar but was walked as a struct", scalar.Name())
		}
	}
}
