package install

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/meshcanary/meshcanary/test/harness"
)

// runbooks are the runbook files alerts and dashboards may link to
// (runbooks/ of the repository).
var runbooks = []string{"canary-rollback.md", "rollout-stuck.md", "metrics-unavailable.md",
	"controller-down.md", "invalid-configuration.md", "regression-after-promotion.md"}

// TestAlertsCarryWhatOnCallNeeds checks every alert for a severity, a
// summary, a description and a runbook link that follows runbookBaseURL to
// a runbook that exists by name.
func TestAlertsCarryWhatOnCallNeeds(t *testing.T) {
	t.Parallel()
	const base = "https://runbooks.example.com/meshcanary"
	values := writeFile(t, "values.yaml", fmt.Sprintf("prometheusRule: {enabled: true, alertLabels: {team: payments}}\nrunbookBaseURL: %s/\n", base))
	rule := find(t, render(t, "meshcanary", "meshcanary-system", values), "PrometheusRule", "")
	groups := rule.Object["spec"].(map[string]any)["groups"].([]any)
	seen := map[string]bool{}
	for _, g := range groups {
		for _, r := range g.(map[string]any)["rules"].([]any) {
			rm := r.(map[string]any)
			name := fmt.Sprint(rm["alert"])
			t.Run(name, func(t *testing.T) {
				if seen[name] {
					t.Errorf("alert %s is defined twice", name)
				}
				seen[name] = true
				labels, _ := rm["labels"].(map[string]any)
				if s := labels["severity"]; s != "critical" && s != "warning" {
					t.Errorf("severity %v, want critical or warning", s)
				}
				if labels["team"] != "payments" {
					t.Errorf("alertLabels are not on the alert: %v", labels)
				}
				ann, _ := rm["annotations"].(map[string]any)
				for _, k := range []string{"summary", "description"} {
					if strings.TrimSpace(fmt.Sprint(ann[k])) == "" || ann[k] == nil {
						t.Errorf("no %s", k)
					}
				}
				url := fmt.Sprint(ann["runbook_url"])
				file, ok := strings.CutPrefix(url, base+"/")
				if !ok || !slices.Contains(runbooks, file) {
					t.Errorf("runbook_url %s is not one of %v under %s", url, runbooks, base)
				}
			})
		}
	}
	for _, want := range []string{"MeshcanaryRolledBack", "MeshcanaryRolloutStuck", "MeshcanaryAnalysisInconclusive",
		"MeshcanaryConfigurationInvalid", "MeshcanaryControllerDown", "MeshcanaryNotLeading"} {
		if !seen[want] {
			t.Errorf("no alert %s", want)
		}
	}
}

// TestDashboardsAreShippedForTheGrafanaSidecar checks the dashboard
// ConfigMaps (label, namespace, one JSON each) and what Grafana needs of
// the JSON: unique uids, a Prometheus datasource variable that every query
// uses, unique panel ids, panels within the 24-column grid, and runbook
// links that follow runbookBaseURL.
func TestDashboardsAreShippedForTheGrafanaSidecar(t *testing.T) {
	t.Parallel()
	const base = "https://wiki.example.com/runbooks"
	values := writeFile(t, "values.yaml", fmt.Sprintf(`
runbookBaseURL: %s
dashboards: {namespace: grafana, label: my_dashboards, labelValue: "yes", annotations: {grafana_folder: meshcanary}}
`, base))
	uids := map[string]string{}
	var count int
	for _, cm := range render(t, "meshcanary", "meshcanary-system", values) {
		if cm.GetKind() != "ConfigMap" || cm.GetLabels()["my_dashboards"] == "" {
			continue
		}
		count++
		if cm.GetLabels()["my_dashboards"] != "yes" || cm.GetNamespace() != "grafana" || cm.GetAnnotations()["grafana_folder"] != "meshcanary" {
			t.Errorf("ConfigMap %s: labels %v, namespace %s, annotations %v", cm.GetName(), cm.GetLabels(), cm.GetNamespace(), cm.GetAnnotations())
		}
		data := nested(t, cm.Object, "data")
		if len(data) != 1 {
			t.Errorf("ConfigMap %s holds %d files, want one dashboard", cm.GetName(), len(data))
		}
		for file, raw := range data {
			t.Run(file, func(t *testing.T) {
				var d struct {
					UID        string                          `json:"uid"`
					Title      string                          `json:"title"`
					Panels     []dashPanel                     `json:"panels"`
					Templating struct{ List []map[string]any } `json:"templating"`
					Links      []struct{ URL string }          `json:"links"`
				}
				harness.Must(t, json.Unmarshal([]byte(raw.(string)), &d))
				if d.UID == "" || d.Title == "" {
					t.Errorf("uid %q, title %q", d.UID, d.Title)
				}
				if other, dup := uids[d.UID]; dup {
					t.Errorf("uid %s also used by %s", d.UID, other)
				}
				uids[d.UID] = file
				if len(d.Templating.List) == 0 || d.Templating.List[0]["name"] != "datasource" || d.Templating.List[0]["query"] != "prometheus" {
					t.Errorf("the first variable is not a Prometheus datasource variable: %v", d.Templating.List)
				}
				ids := map[int]bool{}
				var walk func([]dashPanel)
				walk = func(ps []dashPanel) {
					for _, p := range ps {
						if ids[p.ID] {
							t.Errorf("panel id %d used twice", p.ID)
						}
						ids[p.ID] = true
						if p.GridPos.X+p.GridPos.W > 24 || p.GridPos.W <= 0 || p.GridPos.H <= 0 {
							t.Errorf("panel %q does not fit the grid: %+v", p.Title, p.GridPos)
						}
						for _, tg := range p.Targets {
							if tg.Datasource.UID != "${datasource}" {
								t.Errorf("panel %q target %s queries datasource %q, not ${datasource}", p.Title, tg.RefID, tg.Datasource.UID)
							}
						}
						walk(p.Panels)
					}
				}
				walk(d.Panels)
				if strings.Contains(raw.(string), "github.com/meshcanary/meshcanary/blob/main/runbooks") {
					t.Error("a runbook link ignores runbookBaseURL")
				}
				for _, l := range d.Links {
					if strings.Contains(l.URL, "runbooks") || strings.HasSuffix(l.URL, ".md") {
						if file, ok := strings.CutPrefix(l.URL, base+"/"); !ok || !slices.Contains(runbooks, file) {
							t.Errorf("link %s is not one of the runbooks under %s", l.URL, base)
						}
					}
				}
			})
		}
	}
	if count != 3 {
		t.Errorf("%d dashboard ConfigMaps, want 3 (overview, detail, controller health)", count)
	}
}

type dashPanel struct {
	ID      int    `json:"id"`
	Title   string `json:"title"`
	GridPos struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string `json:"refId"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"`
}
