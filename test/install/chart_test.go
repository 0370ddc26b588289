package install

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshcanary/meshcanary/pkg/policy"
	"github.com/meshcanary/meshcanary/test/harness"
)

// valueSet is one configuration the chart must render into objects the API
// server accepts. WATCHED in values stands for a namespace the test
// created, for watchNamespace.
type valueSet struct {
	name      string
	values    string
	wantKinds map[string]int
	// wantWarnings is true for the one set that breaks the restricted Pod
	// Security profile on purpose, to show the check can fail.
	wantWarnings bool
}

func valueSets() []valueSet {
	return []valueSet{
		{
			name:   "the default values",
			values: "",
			// Two ClusterRoles: the controller's and <fullname>-view.
			wantKinds: map[string]int{"Deployment": 1, "ServiceAccount": 1, "ClusterRole": 2, "ClusterRoleBinding": 1,
				"Role": 1, "RoleBinding": 1, "ConfigMap": 4, "Service": 1, "PodDisruptionBudget": 1},
		},
		{
			name: "one watched namespace with the ServiceMonitor, the PrometheusRule and a notification Secret",
			values: `
watchNamespace: WATCHED
serviceMonitor: {enabled: true, labels: {release: kube-prometheus-stack}}
prometheusRule: {enabled: true, alertLabels: {team: payments}}
notifications: {secretName: meshcanary-notifications}
dashboards: {annotations: {grafana_folder: meshcanary}}
`,
			// The one ClusterRole is <fullname>-view: only ClusterRoles aggregate.
			wantKinds: map[string]int{"Deployment": 1, "ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 0,
				"Role": 2, "RoleBinding": 2, "ConfigMap": 4, "Service": 1, "PodDisruptionBudget": 1,
				"ServiceMonitor": 1, "PrometheusRule": 1},
		},
		{
			name: "one replica without leader election, dashboards or disruption budget",
			values: `
fullnameOverride: canary-controller
replicaCount: 1
leaderElection: {enabled: false, leaseName: meshcanary-controller}
dashboards: {enabled: false}
podDisruptionBudget: {enabled: false}
image: {digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
prometheus: {url: "https://prometheus.monitoring.svc:9091", timeout: 30s}
controller: {workers: 8, logFormat: console, logLevel: debug}
`,
			wantKinds: map[string]int{"Deployment": 1, "ClusterRole": 2, "ClusterRoleBinding": 1, "Role": 0, "RoleBinding": 0,
				"ConfigMap": 1, "PodDisruptionBudget": 0},
		},
		{
			name: "a container allowed to escalate its privileges, which the restricted profile refuses",
			values: `
securityContext: {allowPrivilegeEscalation: true, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: {drop: [ALL]}}
`,
			wantKinds:    map[string]int{"Deployment": 1},
			wantWarnings: true,
		},
	}
}

func TestChartPassesHelmLint(t *testing.T) {
	t.Parallel()
	for _, vs := range valueSets() {
		t.Run(vs.name, func(t *testing.T) {
			t.Parallel()
			values := writeFile(t, "values.yaml", strings.ReplaceAll(vs.values, "WATCHED", "team-a"))
			if r := helm(t, "lint", "--strict", chartDir(t), "--namespace", "meshcanary-system", "--values", values); r.err != nil {
				t.Fatalf("helm lint: %s", r)
			}
		})
	}
}

