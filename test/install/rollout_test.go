package install

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/stages"
	"github.com/meshcanary/meshcanary/test/harness"
)

// testPolicies are the chart's `policies` value for the rollout tests: each
// stage lasts seconds instead of minutes, and every check the dashboards
// draw a threshold for is present, so that every threshold line has data.
const testPolicies = `
policies:
- name: default
  interval: 2s
  minRequests: 10
  failureLimit: 2
  metricsOutageLimit: 3
  checks: &checks
  - {metric: error-rate, max: "5%", maxIncrease: "2%"}
  - {metric: request-rate, min: 1}
  - {metric: latency-p50, max: 5s, maxRatio: 3}
  - {metric: latency-p95, max: 5s, maxRatio: 3}
  - {metric: latency-p99, max: 5s, maxRatio: 3}
  stages:
  - {weight: 10, duration: 4s}
  - {weight: 50, duration: 4s}
  - {weight: 100, duration: 4s}
# Never conclusive: no canary serves a million requests in two seconds. It
# holds a release at its first stage for the stuck and inconclusive alerts,
# and rides out a Prometheus outage without rolling back.
- name: starved
  interval: 2s
  minRequests: 1000000
  metricsOutageLimit: 1000
  checks: *checks
  stages:
  - {weight: 10, duration: 1h}
  - {weight: 100, duration: 1h}
- name: blue-green
  interval: 2s
  minRequests: 10
  checks:
  - {metric: error-rate, max: "5%"}
  - {metric: latency-p95, max: 5s}
  stages:
  - {weight: 100, duration: 4s}
`

