package docs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/meshcanary/meshcanary/pkg/gates"
	"github.com/meshcanary/meshcanary/pkg/metrics"
	"github.com/meshcanary/meshcanary/pkg/notify"
	"github.com/meshcanary/meshcanary/pkg/policy"
	"github.com/meshcanary/meshcanary/pkg/stages"
)

// These tests check what can be checked in the docs without running them:
// they need no cluster, but share the package's TestMain.

// pendingDocs are pages other people write; links to them are allowed
// before they exist.
var pendingDocs = map[string]bool{"docs/performance.md": true}

type docFile struct {
	path   string // relative to the repository root
	text   string
	blocks []block
}

func readDocs(t *testing.T) []docFile {
	t.Helper()
	root := repoRoot(t)
	var out []docFile
	for _, p := range docFiles(t, root) {
		data, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := parseMarkdown(data)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out = append(out, docFile{path: p, text: string(data), blocks: blocks})
	}
	return out
}

// TestEveryRunnableFileHasACase keeps the runnable blocks and the table of
// sandboxes in step, so that no block goes unrun and no setup is dead.
func TestEveryRunnableFileHasACase(t *testing.T) {
	runnable := map[string]bool{}
	for _, d := range readDocs(t) {
		for _, b := range d.blocks {
			if b.runnable() {
				runnable[d.path] = true
			}
		}
		if runnable[d.path] {
			if _, ok := cases[d.path]; !ok {
				t.Errorf("%s has runnable blocks but no entry in cases (docs_test.go): add one saying how to set up its sandbox", d.path)
			}
		}
	}
	for p := range cases {
		if !runnable[p] {
			t.Errorf("cases has an entry for %s, which has no runnable blocks", p)
		}
	}
}

var (
	sleepRE       = regexp.MustCompile(`(^|[\s;&|(])sleep\s`)
	kubectlWaitRE = regexp.MustCompile(`kubectl\s+(-n\s+\S+\s+)?wait\b`)
	watchRE       = regexp.MustCompile(`kubectl meshcanary status\b[^\n]*\s-w\b`)
)

// TestRunnableBlocksAreBounded enforces the rules of runnable blocks: no
// sleeping as a way of waiting, and every wait with a bound.
func TestRunnableBlocksAreBounded(t *testing.T) {
	for _, d := range readDocs(t) {
		for _, b := range d.blocks {
			if !b.runnable() {
				continue
			}
			where := fmt.Sprintf("%s:%d", d.path, b.line)
			if sleepRE.MatchString(b.body) {
				t.Errorf("%s: runnable blocks must not sleep; wait for a condition with kubectl wait --timeout", where)
			}
			for _, cmd := range commands(b.body) {
				if kubectlWaitRE.MatchString(cmd) && !strings.Contains(cmd, "--timeout") {
					t.Errorf("%s: kubectl wait without --timeout: %s", where, cmd)
				}
				if watchRE.MatchString(cmd) && !strings.HasPrefix(strings.TrimSpace(cmd), "timeout ") {
					t.Errorf("%s: status -w must be bounded with timeout(1): %s", where, cmd)
				}
			}
		}
	}
}

// commands joins continuation lines, so each element is one command line.
func commands(body string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(body, "\n") {
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\"))
			continue
		}
		cur.WriteString(line)
		out = append(out, cur.String())
		cur.Reset()
	}
	return out
}

// policyFields are the keys a policy may have, from the type itself.
func policyFields() map[string]bool {
	out := map[string]bool{}
	t := reflect.TypeFor[policy.Policy]()
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		out[name] = true
	}
	return out
}