func TestRenderedChartIsAcceptedByTheAPIServer(t *testing.T) {
	t.Parallel()
	installMonitoringCRDs(t)
	for _, vs := range valueSets() {
		t.Run(vs.name, func(t *testing.T) {
			t.Parallel()
			ns := restrictedNamespace(t)
			watched := suite.Env().NewNamespace(t)
			values := writeFile(t, "values.yaml", strings.ReplaceAll(vs.values, "WATCHED", watched))
			// A release name of its own: cluster-scoped objects (ClusterRole)
			// of an installed release must not be the ones dry-run against.
			release := "dry-" + ns[len(ns)-6:]
			objs := render(t, release, ns, values)
			kinds := kindsOf(objs)
			for kind, n := range vs.wantKinds {
				if kinds[kind] != n {
					t.Errorf("rendered %d %s, want %d (all: %v)", kinds[kind], kind, n, kinds)
				}
			}
			r := helm(t, "template", release, chartDir(t), "--namespace", ns, "--values", values)
			if r.err != nil {
				t.Fatalf("helm template: %s", r)
			}
			manifest := writeFile(t, "rendered.yaml", r.stdout)
			applied := kubectl(t, "apply", "--dry-run=server", "-f", manifest)
			if applied.err != nil {
				t.Fatalf("the API server refused the rendered chart: %s", applied)
			}
			got := warnings(applied.stderr)
			switch {
			case vs.wantWarnings && (len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), `violate PodSecurity "restricted`)):
				t.Errorf("want a restricted Pod Security warning, got:\n%s", applied.stderr)
			case !vs.wantWarnings && len(got) > 0:
				t.Errorf("the API server warned:\n%s", strings.Join(got, "\n"))
			}
		})
	}
}

func TestValuesSchemaRejectsBadValues(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		values  string
		wantErr string
	}{
		{"a replica count that is not a number", "replicaCount: two", "/replicaCount"},
		{"no replicas at all", "replicaCount: 0", "/replicaCount"},
		{"a misspelt top-level value", "replicas: 3", "'replicas' not allowed"},
		{"an image pull policy Kubernetes does not know", "image: {pullPolicy: Sometimes}", "/image/pullPolicy"},
		{"an image digest that is not a sha256", "image: {digest: latest}", "/image/digest"},
		{"a log format the controller does not accept", "controller: {logFormat: xml}", "/controller/logFormat"},
		{"a Prometheus URL without a scheme", "prometheus: {url: 'prometheus:9090'}", "/prometheus/url"},
		{"a watched namespace that is no namespace name", "watchNamespace: Team_A", "/watchNamespace"},
		{"a stage weight over 100", "policies: [{name: fast, stages: [{weight: 101, duration: 1m}]}]", "/policies/0/stages/0/weight"},
		{"a policy without a name", "policies: [{interval: 1m}]", "/policies/0"},
		{"a stage duration without a unit", "policies: [{name: fast, stages: [{weight: 10, duration: 10}]}]", "/policies/0/stages/0/duration"},
		{"a check without any bound", "policies: [{name: fast, checks: [{metric: error-rate}]}]", "/policies/0/checks/0"},
		{"a misspelt policy field", "policies: [{name: fast, minRequest: 5}]", "'minRequest' not allowed"},
		{"a notification Secret name with capitals", "notifications: {secretName: Slack}", "/notifications/secretName"},
		{"an alert window that is no PromQL duration", "prometheusRule: {stuckAfter: 1 hour}", "/prometheusRule/stuckAfter"},
		{"a dashboard label value with a space", "dashboards: {labelValue: 'a b'}", "/dashboards/labelValue"},
		{"a memory limit Kubernetes cannot parse", "resources: {limits: {memory: 256MB}}", "/resources/limits/memory"},
		{"two replicas without leader election", "leaderElection: {enabled: false, leaseName: x}", "/leaderElection/enabled"},
		{"a blue/green strategy misspelt", "policies: [{name: bg, strategy: blue-green}]", "/policies/0/strategy"},
		{"a notification route without channel", "policies: [{name: bg, notify: [{on: all}]}]", "/policies/0/notify/0"},
		{"a gate of an unknown type", "policies: [{name: bg, gates: [{name: smoke, type: before}]}]", "/policies/0/gates/0/type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			values := writeFile(t, "values.yaml", c.values+"\n")
			for _, cmd := range [][]string{
				{"template", "meshcanary", chartDir(t), "--values", values},
				{"lint", "--strict", chartDir(t), "--values", values},
			} {
				r := helm(t, cmd...)
				if r.err == nil {
					t.Errorf("helm %s accepted %q", cmd[0], c.values)
					continue
				}
				if out := r.stdout + r.stderr; !strings.Contains(out, c.wantErr) {
					t.Errorf("helm %s failed without naming %q:\n%s", cmd[0], c.wantErr, out)
				}
			}
		})
	}
}