// TestClusterWideInstallRunsReleasesAsTheChartsServiceAccount installs the
// chart with its cluster-wide RBAC, runs the controller as the chart's
// ServiceAccount through a promotion and a rollback of the canary example,
// and then evaluates every dashboard and alert expression against what
// Prometheus scraped meanwhile.
func TestClusterWideInstallRunsReleasesAsTheChartsServiceAccount(t *testing.T) {
	t.Parallel()
	scenarioMu.Lock()
	t.Cleanup(scenarioMu.Unlock) // registered first, so it runs after every other cleanup
	suite.Env().DumpLogsOnFailure(t)
	installMonitoringCRDs(t)
	ctx := context.Background()
	k, d := suite.Clients(t)
	start := time.Now()

	ns := restrictedNamespace(t)
	appNs := suite.Env().NewNamespace(t)
	proxy := suite.NewPromProxy(t)
	values := writeFile(t, "values.yaml", fmt.Sprintf(`
prometheus: {url: %q}
serviceMonitor: {enabled: true, interval: 1s, scrapeTimeout: 1s}
# Windows of seconds, so that the alerts fire within the test.
prometheusRule:
  enabled: true
  rollbackWindow: 3m
  stuckAfter: 10s
  inconclusiveFor: 10s
  invalidFor: 10s
  policiesRejectedWindow: 3m
  metricsUnavailableFor: 10s
  controllerDownFor: 10s
  notLeadingFor: 10s
`, proxy.URL())+testPolicies)

	// Prometheus scrapes the controller as the ServiceMonitor would have
	// prometheus-operator do it, from before the controller starts, so that
	// its first seconds (a follower) are on record.
	const release = "meshcanary"
	rendered := render(t, release, ns, values)
	svc := find(t, rendered, "Service", "")
	metricsPort := freePort(t)
	suite.AddScrapeJobs(t, serviceMonitorJob(t, find(t, rendered, "ServiceMonitor", ""), svc, metricsPort))

	installChart(t, release, ns, values)
	dep, err := k.AppsV1().Deployments(ns).Get(ctx, release, metav1.GetOptions{})
	harness.Must(t, err)
	sa := dep.Spec.Template.Spec.ServiceAccountName

	t.Run("the ServiceAccount may do only what the controller needs", func(t *testing.T) {
		lease := leaseName(t, dep)
		checkAccess(t, ns, sa, []access{
			{"watch Deployments in every namespace", "watch", "apps", "deployments", "", "", true},
			{"patch a Deployment's annotations and replicas", "patch", "apps", "deployments", appNs, "payment-service", true},
			{"replace a Deployment (promotion patches its template)", "update", "apps", "deployments", appNs, "payment-service", false},
			{"create a Deployment", "create", "apps", "deployments", appNs, "", false},
			{"delete a Deployment", "delete", "apps", "deployments", appNs, "payment-service", false},
			{"patch a VirtualService's weights", "patch", "networking.istio.io", "virtualservices", appNs, "payment-service", true},
			{"replace a VirtualService", "update", "networking.istio.io", "virtualservices", appNs, "payment-service", false},
			{"delete a VirtualService", "delete", "networking.istio.io", "virtualservices", appNs, "payment-service", false},
			{"watch DestinationRules", "watch", "networking.istio.io", "destinationrules", "", "", true},
			{"change a DestinationRule", "patch", "networking.istio.io", "destinationrules", appNs, "payment-service", false},
			{"record Events", "create", "", "events", appNs, "", true},
			{"list Pods", "list", "", "pods", appNs, "", false},
			{"read Secrets (no notification Secret configured)", "get", "", "secrets", ns, "anything", false},
			{"read ConfigMaps (the policies are mounted)", "get", "", "configmaps", ns, "meshcanary-policies", false},
			{"create its leader-election Lease", "create", "coordination.k8s.io", "leases", ns, "", true},
			{"renew its leader-election Lease", "update", "coordination.k8s.io", "leases", ns, lease, true},
			{"take over another Lease", "update", "coordination.k8s.io", "leases", ns, "kube-controller-manager", false},
			{"create Leases in an application namespace", "create", "coordination.k8s.io", "leases", appNs, "", false},
			{"watch CanaryReleases in every namespace", "watch", "meshcanary.io", "canaryreleases", "", "", true},
			{"create a Deployment's CanaryRelease", "create", "meshcanary.io", "canaryreleases", appNs, "", true},
			{"update a CanaryRelease's status", "update", "meshcanary.io", "canaryreleases/status", appNs, "payment-service", true},
			{"delete a CanaryRelease (garbage collection does)", "delete", "meshcanary.io", "canaryreleases", appNs, "payment-service", false},
		})
	})

	// What the installed chart gives the controller.
	policiesFile := policiesFromConfigMap(t, ns, release+"-policies")
	rule, err := d.Resource(schema.GroupVersionResource{Group: "monitoring.coreos.com", Version: "v1", Resource: "prometheusrules"}).
		Namespace(ns).Get(ctx, release, metav1.GetOptions{})
	harness.Must(t, err)
	dashboards, err := k.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: "grafana_dashboard=1"})
	harness.Must(t, err)
	if len(dashboards.Items) != 3 {
		t.Fatalf("the chart installed %d dashboard ConfigMaps labelled grafana_dashboard=1, want 3", len(dashboards.Items))
	}

	a := applyExample(t, appNs, filepath.Join(repoRoot(t), "manifests", "examples", "canary", "payment-service.yaml"), "payment-service")
	a.Mesh(200)
	// A second opted-in Deployment without a canary: Invalid, for the
	// invalid-configuration alert and panels.
	orphan := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "orphan", Annotations: map[string]string{annotations.Enabled: "true"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: harness.Ptr(int32(0)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "orphan"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "orphan"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "orphan:v1"}}},
			},
		},
	}
	_, err = k.AppsV1().Deployments(appNs).Create(ctx, orphan, metav1.CreateOptions{})
	harness.Must(t, err)

	// A Lease left by a leader that died: the controller must wait it out
	// and take it over (get, then update), reporting meshcanary_leader 0
	// meanwhile, which the not-leading alert sees.
	lease := leaseName(t, dep)
	_, err = k.CoordinationV1().Leases(ns).Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: lease},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       harness.Ptr("meshcanary-previous-leader"),
			LeaseDurationSeconds: harness.Ptr(int32(12)),
			AcquireTime:          &metav1.MicroTime{Time: time.Now()},
			RenewTime:            &metav1.MicroTime{Time: time.Now()},
		},
	}, metav1.CreateOptions{})
	harness.Must(t, err)

	kubeconfig, _, err := suite.Env().ServiceAccountKubeconfig(ctx, ns, sa)
	harness.Must(t, err)
	ctrl := startController(t, dep, kubeconfig, policiesFile, metricsPort)
	waitLeader(t, ns, lease, "meshcanary-previous-leader")

	a.ReleaseImage("payment-service", "registry.example.com/payments/payment-service:1.5.0", nil)
	a.WaitPhase(string(stages.Succeeded), 3*time.Minute)
	if img := a.StableDep().Spec.Template.Spec.Containers[0].Image; img != "registry.example.com/payments/payment-service:1.5.0" {
		t.Errorf("stable runs %s after the promotion", img)
	}

	// The next release never gets a conclusive analysis: it holds at 10%.
	a.Annotate(annotations.Policy, harness.Ptr("starved"))
	a.ReleaseImage("payment-service", "registry.example.com/payments/payment-service:1.6.0", nil)
	a.WaitCanaryWeight(10, time.Minute)
	// Prometheus goes away for a few intervals: the rollout holds.
	proxy.SetDown(true)
	a.WaitEvent(stages.ReasonMetricsUnavailable, "", 30*time.Second)
	proxy.SetDown(false)
	// An edit of the policies file the controller refuses.
	harness.Must(t, os.WriteFile(policiesFile, []byte("policies:\n- name: Not_A_Name\n"), 0o644))
	harness.WaitFor(t, "the rejected policies reload to show in /metrics", 30*time.Second, func() (bool, string) {
		n, err := ctrl.metricSum("meshcanary_policy_reloads_total", map[string]string{"result": "invalid"})
		return err == nil && n >= 1, fmt.Sprint(n, err)
	})
	// Hold until the stuck and inconclusive alerts see it.
	rules := alertRules(t, rule)
	waitAlerts(t, rules, []string{"MeshcanaryRolloutStuck", "MeshcanaryAnalysisInconclusive"}, time.Minute)
	if _, c := a.Weights(); c != 10 {
		t.Errorf("the starved release moved to %d%%", c)
	}

	a.Annotate(annotations.Rollback, harness.Ptr("on-call saw p99 alerts"))
	a.WaitPhase(string(stages.RolledBack), 30*time.Second)
	if s, c := a.Weights(); s != 100 || c != 0 {
		t.Errorf("weights %d/%d after the rollback, want 100/0", s, c)
	}
	assertNoForbidden(t, ctrl)

	vars := grafanaVars{namespace: appNs, deployment: "payment-service", job: svc.GetName()}
	t.Run("every dashboard expression returns data", func(t *testing.T) {
		var exprs []promExpr
		for _, cm := range dashboards.Items {
			for file, raw := range cm.Data {
				exprs = append(exprs, dashboardExprs(t, file, raw)...)
			}
		}
		vars.window = time.Since(start)
		pollAllNonEmpty(t, exprs, vars.substitute, start, map[string]string{
			"controller-health.json / Kubernetes API write errors / A": "the scenario has no failed writes but the 409 conflicts that may race in (assertNoForbidden), so this has data only sometimes",
		}, time.Minute)
	})

	t.Run("the controller alerts stay quiet while a replica leads", func(t *testing.T) {
		api := promAPI(t)
		for _, r := range rules {
			if r.name != "MeshcanaryControllerDown" && r.name != "MeshcanaryNotLeading" {
				continue
			}
			harness.WaitFor(t, r.name+" to be quiet", 30*time.Second, func() (bool, string) {
				fired, got, err := evaluate(ctx, api, r.expr, true, start)
				return err == nil && !fired, fmt.Sprint(got, err)
			})
		}
	})

	ctrl.stop()
	t.Run("every alert expression returns data", func(t *testing.T) {
		checkRulesWithPromtool(t, rule)
		waitAlerts(t, rules, []string{"MeshcanaryControllerDown"}, 30*time.Second)
		var exprs []promExpr
		for _, r := range rules {
			exprs = append(exprs, promExpr{where: "alert " + r.name, expr: r.expr})
		}
		pollAllNonEmpty(t, exprs, func(e promExpr) (string, error) { return e.expr, nil }, start, nil, 30*time.Second)
	})
}

