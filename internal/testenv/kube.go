package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func (e *Env) restConfig(token string) *rest.Config {
	return &rest.Config{
		Host:            e.APIServerURL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		// client-go's defaults (5/10) make tests that create many objects
		// wait on the client, not on the server.
		QPS:   100,
		Burst: 200,
	}
}

func writeKubeconfig(path, server, user, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["testenv"] = &clientcmdapi.Cluster{Server: server, InsecureSkipTLSVerify: true}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["testenv"] = &clientcmdapi.Context{Cluster: "testenv", AuthInfo: user}
	cfg.CurrentContext = "testenv"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return nil
}

func crdGVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
}

// meshcanaryCRDFiles lists charts/meshcanary/crds/*.yaml, the CRDs the chart
// installs, of the source tree this package was compiled from: tests then
// meet the CRDs of the code under test, and a stale generated CRD fails them.
// The tree is found from this file's path, or, in a -trimpath build, from
// the working directory upwards.
func meshcanaryCRDFiles() ([]string, error) {
	const rel = "charts/meshcanary/crds"
	var tried []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		dir := filepath.Join(filepath.Dir(file), "..", "..", rel)
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			return globCRDs(dir)
		}
		tried = append(tried, dir)
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("finding %s: %w", rel, err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		dir := filepath.Join(d, rel)
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			return globCRDs(dir)
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	tried = append(tried, wd+" and its parents")
	return nil, fmt.Errorf("finding the meshcanary CRDs: no %s under %s", rel, strings.Join(tried, ", "))
}

func globCRDs(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no CRD in %s; run make generate", dir)
	}
	return files, nil
}

// readCRDs returns the CustomResourceDefinitions in a multi-document YAML
// file.
func readCRDs(path string) ([]*unstructured.Unstructured, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading CRDs: %w", err)
	}
	var crds []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 64<<10)
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("parsing %s: %w", path, err)
		}
		u := &unstructured.Unstructured{Object: obj}
		if u.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, u)
		}
	}
	if len(crds) == 0 {
		return nil, fmt.Errorf("no CustomResourceDefinition in %s", path)
	}
	return crds, nil
}