// TestChartWiresPortsProbesAndSelectorsTogether checks the references
// between the rendered objects that no single object's validation sees: a
// probe on a port nothing listens on, or a ServiceMonitor that selects no
// Service, is accepted by the API server and fails only in production.
func TestChartWiresPortsProbesAndSelectorsTogether(t *testing.T) {
	t.Parallel()
	values := writeFile(t, "values.yaml", "serviceMonitor: {enabled: true}\nprometheusRule: {enabled: true}\nnotifications: {secretName: hooks}\n")
	objs := render(t, "mc", "ops", values)
	dep := find(t, objs, "Deployment", "")
	pod := nested(t, dep.Object, "spec", "template")
	podLabels := stringMap(nested(t, pod, "metadata", "labels"))
	c := containerNamed(t, dep, "controller")
	args := stringSlice(c["args"])
	flags := flagMap(args)
	ports := map[string]int64{}
	for _, p := range c["ports"].([]any) {
		pm := p.(map[string]any)
		ports[pm["name"].(string)] = toInt(pm["containerPort"])
	}

	t.Run("the metrics port is the one the controller listens on", func(t *testing.T) {
		if got := ports["metrics"]; ":"+strconv.FormatInt(got, 10) != flags["--metrics-bind-address"] {
			t.Errorf("container port metrics=%d, but --metrics-bind-address=%s", got, flags["--metrics-bind-address"])
		}
	})
	t.Run("both probes ask the health endpoint on its port", func(t *testing.T) {
		if got := ports["health"]; ":"+strconv.FormatInt(got, 10) != flags["--health-probe-bind-address"] {
			t.Errorf("container port health=%d, but --health-probe-bind-address=%s", got, flags["--health-probe-bind-address"])
		}
		for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
			get := nested(t, c, probe, "httpGet")
			if get["path"] != path || get["port"] != "health" {
				t.Errorf("%s asks %v on port %v, want %s on health", probe, get["path"], get["port"], path)
			}
		}
	})
	svc := find(t, objs, "Service", "")
	t.Run("the metrics Service selects the controller pods' metrics port", func(t *testing.T) {
		if sel := stringMap(nested(t, svc.Object, "spec", "selector")); !subset(sel, podLabels) {
			t.Errorf("Service selector %v does not select pods labelled %v", sel, podLabels)
		}
		sp := nested(t, svc.Object, "spec")["ports"].([]any)[0].(map[string]any)
		if _, ok := ports[fmt.Sprint(sp["targetPort"])]; !ok || sp["name"] != "metrics" {
			t.Errorf("Service port %v targets %v; container ports %v", sp["name"], sp["targetPort"], ports)
		}
	})
	t.Run("the ServiceMonitor selects the metrics Service and keeps the rollouts' namespace label", func(t *testing.T) {
		sm := find(t, objs, "ServiceMonitor", "")
		if sel := stringMap(nested(t, sm.Object, "spec", "selector", "matchLabels")); !subset(sel, svc.GetLabels()) {
			t.Errorf("ServiceMonitor selector %v does not select the Service labelled %v", sel, svc.GetLabels())
		}
		ns := stringSlice(nested(t, sm.Object, "spec", "namespaceSelector")["matchNames"])
		if !slices.Contains(ns, svc.GetNamespace()) {
			t.Errorf("ServiceMonitor looks in %v, the Service is in %s", ns, svc.GetNamespace())
		}
		ep := nested(t, sm.Object, "spec")["endpoints"].([]any)[0].(map[string]any)
		if ep["port"] != "metrics" || ep["path"] != "/metrics" || ep["honorLabels"] != true {
			t.Errorf("ServiceMonitor endpoint %v: want port metrics, path /metrics, honorLabels true", ep)
		}
	})
	t.Run("the alerts select the job prometheus-operator names after the Service", func(t *testing.T) {
		rule := find(t, objs, "PrometheusRule", "")
		for _, r := range alertRules(t, rule) {
			if !strings.Contains(r.expr, `job="`+svc.GetName()+`"`) {
				t.Errorf("alert %s does not select job=%q: %s", r.name, svc.GetName(), r.expr)
			}
		}
	})
	t.Run("the disruption budget covers the controller pods", func(t *testing.T) {
		pdb := find(t, objs, "PodDisruptionBudget", "")
		if sel := stringMap(nested(t, pdb.Object, "spec", "selector", "matchLabels")); !subset(sel, podLabels) {
			t.Errorf("PDB selector %v does not select pods labelled %v", sel, podLabels)
		}
	})
	t.Run("every binding names the ServiceAccount the pods run as", func(t *testing.T) {
		sa := find(t, objs, "ServiceAccount", "")
		if got := nested(t, pod, "spec")["serviceAccountName"]; got != sa.GetName() {
			t.Errorf("pods run as %v, the chart creates ServiceAccount %s", got, sa.GetName())
		}
		for _, o := range objs {
			if o.GetKind() != "RoleBinding" && o.GetKind() != "ClusterRoleBinding" {
				continue
			}
			s := o.Object["subjects"].([]any)[0].(map[string]any)
			if s["name"] != sa.GetName() || s["namespace"] != sa.GetNamespace() {
				t.Errorf("%s %s binds %v/%v, not %s/%s", o.GetKind(), o.GetName(), s["namespace"], s["name"], sa.GetNamespace(), sa.GetName())
			}
		}
	})
	t.Run("the policies file is mounted where --policies points", func(t *testing.T) {
		cm := find(t, objs, "ConfigMap", "mc-meshcanary-policies")
		if _, ok := nested(t, cm.Object, "data")["policies.yaml"]; !ok {
			t.Fatalf("ConfigMap %s has no policies.yaml", cm.GetName())
		}
		var mountPath string
		for _, m := range c["volumeMounts"].([]any) {
			if mm := m.(map[string]any); mm["name"] == "policies" {
				mountPath = mm["mountPath"].(string)
			}
		}
		if flags["--policies"] != mountPath+"/policies.yaml" {
			t.Errorf("--policies=%s, the ConfigMap is mounted at %s", flags["--policies"], mountPath)
		}
		for _, v := range nested(t, pod, "spec")["volumes"].([]any) {
			if vm := v.(map[string]any); vm["name"] == "policies" {
				if got := vm["configMap"].(map[string]any)["name"]; got != cm.GetName() {
					t.Errorf("the policies volume mounts ConfigMap %v, the chart creates %s", got, cm.GetName())
				}
			}
		}
	})
	t.Run("the Role covers exactly the Lease the controller elects with and the notification Secret", func(t *testing.T) {
		role := find(t, objs, "Role", "mc-meshcanary-own-namespace")
		var names []string
		for _, r := range role.Object["rules"].([]any) {
			names = append(names, stringSlice(r.(map[string]any)["resourceNames"])...)
		}
		slices.Sort(names)
		want := []string{"hooks", flags["--leader-election-id"]}
		slices.Sort(want)
		if !slices.Equal(names, want) {
			t.Errorf("the Role names %v, want %v", names, want)
		}
		if flags["--leader-election-namespace"] != role.GetNamespace() {
			t.Errorf("the Lease is in %s, the Role in %s", flags["--leader-election-namespace"], role.GetNamespace())
		}
	})
}