// TestNamespacedInstallRunsReleasesAsTheChartsServiceAccount installs the
// chart for one namespace (Role instead of ClusterRole) and runs the
// blue/green example through a promotion and a rollback with the
// controller authenticated as the chart's ServiceAccount.
func TestNamespacedInstallRunsReleasesAsTheChartsServiceAccount(t *testing.T) {
	t.Parallel()
	scenarioMu.Lock()
	t.Cleanup(scenarioMu.Unlock)
	suite.Env().DumpLogsOnFailure(t)
	ctx := context.Background()
	k, _ := suite.Clients(t)

	ns := restrictedNamespace(t)
	appNs := suite.Env().NewNamespace(t)
	other := suite.Env().NewNamespace(t)
	values := writeFile(t, "values.yaml", fmt.Sprintf(`
watchNamespace: %s
prometheus: {url: %q}
notifications: {secretName: meshcanary-notifications}
`, appNs, suite.Env().PrometheusURL)+testPolicies)

	const release = "mc"
	installChart(t, release, ns, values)
	dep, err := k.AppsV1().Deployments(ns).Get(ctx, release+"-meshcanary", metav1.GetOptions{})
	harness.Must(t, err)
	sa := dep.Spec.Template.Spec.ServiceAccountName
	lease := leaseName(t, dep)

	t.Run("the ServiceAccount may act in the watched namespace only", func(t *testing.T) {
		checkAccess(t, ns, sa, []access{
			{"watch Deployments in the watched namespace", "watch", "apps", "deployments", appNs, "", true},
			{"patch a Deployment in the watched namespace", "patch", "apps", "deployments", appNs, "checkout", true},
			{"watch Deployments in every namespace", "watch", "apps", "deployments", "", "", false},
			{"watch Deployments in another namespace", "watch", "apps", "deployments", other, "", false},
			{"patch Deployments in its own namespace", "patch", "apps", "deployments", ns, release + "-meshcanary", false},
			{"patch a VirtualService in the watched namespace", "patch", "networking.istio.io", "virtualservices", appNs, "checkout", true},
			{"patch a VirtualService in another namespace", "patch", "networking.istio.io", "virtualservices", other, "checkout", false},
			{"record Events in the watched namespace", "create", "", "events", appNs, "", true},
			{"record Events in another namespace", "create", "", "events", other, "", false},
			{"renew its leader-election Lease", "update", "coordination.k8s.io", "leases", ns, lease, true},
			{"read the notification Secret", "get", "", "secrets", ns, "meshcanary-notifications", true},
			{"read another Secret", "get", "", "secrets", ns, "other", false},
			{"list Secrets", "list", "", "secrets", ns, "", false},
			{"update a CanaryRelease's status in the watched namespace", "update", "meshcanary.io", "canaryreleases/status", appNs, "checkout", true},
			{"update a CanaryRelease's status in another namespace", "update", "meshcanary.io", "canaryreleases/status", other, "checkout", false},
		})
	})

	// The notification Secret the chart names; the controller reads it at
	// start, as the ServiceAccount, through the Role's resourceNames rule.
	// No policy routes to its channel, so nothing is sent.
	_, err = k.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "meshcanary-notifications"},
		StringData: map[string]string{"hooks.type": "webhook", "hooks.url": "http://127.0.0.1:9/meshcanary"},
	}, metav1.CreateOptions{})
	harness.Must(t, err)

	a := applyExample(t, appNs, filepath.Join(repoRoot(t), "manifests", "examples", "blue-green", "checkout.yaml"), "checkout")
	a.Mesh(100)
	kubeconfig, _, err := suite.Env().ServiceAccountKubeconfig(ctx, ns, sa)
	harness.Must(t, err)
	ctrl := startController(t, dep, kubeconfig, policiesFromConfigMap(t, ns, release+"-meshcanary-policies"), freePort(t))
	// No Lease yet: the controller creates it.
	waitLeader(t, ns, lease, "")

	a.ReleaseImage("checkout", "registry.example.com/shop/checkout:2.1.0", nil)
	a.WaitCanaryWeight(100, time.Minute)
	if r := *a.CanaryDep().Spec.Replicas; r != *a.StableDep().Spec.Replicas {
		t.Errorf("green has %d replicas at 100%%, blue %d: want the same size", r, *a.StableDep().Spec.Replicas)
	}
	a.WaitPhase(string(stages.Succeeded), 2*time.Minute)

	a.Annotate(annotations.StageDuration, harness.Ptr("1h"))
	a.ReleaseImage("checkout", "registry.example.com/shop/checkout:2.2.0", nil)
	a.WaitCanaryWeight(100, time.Minute)
	a.Annotate(annotations.Rollback, harness.Ptr("checkout errors on green"))
	a.WaitPhase(string(stages.RolledBack), 30*time.Second)
	if s, c := a.Weights(); s != 100 || c != 0 {
		t.Errorf("weights %d/%d after the rollback, want 100/0", s, c)
	}
	if img := a.StableDep().Spec.Template.Spec.Containers[0].Image; img != "registry.example.com/shop/checkout:2.1.0" {
		t.Errorf("blue runs %s, want the promoted 2.1.0", img)
	}
	assertNoForbidden(t, ctrl)
}