// applyCRDs server-side applies Istio's CRDs and meshcanary's own (those of
// charts/meshcanary/crds, as helm installs them) and waits until every one is
// Established, i.e. served. The dynamic client avoids depending on the
// apiextensions clientset for one resource.
func (e *Env) applyCRDs(ctx context.Context) error {
	istio, err := readCRDs(e.bins.istioCRDs)
	if err != nil {
		return fmt.Errorf("istio: %w", err)
	}
	files, err := meshcanaryCRDFiles()
	if err != nil {
		return err
	}
	crds := istio
	for _, f := range files {
		own, err := readCRDs(f)
		if err != nil {
			return err
		}
		crds = append(crds, own...)
	}

	errs := make([]error, len(crds))
	var wg sync.WaitGroup
	for i, crd := range crds {
		wg.Go(func() {
			data, err := json.Marshal(crd.Object)
			if err != nil {
				errs[i] = err
				return
			}
			_, err = e.dyn.Resource(crdGVR()).Patch(ctx, crd.GetName(), types.ApplyPatchType, data,
				metav1.PatchOptions{FieldManager: "meshcanary-testenv", Force: new(true)})
			if err != nil {
				errs[i] = fmt.Errorf("applying CRD %s: %w", crd.GetName(), err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	e.logf("%d Istio and %d meshcanary CRDs applied", len(istio), len(crds)-len(istio))

	err = e.poll(ctx, nil, fmt.Sprintf("%d CRDs established", len(crds)), func(ctx context.Context) error {
		list, err := e.dyn.Resource(crdGVR()).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		established := map[string]bool{}
		for _, item := range list.Items {
			conds, _, _ := unstructured.NestedSlice(item.Object, "status", "conditions")
			for _, c := range conds {
				if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
					established[item.GetName()] = true
				}
			}
		}
		var pending []string
		for _, crd := range crds {
			if !established[crd.GetName()] {
				pending = append(pending, crd.GetName())
			}
		}
		if len(pending) > 0 {
			return fmt.Errorf("not established: %s", strings.Join(pending, ", "))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return e.warmUpIstioWrites(ctx)
}

// warmUpIstioWrites dry-runs one VirtualService and one DestinationRule.
// The API server prepares a CRD's write path (schema validators, field
// manager) on its first write, which takes about two seconds for these
// large schemas; paying it here keeps that out of the first test's timings.
func (e *Env) warmUpIstioWrites(ctx context.Context) error {
	objs := []*unstructured.Unstructured{
		{Object: map[string]any{
			"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
			"metadata": map[string]any{"name": "testenv-warm-up", "namespace": metav1.NamespaceDefault},
			"spec": map[string]any{
				"hosts": []any{"warm-up"},
				"http":  []any{map[string]any{"route": []any{map[string]any{"destination": map[string]any{"host": "warm-up"}, "weight": int64(100)}}}},
			},
		}},
		{Object: map[string]any{
			"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
			"metadata": map[string]any{"name": "testenv-warm-up", "namespace": metav1.NamespaceDefault},
			"spec": map[string]any{
				"host":    "warm-up",
				"subsets": []any{map[string]any{"name": "stable", "labels": map[string]any{"track": "stable"}}},
			},
		}},
	}
	resources := []string{"virtualservices", "destinationrules"}
	errs := make([]error, len(objs))
	var wg sync.WaitGroup
	for i, obj := range objs {
		wg.Go(func() {
			gvr := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: resources[i]}
			_, err := e.dyn.Resource(gvr).Namespace(metav1.NamespaceDefault).Create(ctx, obj,
				metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err != nil {
				errs[i] = fmt.Errorf("warming up %s: %w", resources[i], err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	e.logf("Istio write path warmed up")
	return nil
}

// ServiceAccountKubeconfig returns a kubeconfig file and rest.Config that
// authenticate as namespace/name, creating the ServiceAccount if missing, so
// tests see exactly what that identity's RBAC allows. The token is a
// TokenRequest token valid for 24 hours.
func (e *Env) ServiceAccountKubeconfig(ctx context.Context, namespace, name string) (string, *rest.Config, error) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	if _, err := e.kube.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", nil, fmt.Errorf("testenv: creating service account %s/%s: %w", namespace, name, err)
	}
	tr, err := e.kube.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(24 * 60 * 60))},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", nil, fmt.Errorf("testenv: requesting token for %s/%s: %w", namespace, name, err)
	}
	dir := e.path("kubeconfigs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, fmt.Errorf("testenv: %w", err)
	}
	path := filepath.Join(dir, namespace+"."+name+".kubeconfig")
	user := "system:serviceaccount:" + namespace + ":" + name
	if err := writeKubeconfig(path, e.APIServerURL, user, tr.Status.Token); err != nil {
		return "", nil, fmt.Errorf("testenv: %w", err)
	}
	return path, e.restConfig(tr.Status.Token), nil
}

// NewNamespace creates a namespace unique to t (named after the test, for
// reading logs) and deletes it when t ends. Deletion is not awaited: names
// never repeat, and waiting for finalizers would only slow the suite.
func (e *Env) NewNamespace(t testing.TB) string {
	t.Helper()
	suffix := make([]byte, 3)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	name := dnsLabel(t.Name(), 50) + "-" + hex.EncodeToString(suffix)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := e.kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("testenv: creating namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := e.kube.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Logf("testenv: deleting namespace %s: %v", name, err)
		}
	})
	// Pods are rejected until their ServiceAccount exists; creating "default"
	// here spares the first ReplicaSet of every test a retry with backoff
	// while the service-account controller catches up.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: "default"}}
	if _, err := e.kube.CoreV1().ServiceAccounts(name).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("testenv: creating default service account in %s: %v", name, err)
	}
	return name
}

// logTailLines is how much of each component log DumpLogsOnFailure prints.
const logTailLines = 60

// DumpLogsOnFailure prints the end of every component log when t has failed,
// since a failure against a real control plane is often explained there.
func (e *Env) DumpLogsOnFailure(t testing.TB) {
	t.Helper()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		e.mu.Lock()
		procs := append([]*process(nil), e.procs...)
		e.mu.Unlock()
		seen := map[string]bool{}
		for _, p := range procs {
			if seen[p.name] {
				continue // a retried component shares its log
			}
			seen[p.name] = true
			t.Logf("---- last %d lines of %s (%s) ----\n%s", logTailLines, p.name, p.logPath, p.tail(logTailLines))
		}
	})
}

// dnsLabel turns s into a DNS label of at most max characters: lower case,
// runs of other characters collapsed into one '-'.
func dnsLabel(s string, max int) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		} else {
			dash = true
		}
		if b.Len() >= max {
			break
		}
	}
	out := strings.TrimRight(b.String(), "-")
	if len(out) > max {
		out = strings.TrimRight(out[:max], "-")
	}
	if out == "" || out[0] < 'a' || out[0] > 'z' {
		out = "t" + out
	}
	return out
}