// TestYAMLExamplesAreValid parses every YAML block. Policies (a file, a
// values file's policies, or a fragment of one policy) must pass the
// controller's own parser and validation.
func TestYAMLExamplesAreValid(t *testing.T) {
	fields := policyFields()
	for _, d := range readDocs(t) {
		for _, b := range d.blocks {
			if b.lang != "yaml" {
				continue
			}
			where := fmt.Sprintf("%s:%d", d.path, b.line)
			for i, doc := range strings.Split("\n"+b.body, "\n---") {
				var v any
				if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
					t.Errorf("%s: document %d is not valid YAML: %v", where, i, err)
					continue
				}
				m, ok := v.(map[string]any)
				if !ok {
					continue
				}
				var file []byte
				switch {
				case m["policies"] != nil:
					// A policies file, or a Helm values file with policies.
					f, err := yaml.Marshal(map[string]any{"policies": m["policies"]})
					if err != nil {
						t.Fatal(err)
					}
					file = f
				case onlyKeys(m, fields):
					// A fragment of one policy, shown on its own.
					m["name"] = "fragment"
					f, err := yaml.Marshal(map[string]any{"policies": []any{m}})
					if err != nil {
						t.Fatal(err)
					}
					file = f
				default:
					continue
				}
				if _, err := policy.Parse(file); err != nil {
					t.Errorf("%s: the policy example does not pass the controller's validation: %v", where, err)
				}
			}
		}
	}
}

func onlyKeys(m map[string]any, allowed map[string]bool) bool {
	for k := range m {
		if !allowed[k] {
			return false
		}
	}
	return len(m) > 0
}

// TestJSONExamplesMatchTheirTypes decodes every JSON block strictly into
// the type it documents: a webhook body, a gate body, or the state.
func TestJSONExamplesMatchTheirTypes(t *testing.T) {
	for _, d := range readDocs(t) {
		for _, b := range d.blocks {
			if b.lang != "json" {
				continue
			}
			where := fmt.Sprintf("%s:%d", d.path, b.line)
			var probe map[string]any
			if err := json.Unmarshal([]byte(b.body), &probe); err != nil {
				t.Errorf("%s: not valid JSON: %v", where, err)
				continue
			}
			var target any
			switch {
			case probe["dedupKey"] != nil:
				target = &notify.WebhookBody{}
			case probe["gate"] != nil:
				target = &gates.Body{}
			case probe["phase"] != nil:
				target = &stages.State{}
			default:
				t.Errorf("%s: a JSON example of an unknown kind; teach TestJSONExamplesMatchTheirTypes its type", where)
				continue
			}
			dec := json.NewDecoder(bytes.NewReader([]byte(b.body)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(target); err != nil {
				t.Errorf("%s: does not decode as %T: %v", where, target, err)
			}
			if body, ok := target.(*gates.Body); ok && body.Version != gates.BodyVersion {
				t.Errorf("%s: gate body version %q, want %q", where, body.Version, gates.BodyVersion)
			}
		}
	}
}

// eventReasons reads the Reason constants of pkg/stages.
func eventReasons(t *testing.T) []string {
	t.Helper()
	path := filepath.Join(repoRoot(t), "pkg", "stages", "reasons.go")
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range vs.Names {
			if !strings.HasPrefix(name.Name, "Reason") || i >= len(vs.Values) {
				continue
			}
			if lit, ok := vs.Values[i].(*ast.BasicLit); ok {
				s, err := strconv.Unquote(lit.Value)
				if err == nil {
					out = append(out, s)
				}
			}
		}
		return true
	})
	if len(out) == 0 {
		t.Fatal("no Reason constants found in pkg/stages/reasons.go")
	}
	return out
}

var (
	alertRE   = regexp.MustCompile(`(?m)^\s*- alert:\s*(\S+)`)
	runbookRE = regexp.MustCompile(`runbook_url:.*"%s/([a-z0-9-]+\.md)"`)
)

// chartAlerts reads each alert of the chart's PrometheusRule and the
// runbook its runbook_url names.
func chartAlerts(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "charts", "meshcanary", "templates", "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	text := string(data)
	idx := alertRE.FindAllStringSubmatchIndex(text, -1)
	for i, m := range idx {
		end := len(text)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		name := text[m[2]:m[3]]
		rb := runbookRE.FindStringSubmatch(text[m[0]:end])
		if rb == nil {
			t.Errorf("alert %s has no runbook_url of the form <base>/<file>.md", name)
			continue
		}
		out[name] = rb[1]
	}
	if len(out) == 0 {
		t.Fatal("no alerts found in the chart's prometheusrule.yaml")
	}
	return out
}

