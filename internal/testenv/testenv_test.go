package testenv_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/meshcanary/meshcanary/internal/testenv"
)

// env is the package's shared stack, set by testenv.Main.
var env *testenv.Env

func TestMain(m *testing.M) {
	flag.Parse()
	opts := testenv.Options{}
	if testing.Verbose() {
		logger := log.New(os.Stderr, "", log.Ltime|log.Lmicroseconds)
		opts.Logf = logger.Printf
	}
	testenv.Main(m, opts, &env)
}

// eventually polls cond until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond(ctx)
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		case <-tick.C:
		}
	}
}

func kubeClient(t *testing.T) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestStartup(t *testing.T) {
	t.Logf("stack started in %s", env.StartupDuration.Round(time.Millisecond))
	for _, c := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "prometheus"} {
		if _, ok := env.Logs()[c]; !ok {
			t.Errorf("no log for %s in %v", c, env.Logs())
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", env.Kubeconfig)
	if err != nil {
		t.Fatalf("loading admin kubeconfig: %v", err)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := kube.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("server version through the kubeconfig: %v", err)
	}
	if v.GitVersion == "" || strings.Contains(v.GitVersion, "Format") {
		t.Errorf("server version %q is not stamped", v.GitVersion)
	}
}

func TestDeploymentRollsOut(t *testing.T) {
	env.DumpLogsOnFailure(t)
	ns := env.NewNamespace(t)
	kube := kubeClient(t)
	ctx := t.Context()

	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(3)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "example.com/web:v1"}}},
			},
		},
	}
	if _, err := kube.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating deployment: %v", err)
	}
	rolledOut := func(image string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			d, err := kube.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return err
			}
			s := d.Status
			if d.Spec.Template.Spec.Containers[0].Image != image || s.ObservedGeneration < d.Generation ||
				s.UpdatedReplicas != 3 || s.ReadyReplicas != 3 || s.AvailableReplicas != 3 || s.Replicas != 3 {
				return fmt.Errorf("generation %d, status %+v", d.Generation, s)
			}
			return nil
		}
	}
	eventually(t, time.Minute, "deployment ready with 3 replicas", rolledOut("example.com/web:v1"))

	d, err := kube.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Spec.Template.Spec.Containers[0].Image = "example.com/web:v2"
	if _, err := kube.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("updating pod template: %v", err)
	}
	eventually(t, time.Minute, "rollout of v2", rolledOut("example.com/web:v2"))

	eventually(t, 30*time.Second, "v2 in a new ReplicaSet, v1 scaled down", func(ctx context.Context) error {
		rss, err := kube.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return err
		}
		if len(rss.Items) != 2 {
			return fmt.Errorf("%d ReplicaSets, want 2", len(rss.Items))
		}
		for _, rs := range rss.Items {
			want := int32(0)
			if rs.Spec.Template.Spec.Containers[0].Image == "example.com/web:v2" {
				want = 3
			}
			if *rs.Spec.Replicas != want || rs.Status.ReadyReplicas != want {
				return fmt.Errorf("ReplicaSet %s: spec %d ready %d, want %d", rs.Name, *rs.Spec.Replicas, rs.Status.ReadyReplicas, want)
			}
		}
		return nil
	})

	pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && (p.Spec.NodeName == "" || p.Status.PodIP == "") {
			t.Errorf("pod %s: node %q IP %q; want scheduled with an IP", p.Name, p.Spec.NodeName, p.Status.PodIP)
		}
	}
}

func TestIstioResourcesRoundTrip(t *testing.T) {
	env.DumpLogsOnFailure(t)
	ns := env.NewNamespace(t)
	ctx := t.Context()
	istio, err := istioclient.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}

	vs := &networkingv1.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: networkingv1alpha3.VirtualService{
			Hosts: []string{"web"},
			Http: []*networkingv1alpha3.HTTPRoute{{
				Name: "primary",
				Route: []*networkingv1alpha3.HTTPRouteDestination{
					{Destination: &networkingv1alpha3.Destination{Host: "web", Subset: "stable"}, Weight: 100},
					{Destination: &networkingv1alpha3.Destination{Host: "web", Subset: "canary"}, Weight: 0},
				},
			}},
		},
	}
	if _, err := istio.NetworkingV1().VirtualServices(ns).Create(ctx, vs, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating VirtualService: %v", err)
	}
	gotVS, err := istio.NetworkingV1().VirtualServices(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading VirtualService: %v", err)
	}
	routes := gotVS.Spec.GetHttp()[0].GetRoute()
	if len(routes) != 2 ||
		routes[0].GetDestination().GetSubset() != "stable" || routes[0].GetWeight() != 100 ||
		routes[1].GetDestination().GetSubset() != "canary" || routes[1].GetWeight() != 0 {
		t.Errorf("VirtualService routes read back as %v", routes)
	}

	dr := &networkingv1.DestinationRule{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: networkingv1alpha3.DestinationRule{
			Host: "web",
			Subsets: []*networkingv1alpha3.Subset{
				{Name: "stable", Labels: map[string]string{"track": "stable"}},
				{Name: "canary", Labels: map[string]string{"track": "canary"}},
			},
		},
	}
	if _, err := istio.NetworkingV1().DestinationRules(ns).Create(ctx, dr, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating DestinationRule: %v", err)
	}
	gotDR, err := istio.NetworkingV1().DestinationRules(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading DestinationRule: %v", err)
	}
	subsets := gotDR.Spec.GetSubsets()
	if len(subsets) != 2 || subsets[0].GetName() != "stable" || subsets[0].GetLabels()["track"] != "stable" ||
		subsets[1].GetName() != "canary" || subsets[1].GetLabels()["track"] != "canary" {
		t.Errorf("DestinationRule subsets read back as %v", subsets)
	}
}

