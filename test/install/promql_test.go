package install

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/meshcanary/meshcanary/test/harness"
)

// promExpr is one PromQL expression a dashboard or an alert evaluates, with
// how it is evaluated there.
type promExpr struct {
	where string // "<dashboard> / <panel> / <refId>", or "alert <name>"
	expr  string
	// instant: Grafana asks for the value now (stat and table panels);
	// otherwise a range over the time window (time series, annotations,
	// rules as the rule evaluator sees them over time).
	instant bool
	// interval is the panel's minimum interval, which Grafana's
	// $__interval never goes below.
	interval string
	// label, for a variable's label_values(), must be on the results.
	label string
}

// dashboardExprs collects every PromQL expression of a Grafana dashboard:
// panel targets (rows included), annotation queries and the metric
// selectors of label_values() variables.
func dashboardExprs(t testing.TB, name, raw string) []promExpr {
	t.Helper()
	var d struct {
		Panels      []grafanaPanel `json:"panels"`
		Annotations struct {
			List []struct {
				Name string `json:"name"`
				Expr string `json:"expr"`
			} `json:"list"`
		} `json:"annotations"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal([]byte(raw), &d); err != nil {
		t.Fatalf("dashboard %s is not JSON: %v", name, err)
	}
	var out []promExpr
	var walk func(ps []grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out = append(out, promExpr{where: name + " / " + p.Title + " / " + tg.RefID, expr: tg.Expr, instant: tg.Instant, interval: p.Interval})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			out = append(out, promExpr{where: name + " / annotation " + a.Name, expr: a.Expr})
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("%s: variable %s is not label_values(<selector>, <label>): %q", name, v.Name, v.Definition)
			continue
		}
		out = append(out, promExpr{where: name + " / variable " + v.Name, expr: m[1], instant: true, label: m[2]})
	}
	return out
}

type grafanaPanel struct {
	Title    string `json:"title"`
	Interval string `json:"interval"`
	Targets  []struct {
		RefID   string `json:"refId"`
		Expr    string `json:"expr"`
		Instant bool   `json:"instant"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

// grafanaVars are the values the test's dashboards are viewed with.
type grafanaVars struct {
	namespace, deployment, job string
	window                     time.Duration // the dashboard's time range
}

var grafanaVar = regexp.MustCompile(`\$\{?([A-Za-z0-9_]+)\}?`)

// substitute does what Grafana does to an expression before sending it:
// dashboard variables, $__rate_interval (1m: Grafana's value for the default
// 15s scrape interval), $__interval (the panel's minimum, else the 1s of
// the test's scrapes) and $__range (the time range). label_replace's $1 is
// not a variable. Any other $name is a typo, and an error.
func (v grafanaVars) substitute(e promExpr) (string, error) {
	interval := e.interval
	if interval == "" {
		interval = "1s"
	}
	values := map[string]string{
		"namespace": v.namespace, "deployment": v.deployment, "job": v.job,
		"__rate_interval": "1m", "__interval": interval,
		"__range": fmt.Sprintf("%ds", int(v.window.Seconds()+1)),
	}
	var unknown []string
	out := grafanaVar.ReplaceAllStringFunc(e.expr, func(m string) string {
		name := grafanaVar.FindStringSubmatch(m)[1]
		if val, ok := values[name]; ok {
			return val
		}
		if regexp.MustCompile(`^[0-9]+$`).MatchString(name) {
			return m
		}
		unknown = append(unknown, m)
		return m
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("unknown dashboard variables %v", unknown)
	}
	return out, nil
}

// alertRule is one alerting rule of the rendered PrometheusRule.
type alertRule struct {
	name, expr string
}

func alertRules(t testing.TB, rule *unstructured.Unstructured) []alertRule {
	t.Helper()
	groups, _, err := unstructured.NestedSlice(rule.Object, "spec", "groups")
	if err != nil || len(groups) == 0 {
		t.Fatalf("PrometheusRule %s has no groups (%v)", rule.GetName(), err)
	}
	var out []alertRule
	for _, g := range groups {
		for _, r := range g.(map[string]any)["rules"].([]any) {
			rm := r.(map[string]any)
			out = append(out, alertRule{name: fmt.Sprint(rm["alert"]), expr: fmt.Sprint(rm["expr"])})
		}
	}
	return out
}

// checkRulesWithPromtool writes the PrometheusRule's groups as a Prometheus
// rule file and runs `promtool check rules` on it, which parses every
// expression and every annotation template.
func checkRulesWithPromtool(t testing.TB, rule *unstructured.Unstructured) {
	t.Helper()
	spec, _, _ := unstructured.NestedMap(rule.Object, "spec")
	b, err := yaml.Marshal(spec)
	harness.Must(t, err)
	file := writeFile(t, "rules.yaml", string(b))
	if r := run(context.Background(), t.TempDir(), nil, "promtool", "check", "rules", file); r.err != nil {
		t.Fatalf("promtool check rules: %s", r)
	}
}

func promAPI(t testing.TB) promv1.API {
	t.Helper()
	c, err := promapi.NewClient(promapi.Config{Address: suite.Env().PrometheusURL})
	harness.Must(t, err)
	return promv1.NewAPI(c)
}

// evaluate runs an expression as Grafana or the rule evaluator would:
// instant at now, or over [start, now] at 1s steps. It reports whether
// there was any sample, and what came back for messages.
func evaluate(ctx context.Context, api promv1.API, expr string, instant bool, start time.Time) (bool, string, error) {
	var v model.Value
	var err error
	if instant {
		v, _, _, err = api.Query(ctx, expr, time.Now())
	} else {
		v, _, _, err = api.QueryRange(ctx, expr, promv1.Range{Start: start, End: time.Now(), Step: time.Second})
	}
	if err != nil {
		return false, "", err
	}
	switch x := v.(type) {
	case model.Vector:
		return len(x) > 0, summarize(x.String()), nil
	case model.Matrix:
		n := 0
		for _, s := range x {
			n += len(s.Values)
		}
		return n > 0, fmt.Sprintf("%d series, %d samples", len(x), n), nil
	case *model.Scalar:
		return true, x.String(), nil
	}
	return false, fmt.Sprintf("%T", v), nil
}

func summarize(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// pollAllNonEmpty evaluates every expression until each has returned data
// at least once, or the deadline passes; then it reports the rest. exempt
// maps an expression's where to why it legitimately has no data.
func pollAllNonEmpty(t testing.TB, exprs []promExpr, subst func(promExpr) (string, error), start time.Time, exempt map[string]string, timeout time.Duration) {
	t.Helper()
	api := promAPI(t)
	pending := map[string]promExpr{}
	queries := map[string]string{}
	for _, e := range exprs {
		if _, ok := exempt[e.where]; ok {
			continue
		}
		q, err := subst(e)
		if err != nil {
			t.Errorf("%s: %v", e.where, err)
			continue
		}
		pending[e.where] = e
		queries[e.where] = q
	}
	for where := range exempt {
		found := false
		for _, e := range exprs {
			found = found || e.where == where
		}
		if !found {
			t.Errorf("the exemption for %q names no expression; remove it", where)
		}
	}
	last := map[string]string{}
	deadline := time.Now().Add(timeout)
	for len(pending) > 0 {
		for where, e := range pending {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			q := queries[where]
			if e.label != "" {
				// label_values(<selector>, <label>): the label must be there.
				q = fmt.Sprintf("count by (%s) (%s)", e.label, q)
			}
			ok, got, err := evaluate(ctx, api, q, e.instant, start)
			cancel()
			switch {
			case err != nil:
				last[where] = "error: " + err.Error()
			case ok && e.label != "" && strings.Contains(got, e.label+`=""`):
				last[where] = "results lack label " + e.label + ": " + got
			case ok:
				delete(pending, where)
			default:
				last[where] = "no data"
			}
		}
		if len(pending) == 0 || time.Now().After(deadline) {
			break
		}
		<-time.After(time.Second)
	}
	var missing []string
	for where := range pending {
		missing = append(missing, fmt.Sprintf("%s (%s):\n    %s", where, last[where], queries[where]))
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("no data within %s for %s", timeout, m)
	}
}