// TestChartLetsViewersReadCanaryReleases checks the aggregated ClusterRole
// as rendered: testenv runs no clusterrole-aggregation controller, so the
// labels are what can be checked.
func TestChartLetsViewersReadCanaryReleases(t *testing.T) {
	t.Parallel()
	for _, vs := range []struct{ name, values string }{
		{"cluster-wide", ""},
		{"one watched namespace", "watchNamespace: team-a\n"},
	} {
		t.Run(vs.name, func(t *testing.T) {
			t.Parallel()
			objs := render(t, "mc", "ops", writeFile(t, "values.yaml", vs.values))
			role := find(t, objs, "ClusterRole", "mc-meshcanary-view")
			labels := role.GetLabels()
			for _, to := range []string{"view", "edit", "admin"} {
				if labels["rbac.authorization.k8s.io/aggregate-to-"+to] != "true" {
					t.Errorf("not aggregated to %s: labels %v", to, labels)
				}
			}
			rules := role.Object["rules"].([]any)
			if len(rules) != 1 {
				t.Fatalf("%d rules, want 1", len(rules))
			}
			r := rules[0].(map[string]any)
			if g, res, v := stringSlice(r["apiGroups"]), stringSlice(r["resources"]), stringSlice(r["verbs"]); !slices.Equal(g, []string{"meshcanary.io"}) ||
				!slices.Equal(res, []string{"canaryreleases"}) || !slices.Equal(v, []string{"get", "list", "watch"}) {
				t.Errorf("rule %v on %v of %v, want read-only canaryreleases of meshcanary.io", v, res, g)
			}
		})
	}
}