func TestVirtualServiceSchemaIsEnforced(t *testing.T) {
	env.DumpLogsOnFailure(t)
	ns := env.NewNamespace(t)
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
	bad := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1",
		"kind":       "VirtualService",
		"metadata":   map[string]any{"name": "bad", "namespace": ns},
		"spec": map[string]any{
			"hosts": []any{"web"},
			"http": []any{map[string]any{
				"route": []any{map[string]any{
					"destination": map[string]any{"host": "web", "subset": "stable"},
					"weight":      "abc",
				}},
			}},
		},
	}}
	_, err = dyn.Resource(gvr).Namespace(ns).Create(t.Context(), bad, metav1.CreateOptions{})
	if err == nil {
		t.Fatal("a VirtualService with weight \"abc\" was accepted")
	}
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "weight") {
		t.Fatalf("want an Invalid error about weight, got %v", err)
	}
}

// TestMeshcanaryCRDsAreServed checks that Start installed the chart's own
// CRDs (charts/meshcanary/crds) with their schema, not only Istio's.
func TestMeshcanaryCRDsAreServed(t *testing.T) {
	env.DumpLogsOnFailure(t)
	ns := env.NewNamespace(t)
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Group: "meshcanary.io", Version: "v1alpha1", Resource: "canaryreleases"}
	obj := func(name string, spec map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "meshcanary.io/v1alpha1", "kind": "CanaryRelease",
			"metadata": map[string]any{"name": name, "namespace": ns},
			"spec":     spec,
		}}
	}
	cases := []struct {
		name    string
		obj     *unstructured.Unstructured
		invalid bool
	}{
		{"a CanaryRelease naming its Deployment is accepted", obj("web", map[string]any{"deployment": "web"}), false},
		{"a spec.deployment that is not a string is refused by the schema", obj("bad", map[string]any{"deployment": int64(7)}), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := dyn.Resource(gvr).Namespace(ns).Create(t.Context(), c.obj, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if c.invalid != apierrors.IsInvalid(err) || (!c.invalid && err != nil) {
				t.Errorf("got %v, want invalid=%t", err, c.invalid)
			}
		})
	}
}

func TestPrometheusScrapesTestEndpoint(t *testing.T) {
	env.DumpLogsOnFailure(t)
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "testenv_probe_value", Help: "A value the test expects back from PromQL."})
	g.Set(42.5)
	reg.MustRegister(g)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	target := strings.TrimPrefix(srv.URL, "http://")

	scrape := fmt.Sprintf("- job_name: testenv-probe\n  static_configs:\n  - targets: ['%s']\n", target)
	if err := env.SetScrapeConfigs(t.Context(), scrape); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := env.SetScrapeConfigs(ctx, ""); err != nil {
			t.Errorf("resetting scrape configs: %v", err)
		}
	})

	query := `testenv_probe_value{job="testenv-probe"}`
	eventually(t, 30*time.Second, "query "+query, func(ctx context.Context) error {
		v, err := instantQuery(ctx, env.PrometheusURL, query)
		if err != nil {
			return err
		}
		if v != 42.5 {
			return fmt.Errorf("got %v, want 42.5", v)
		}
		return nil
	})
}

// instantQuery returns the value of the single sample query yields.
func instantQuery(ctx context.Context, base, query string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?query="+url.QueryEscape(query), nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, err
	}
	if body.Status != "success" {
		return 0, fmt.Errorf("query failed: %s", body.Error)
	}
	if len(body.Data.Result) != 1 {
		return 0, fmt.Errorf("%d series, want 1", len(body.Data.Result))
	}
	s, ok := body.Data.Result[0].Value[1].(string)
	if !ok {
		return 0, fmt.Errorf("unexpected sample %v", body.Data.Result[0].Value)
	}
	return strconv.ParseFloat(s, 64)
}

func TestServiceAccountIsLimitedByRBAC(t *testing.T) {
	env.DumpLogsOnFailure(t)
	ns := env.NewNamespace(t)
	kube := kubeClient(t)
	ctx := t.Context()

	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "deployment-reader", Namespace: ns},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list"},
		}},
	}
	if _, err := kube.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "deployment-reader", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "deployment-reader"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "reader", Namespace: ns}},
	}
	if _, err := kube.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	path, cfg, err := env.ServiceAccountKubeconfig(ctx, ns, "reader")
	if err != nil {
		t.Fatal(err)
	}
	fileCfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("loading %s: %v", path, err)
	}
	for name, c := range map[string]*rest.Config{"rest.Config": cfg, "kubeconfig file": fileCfg} {
		sa, err := kubernetes.NewForConfig(c)
		if err != nil {
			t.Fatal(err)
		}
		// The RBAC authorizer reads bindings from an informer, so a fresh
		// binding can take a moment to apply.
		eventually(t, 30*time.Second, name+": list deployments", func(ctx context.Context) error {
			_, err := sa.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
			return err
		})
		_, err = sa.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s: list secrets: want Forbidden, got %v", name, err)
		}
		_, err = sa.AppsV1().Deployments("default").List(ctx, metav1.ListOptions{})
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s: list deployments in another namespace: want Forbidden, got %v", name, err)
		}
	}
}

func TestStartReportsMissingBinaries(t *testing.T) {
	t.Setenv("MESHCANARY_CACHE", t.TempDir())
	e, err := testenv.Start(t.Context(), testenv.Options{})
	if err == nil {
		_ = e.Stop()
		t.Fatal("Start succeeded without binaries")
	}
	if !strings.Contains(err.Error(), "hack/tools.sh") {
		t.Errorf("error does not say how to install the binaries: %v", err)
	}
}