// installChart runs `helm install --wait`: the chart's pods (kwok pods,
// which run nothing) must be admitted under the namespace's restricted Pod
// Security profile and become available.
func installChart(t testing.TB, release, ns, values string) {
	t.Helper()
	r := helm(t, "install", release, chartDir(t), "--namespace", ns, "--values", values, "--wait", "--timeout", "2m")
	if r.err != nil {
		t.Fatalf("helm install: %s", r)
	}
	t.Logf("helm install:\n%s", r.stdout)
	// Cluster-scoped objects outlive the namespace.
	t.Cleanup(func() { helm(t, "uninstall", release, "--namespace", ns) })
	if !regexp.MustCompile(`kubectl (-n \S+ )?annotate deployment/<name> meshcanary.io/enabled=true`).MatchString(r.stdout) {
		t.Errorf("NOTES do not tell what to annotate next:\n%s", r.stdout)
	}
}

// serviceMonitorJob is the scrape job prometheus-operator makes of the
// chart's ServiceMonitor (job named after the Service, honorLabels, path,
// target labels), pointed at the controller's loopback port.
func serviceMonitorJob(t testing.TB, sm, svc *unstructured.Unstructured, port int) harness.ScrapeJob {
	t.Helper()
	ep := nested(t, sm.Object, "spec")["endpoints"].([]any)[0].(map[string]any)
	honor, _ := ep["honorLabels"].(bool)
	path, _ := ep["path"].(string)
	return harness.ScrapeJob{
		Job:         svc.GetName(),
		Target:      fmt.Sprintf("127.0.0.1:%d", port),
		HonorLabels: honor,
		Path:        path,
		Labels: map[string]string{
			"namespace": svc.GetNamespace(), "service": svc.GetName(),
			"endpoint": fmt.Sprint(ep["port"]), "pod": svc.GetName() + "-0",
		},
	}
}