// tableRows maps the first cell of each table row (`Name`) to the row.
func tableRows(text string) map[string]string {
	rows := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cell := strings.TrimPrefix(line, "| `")
		name, _, ok := strings.Cut(cell, "`")
		if ok {
			rows[name] = line
		}
	}
	return rows
}

// TestEveryReasonAndAlertLeadsToARunbook checks the mapping in
// troubleshooting.md against the code and the chart: every Event reason
// and every alert has a row, every alert's row and every runbook_url lead
// to the same runbook, and each runbook names, at its top, the reasons and
// alerts that lead to it.
func TestEveryReasonAndAlertLeadsToARunbook(t *testing.T) {
	docs := map[string]docFile{}
	for _, d := range readDocs(t) {
		docs[d.path] = d
	}
	ts, ok := docs["docs/troubleshooting.md"]
	if !ok {
		t.Fatal("docs/troubleshooting.md is missing")
	}
	rows := tableRows(ts.text)
	reasons := eventReasons(t)
	alerts := chartAlerts(t)
	leadsHere := map[string]string{}
	for p, d := range docs {
		if !strings.HasPrefix(p, "runbooks/") {
			continue
		}
		first := ""
		for _, line := range strings.Split(d.text, "\n") {
			if strings.HasPrefix(line, "**Leads here:**") {
				first = line
				break
			}
		}
		if first == "" {
			t.Errorf("%s does not start with a **Leads here:** line naming its Event reasons and alerts", p)
		}
		leadsHere[p] = first
	}
	for _, r := range reasons {
		row, ok := rows[r]
		if !ok {
			t.Errorf("Event reason %s has no row in docs/troubleshooting.md", r)
			continue
		}
		if !strings.Contains(row, "](") {
			t.Errorf("the row of %s in docs/troubleshooting.md links nowhere", r)
		}
		for p, line := range leadsHere {
			if strings.Contains(line, "`"+r+"`") && !strings.Contains(row, filepath.Base(p)) {
				t.Errorf("%s names %s, but its row in docs/troubleshooting.md does not link to it", p, r)
			}
		}
	}
	for a, rb := range alerts {
		p := "runbooks/" + rb
		if _, ok := docs[p]; !ok {
			t.Errorf("alert %s's runbook_url names %s, which does not exist", a, p)
			continue
		}
		if !strings.Contains(leadsHere[p], "`"+a+"`") {
			t.Errorf("%s does not name alert %s at its top, though the alert links to it", p, a)
		}
		row, ok := rows[a]
		if !ok {
			t.Errorf("alert %s has no row in docs/troubleshooting.md", a)
			continue
		}
		if !strings.Contains(row, "("+"../"+p+")") {
			t.Errorf("the row of alert %s in docs/troubleshooting.md does not link to %s", a, p)
		}
	}
	known := map[string]bool{}
	for _, r := range reasons {
		known[r] = true
	}
	for a := range alerts {
		known[a] = true
	}
	nameRE := regexp.MustCompile("`([A-Z][A-Za-z]+)`")
	for p, line := range leadsHere {
		for _, m := range nameRE.FindAllStringSubmatch(line, -1) {
			if !known[m[1]] {
				t.Errorf("%s names %s at its top, which is neither an Event reason nor an alert", p, m[1])
			}
		}
	}
}