// TestChartPoliciesLoadInTheController renders the policies ConfigMap and
// parses it with the controller's own parser, which is strict about unknown
// fields and units: what helm accepts, the controller must load.
func TestChartPoliciesLoadInTheController(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, values string
		want         []string
	}{
		{"the default values", "", []string{"default", "blue-green"}},
		{"a policy with every field, written as the docs write it", `
policies:
- name: payments
  strategy: blueGreen
  monitor: 10m
  interval: 1m
  minRequests: 50
  failureLimit: 2
  metricsOutageLimit: 5
  stuckAfter: 30m
  window: "* 9-17 * * 1-5"
  freeze: ["* * 24-26 12 *"]
  checks:
  - {metric: error-rate, max: "1%", maxIncrease: "0.5%"}
  - {metric: latency-p95, max: 2s, maxRatio: 1.2}
  - {metric: transaction-success, min: "99%"}
  metrics:
    transaction-success:
      query: sum(rate(payment_ok_total{namespace="{{ .Namespace }}",workload="{{ .Workload }}"}[{{ .Window }}]))
  rules:
  - {when: "error-rate > 1%", for: 5m, action: rollback}
  gates:
  - {name: smoke, type: pre-rollout, url: "https://ci.example.com/hooks/smoke", timeout: 30s, retries: 1}
  notify:
  - {on: [rolledBack, stuck], to: pagerduty}
  - {on: all, to: slack}
  stages:
  - {weight: 100, duration: 10m, canaryReplicas: 3}
`, []string{"payments"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var files []string
			if c.values != "" {
				files = append(files, writeFile(t, "values.yaml", c.values))
			}
			objs := render(t, "meshcanary", "meshcanary-system", files...)
			cm := find(t, objs, "ConfigMap", "meshcanary-policies")
			f, err := policy.Parse([]byte(nested(t, cm.Object, "data")["policies.yaml"].(string)))
			if err != nil {
				t.Fatalf("the controller would refuse the chart's policies: %v", err)
			}
			var names []string
			for _, p := range f.Policies {
				names = append(names, p.Name)
			}
			if !slices.Equal(names, c.want) {
				t.Errorf("policies %v, want %v", names, c.want)
			}
		})
	}
}