func policiesFromConfigMap(t testing.TB, ns, name string) string {
	t.Helper()
	k, _ := suite.Clients(t)
	cm, err := k.CoreV1().ConfigMaps(ns).Get(context.Background(), name, metav1.GetOptions{})
	harness.Must(t, err)
	data, ok := cm.Data["policies.yaml"]
	if !ok {
		t.Fatalf("ConfigMap %s/%s has no policies.yaml", ns, name)
	}
	// A directory of its own: the controller watches the file's directory.
	return writeFile(t, "policies.yaml", data)
}

func leaseName(t testing.TB, dep *appsv1.Deployment) string {
	t.Helper()
	for _, a := range controllerContainer(t, dep).Args {
		if v, ok := strings.CutPrefix(a, "--leader-election-id="); ok {
			return v
		}
	}
	t.Fatal("the chart does not pass --leader-election-id")
	return ""
}

// waitLeader waits until the Lease is held by a controller of this test
// (its identity is <hostname>_<pid>), i.e. not by previous.
func waitLeader(t testing.TB, ns, lease, previous string) {
	t.Helper()
	k, _ := suite.Clients(t)
	host, _ := os.Hostname()
	harness.WaitFor(t, "the controller to lead", time.Minute, func() (bool, string) {
		l, err := k.CoordinationV1().Leases(ns).Get(context.Background(), lease, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		holder := ""
		if l.Spec.HolderIdentity != nil {
			holder = *l.Spec.HolderIdentity
		}
		return holder != previous && strings.HasPrefix(holder, host+"_"), "held by " + holder
	})
}

// waitAlerts waits until each named alert's expression returns data now.
func waitAlerts(t testing.TB, rules []alertRule, names []string, timeout time.Duration) {
	t.Helper()
	api := promAPI(t)
	for _, name := range names {
		var expr string
		for _, r := range rules {
			if r.name == name {
				expr = r.expr
			}
		}
		if expr == "" {
			t.Fatalf("no alert %s in the PrometheusRule", name)
		}
		harness.WaitFor(t, name+" to fire", timeout, func() (bool, string) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			fired, got, err := evaluate(ctx, api, expr, true, time.Now())
			return err == nil && fired, fmt.Sprint(got, err)
		})
	}
}