// TestDocumentedPromQLIsWhatTheControllerSends compares the PromQL blocks
// of docs/metrics.md with metrics.Queries for the documented example.
func TestDocumentedPromQLIsWhatTheControllerSends(t *testing.T) {
	var doc docFile
	for _, d := range readDocs(t) {
		if d.path == "docs/metrics.md" {
			doc = d
		}
	}
	if doc.path == "" {
		t.Fatal("docs/metrics.md is missing")
	}
	blocks := map[string]bool{}
	for _, b := range doc.blocks {
		if b.lang == "promql" {
			blocks[strings.TrimSpace(b.body)] = true
		}
	}
	custom := `sum(rate(payment_transactions_total{namespace="{{ .Namespace }}",pod=~"{{ .Workload }}-[a-z0-9]+-[a-z0-9]+",status="success"}[{{ .Window }}]))` +
		"\n" + `/ sum(rate(payment_transactions_total{namespace="{{ .Namespace }}",pod=~"{{ .Workload }}-[a-z0-9]+-[a-z0-9]+"}[{{ .Window }}]))`
	if !strings.Contains(strings.ReplaceAll(doc.text, "\n          ", "\n"), custom) {
		t.Errorf("docs/metrics.md no longer shows the custom metric this test renders:\n%s", custom)
	}
	req := metrics.Request{
		Namespace: "payments", Stable: "payment-service", Canary: "payment-service-canary",
		Window: time.Minute,
		Checks: []policy.Check{
			{Metric: policy.MetricErrorRate}, {Metric: policy.MetricLatencyP95}, {Metric: "transaction-success"},
		},
		// The folded YAML scalar of the docs joins the two lines with a space.
		Metrics: map[string]policy.MetricQuery{"transaction-success": {Query: strings.ReplaceAll(custom, "\n", " ")}},
	}
	queries := metrics.Queries(req)
	if len(queries) != 5 {
		t.Fatalf("metrics.Queries returned %d queries, want 5 (requests, 5xx, buckets, custom twice): %q", len(queries), queries)
	}
	for _, q := range queries {
		if !blocks[q] {
			t.Errorf("docs/metrics.md lacks the query the controller sends, as a ```promql block:\n%s", q)
		}
	}
}

var linkRE = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestLinksResolve checks every relative link of docs/ and runbooks/: the
// file exists and, with a #fragment into Markdown, so does the heading.
func TestLinksResolve(t *testing.T) {
	root := repoRoot(t)
	anchors := map[string]map[string]bool{}
	for _, d := range readDocs(t) {
		anchors[d.path] = headingAnchors(d.text)
	}
	for _, d := range readDocs(t) {
		text := stripCode(d.text)
		for _, m := range linkRE.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, frag, _ := strings.Cut(target, "#")
			resolved := d.path
			if file != "" {
				resolved = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(d.path), file)))
			}
			if _, err := os.Stat(filepath.Join(root, resolved)); err != nil {
				if pendingDocs[resolved] {
					continue
				}
				t.Errorf("%s links to %s, which does not exist", d.path, target)
				continue
			}
			if frag == "" || !strings.HasSuffix(resolved, ".md") {
				continue
			}
			a, ok := anchors[resolved]
			if !ok {
				data, err := os.ReadFile(filepath.Join(root, resolved))
				if err != nil {
					t.Fatal(err)
				}
				a = headingAnchors(string(data))
			}
			if !a[frag] {
				known := make([]string, 0, len(a))
				for k := range a {
					known = append(known, k)
				}
				sort.Strings(known)
				t.Errorf("%s links to %s, but %s has no heading #%s (has: %s)", d.path, target, resolved, frag, strings.Join(known, ", "))
			}
		}
	}
}

// stripCode removes fenced blocks and inline code, where brackets are not
// links.
func stripCode(text string) string {
	var out strings.Builder
	fence := ""
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if f := openingFence(trimmed); f != "" && (fence == "" || strings.HasPrefix(trimmed, fence)) {
			if fence == "" {
				fence = f
			} else {
				fence = ""
			}
			continue
		}
		if fence != "" {
			continue
		}
		out.WriteString(regexp.MustCompile("`[^`]*`").ReplaceAllString(line, ""))
		out.WriteByte('\n')
	}
	return out.String()
}

// headingAnchors lists the anchors GitHub gives a document's headings:
// lower case, punctuation other than - and _ dropped, spaces to dashes.
func headingAnchors(text string) map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(stripCodeBlocksOnly(text), "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(h) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9'):
				b.WriteRune(r)
			}
		}
		out[b.String()] = true
	}
	return out
}

func stripCodeBlocksOnly(text string) string {
	var out strings.Builder
	fence := ""
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if f := openingFence(trimmed); f != "" && (fence == "" || strings.HasPrefix(trimmed, fence)) {
			if fence == "" {
				fence = f
			} else {
				fence = ""
			}
			continue
		}
		if fence == "" {
			out.WriteString(line)
			out.WriteByte('\n')
		}
	}
	return out.String()
}