// TestValuesSchemaKnowsEveryPolicyField compares the schema's policy fields
// with the controller's policy types, so that a field added to the
// controller is not refused by helm, and the schema accepts no field the
// controller would refuse.
func TestValuesSchemaKnowsEveryPolicyField(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(chartDir(t), "values.schema.json"))
	harness.Must(t, err)
	var schema map[string]any
	harness.Must(t, json.Unmarshal(raw, &schema))
	at := func(path ...string) map[string]any {
		m := schema
		for _, p := range path {
			next, ok := m[p].(map[string]any)
			if !ok {
				t.Fatalf("values.schema.json has no %s", strings.Join(path, "."))
			}
			m = next
		}
		return m
	}
	policyProps := []string{"properties", "policies", "items", "properties"}
	cases := []struct {
		name   string
		typ    reflect.Type
		schema []string
		extra  []string // schema-only keys, with why
	}{
		{"policy", reflect.TypeFor[policy.Policy](), policyProps, nil},
		{"stage", reflect.TypeFor[policy.Stage](), append(slices.Clone(policyProps), "stages", "items", "properties"), nil},
		{"check", reflect.TypeFor[policy.Check](), append(slices.Clone(policyProps), "checks", "items", "properties"), nil},
		{"custom metric", reflect.TypeFor[policy.MetricQuery](), append(slices.Clone(policyProps), "metrics", "additionalProperties", "properties"), nil},
		{"rule", reflect.TypeFor[policy.Rule](), append(slices.Clone(policyProps), "rules", "items", "properties"), nil},
		{"gate", reflect.TypeFor[policy.Gate](), append(slices.Clone(policyProps), "gates", "items", "properties"), nil},
		// An unquoted on: reaches the controller as the key "true".
		{"notification route", reflect.TypeFor[policy.NotifyRoute](), append(slices.Clone(policyProps), "notify", "items", "properties"), []string{"true"}},
	}
	for _, c := range cases {
		t.Run("the "+c.name+" fields", func(t *testing.T) {
			var inSchema []string
			for k := range at(c.schema...) {
				if !slices.Contains(c.extra, k) {
					inSchema = append(inSchema, k)
				}
			}
			var inGo []string
			for i := range c.typ.NumField() {
				f := c.typ.Field(i)
				name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
				if f.IsExported() && name != "-" && name != "" {
					inGo = append(inGo, name)
				}
			}
			slices.Sort(inSchema)
			slices.Sort(inGo)
			for _, k := range inGo {
				if !slices.Contains(inSchema, k) {
					t.Errorf("the controller accepts %s.%s, values.schema.json refuses it", c.name, k)
				}
			}
			for _, k := range inSchema {
				if !slices.Contains(inGo, k) {
					t.Errorf("values.schema.json accepts %s.%s, the controller refuses it", c.name, k)
				}
			}
		})
	}
}

// ---- helpers for reading unstructured objects

func nested(t testing.TB, obj map[string]any, path ...string) map[string]any {
	t.Helper()
	m, ok, err := unstructured.NestedMap(obj, path...)
	if err != nil || !ok {
		t.Fatalf("no %s in the object (%v)", strings.Join(path, "."), err)
	}
	return m
}

func containerNamed(t testing.TB, dep *unstructured.Unstructured, name string) map[string]any {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	for _, c := range cs {
		if cm := c.(map[string]any); cm["name"] == name {
			return cm
		}
	}
	t.Fatalf("Deployment %s has no container %q", dep.GetName(), name)
	return nil
}

func stringMap(m map[string]any) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = fmt.Sprint(v)
	}
	return out
}

func stringSlice(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

// flagMap reads "--name=value" arguments.
func flagMap(args []string) map[string]string {
	m := map[string]string{}
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(k, "--") {
			m[k] = v
		}
	}
	return m
}

func subset(sub, of map[string]string) bool {
	if len(sub) == 0 {
		return false
	}
	for _, k := range slices.Collect(maps.Keys(sub)) {
		if of[k] != sub[k] {
			return false
		}
	}
	return true
}

func toInt(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case float64:
		return int64(n)
	case int:
		return int64(n)
	}
	i, _ := strconv.ParseInt(fmt.Sprint(v), 10, 64)
	return i
}