// assertNoForbidden fails when the controller met a permission it lacks:
// client-go logs refused list and watch calls and events ("forbidden"), and
// the controller logs and counts (meshcanary_api_errors_total) its failed
// writes. The one failed write that is no permission problem is a 409
// conflict: the controller writes its state with the resourceVersion it
// decided on when it consumes a command, so a write racing it (the test's
// rollback annotation) conflicts and is retried by design. Every counted
// API error must be such a conflict in the log.
func assertNoForbidden(t testing.TB, ctrl *controllerProcess) {
	t.Helper()
	logs := ctrl.logs()
	if m := regexp.MustCompile(`(?i).*forbidden.*`).FindAllString(logs, 5); len(m) > 0 {
		t.Errorf("the controller was refused by RBAC:\n%s", strings.Join(m, "\n"))
	}
	conflicts := 0
	for _, line := range strings.Split(logs, "\n") {
		var entry struct {
			Level, Error, Message string
		}
		if json.Unmarshal([]byte(line), &entry) != nil || entry.Level != "error" || entry.Message != "reconcile failed; retrying with backoff" {
			continue
		}
		if strings.Contains(entry.Error, "the object has been modified") {
			conflicts++
			continue
		}
		t.Errorf("a reconcile failed for another reason than a write conflict: %s", entry.Error)
	}
	total, err := ctrl.metricSum("meshcanary_api_errors_total", nil)
	harness.Must(t, err)
	if int(total) > conflicts {
		t.Errorf("meshcanary_api_errors_total = %v, but only %d write conflicts were logged", total, conflicts)
	}
	if total > 0 {
		t.Logf("meshcanary_api_errors_total = %v, all of them write conflicts retried by design", total)
	}
}

// access is one question to the API server's authorizer about the
// ServiceAccount.
type access struct {
	what                            string
	verb, group, resource, ns, name string // resource may be resource/subresource
	allowed                         bool
}

// checkAccess asks the authorizer (SubjectAccessReview) each question as
// the ServiceAccount, so both what it may and what it may not do are
// proven against the real RBAC evaluation.
func checkAccess(t *testing.T, ns, sa string, table []access) {
	t.Helper()
	k, _ := suite.Clients(t)
	user := "system:serviceaccount:" + ns + ":" + sa
	for _, c := range table {
		t.Run(c.what, func(t *testing.T) {
			resource, subresource, _ := strings.Cut(c.resource, "/")
			sar, err := k.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), &authorizationv1.SubjectAccessReview{
				Spec: authorizationv1.SubjectAccessReviewSpec{
					User:   user,
					Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
					ResourceAttributes: &authorizationv1.ResourceAttributes{
						Namespace: c.ns, Verb: c.verb, Group: c.group, Resource: resource, Subresource: subresource, Name: c.name,
					},
				},
			}, metav1.CreateOptions{})
			harness.Must(t, err)
			if sar.Status.Allowed != c.allowed {
				t.Errorf("%s %s.%s %s/%s: allowed=%t, want %t (%s)", c.verb, c.resource, c.group, c.ns, c.name, sar.Status.Allowed, c.allowed, sar.Status.Reason)
			}
		})
	}
}
