package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/apis/meshcanary/v1alpha1"
	"github.com/meshcanary/meshcanary/pkg/release"
)

// vsGVR is Istio's VirtualService, at the version every supported Istio
// serves.
func vsGVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
}

// drGVR is Istio's DestinationRule.
func drGVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "destinationrules"}
}

// kubeFlags are kubectl's connection flags, read the way kubectl reads them:
// --kubeconfig, then KUBECONFIG, then ~/.kube/config, with --context, -n and
// the other overrides on top.
type kubeFlags struct {
	rules     *clientcmd.ClientConfigLoadingRules
	overrides clientcmd.ConfigOverrides
	flags     *pflag.FlagSet
}

// hiddenKubeFlags are accepted as kubectl accepts them but kept out of each
// command's help, where they would drown the command's own flags.
func hiddenKubeFlags() []string {
	return []string{
		clientcmd.FlagCertFile, clientcmd.FlagKeyFile, clientcmd.FlagCAFile,
		clientcmd.FlagInsecure, clientcmd.FlagTLSServerName, clientcmd.FlagProxyURL,
		clientcmd.FlagDisableCompression, clientcmd.FlagImpersonateUID, clientcmd.FlagImpersonateGroup,
		clientcmd.FlagUsername, clientcmd.FlagPassword,
	}
}

func newKubeFlags() *kubeFlags {
	k := &kubeFlags{rules: clientcmd.NewDefaultClientConfigLoadingRules()}
	fs := pflag.NewFlagSet("kubernetes", pflag.ContinueOnError)
	fs.StringVar(&k.rules.ExplicitPath, clientcmd.RecommendedConfigPathFlag, "", "Path to the kubeconfig file to use (as for kubectl)")
	clientcmd.BindOverrideFlags(&k.overrides, fs, clientcmd.RecommendedConfigOverrideFlags(""))
	for _, name := range hiddenKubeFlags() {
		if f := fs.Lookup(name); f != nil {
			f.Hidden = true
		}
	}
	k.flags = fs
	return k
}

// cluster is a connection to the cluster and the namespace to work in.
type cluster struct {
	kube      kubernetes.Interface
	dyn       dynamic.Interface
	config    *rest.Config
	namespace string
	// user is the kubeconfig user of the context, for approvals.
	user string
}

// configError is a kubeconfig that cannot be used; its message is written
// for people, and the loader's own error is kept for errors.Is/As.
type configError struct {
	msg string
	err error
}

func (e *configError) Error() string { return e.msg }
func (e *configError) Unwrap() error { return e.err }

func (k *kubeFlags) clientConfig() clientcmd.ClientConfig {
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(k.rules, &k.overrides)
}

// connect builds clients from the flags. It does not contact the server.
func (k *kubeFlags) connect() (*cluster, error) {
	cc := k.clientConfig()
	cfg, err := cc.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			// client-go's own message suggests KUBERNETES_MASTER, which
			// kubectl users never set; say what kubectl users do instead.
			return nil, &configError{
				msg: "no Kubernetes configuration found: set KUBECONFIG, pass --kubeconfig, or create ~/.kube/config (as for kubectl)",
				err: err,
			}
		}
		return nil, &configError{msg: "loading kubeconfig: " + err.Error(), err: err}
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, &configError{msg: "loading kubeconfig: " + err.Error(), err: err}
	}
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	cfg.UserAgent = "meshcanary-cli/" + versionString()
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating Kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating dynamic client: %w", err)
	}
	c := &cluster{kube: kube, dyn: dyn, config: cfg, namespace: ns}
	if raw, err := cc.RawConfig(); err == nil {
		ctxName := raw.CurrentContext
		if k.overrides.CurrentContext != "" {
			ctxName = k.overrides.CurrentContext
		}
		if ctx := raw.Contexts[ctxName]; ctx != nil {
			c.user = ctx.AuthInfo
		}
		if k.overrides.Context.AuthInfo != "" {
			c.user = k.overrides.Context.AuthInfo
		}
	}
	return c, nil
}

// notFoundError is a Deployment that does not exist.
type notFoundError struct {
	name, namespace string
	err             error
}

func (e *notFoundError) Error() string {
	return fmt.Sprintf("deployment %q not found in namespace %q", e.name, e.namespace)
}
func (e *notFoundError) Unwrap() error { return e.err }

// notOptedInError is a Deployment meshcanary does not manage.
type notOptedInError struct{ name string }

func (e *notOptedInError) Error() string {
	return fmt.Sprintf("deployment %q is not opted in: annotate it with %s=true", e.name, annotations.Enabled)
}

// deployment gets a Deployment of the working namespace.
func (c *cluster) deployment(ctx context.Context, name string) (*appsv1.Deployment, error) {
	d, err := c.kube.AppsV1().Deployments(c.namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, &notFoundError{name: name, namespace: c.namespace, err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("getting deployment %q in namespace %q: %w", name, c.namespace, err)
	}
	return d, nil
}

// optedIn gets a Deployment that meshcanary manages.
func (c *cluster) optedIn(ctx context.Context, name string) (*appsv1.Deployment, error) {
	d, err := c.deployment(ctx, name)
	if err != nil {
		return nil, err
	}
	if !annotations.IsEnabled(d.Annotations) {
		return nil, &notOptedInError{name: name}
	}
	return d, nil
}

// virtualService gets a VirtualService; nil without error when it does not
// exist.
func (c *cluster) virtualService(ctx context.Context, name string) (*unstructured.Unstructured, error) {
	return c.getOptional(ctx, vsGVR(), name)
}

func (c *cluster) getOptional(ctx context.Context, gvr schema.GroupVersionResource, name string) (*unstructured.Unstructured, error) {
	u, err := c.dyn.Resource(gvr).Namespace(c.namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("getting %s %q in namespace %q: %w", gvr.Resource, name, c.namespace, err)
	}
	return u, nil
}

// list lists Istio objects of the working namespace.
func (c *cluster) list(ctx context.Context, gvr schema.GroupVersionResource) ([]unstructured.Unstructured, error) {
	l, err := c.dyn.Resource(gvr).Namespace(c.namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing %s in namespace %q: %w", gvr.Resource, c.namespace, err)
	}
	return l.Items, nil
}

// isNotFound reports whether err says a Deployment was not found.
func isNotFound(err error) bool {
	var nf *notFoundError
	return errors.As(err, &nf)
}

// releaseRBAC is what a user needs on CanaryReleases, for error messages.
const releaseRBAC = "the plugin needs get, list and watch on canaryreleases.meshcanary.io"

// releaseAPIError describes a failed read of CanaryReleases, with the
// permission needed when the API server refused it.
func releaseAPIError(verb, what string, err error) error {
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("%s %s: %w (%s)", verb, what, err, releaseRBAC)
	}
	return fmt.Errorf("%s %s: %w", verb, what, err)
}

// release gets the CanaryRelease of d, where the controller keeps the
// rollout's state, last analysis and history. It is nil without error when
// there is none: the controller has not seen d yet, or is a version that
// kept everything in annotations (the CRD is not even installed).
func (c *cluster) release(ctx context.Context, d *appsv1.Deployment) (*v1alpha1.CanaryRelease, error) {
	u, err := c.dyn.Resource(v1alpha1.GVR()).Namespace(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, releaseAPIError("getting", fmt.Sprintf("canaryrelease %q in namespace %q", d.Name, d.Namespace), err)
	}
	return release.FromUnstructured(u)
}

// releaseForWatch reads the CanaryRelease of d with a list (of at most that
// one object), whose resourceVersion a watch can start from even when the
// CanaryRelease does not exist yet. The resourceVersion is empty when the
// CRD is not installed: there is nothing to watch.
func (c *cluster) releaseForWatch(ctx context.Context, d *appsv1.Deployment) (cr *v1alpha1.CanaryRelease, resourceVersion string, err error) {
	l, err := c.dyn.Resource(v1alpha1.GVR()).Namespace(d.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("metadata.name", d.Name).String(),
	})
	if apierrors.IsNotFound(err) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", releaseAPIError("listing", fmt.Sprintf("canaryreleases in namespace %q", d.Namespace), err)
	}
	for i := range l.Items {
		if l.Items[i].GetName() == d.Name {
			if cr, err = release.FromUnstructured(&l.Items[i]); err != nil {
				return nil, "", err
			}
		}
	}
	return cr, l.GetResourceVersion(), nil
}

// releaseSet is the CanaryReleases of a namespace (or of all), keyed
// namespace/name, as `list` reads them: with one request, however many
// Deployments there are.
type releaseSet struct {
	byKey map[string]*v1alpha1.CanaryRelease
	// bad holds why a CanaryRelease could not be decoded.
	bad map[string]error
}

func releaseKey(namespace, name string) string { return namespace + "/" + name }

// of returns the CanaryRelease of d, nil when it has none, and an error
// when it has one that cannot be decoded.
func (s releaseSet) of(d *appsv1.Deployment) (*v1alpha1.CanaryRelease, error) {
	k := releaseKey(d.Namespace, d.Name)
	return s.byKey[k], s.bad[k]
}

// releases lists the CanaryReleases of namespace ns, every namespace with
// metav1.NamespaceAll. Without the CRD the set is empty.
func (c *cluster) releases(ctx context.Context, ns string) (releaseSet, error) {
	set := releaseSet{byKey: map[string]*v1alpha1.CanaryRelease{}, bad: map[string]error{}}
	l, err := c.dyn.Resource(v1alpha1.GVR()).Namespace(ns).List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) {
		return set, nil
	}
	if err != nil {
		return set, releaseAPIError("listing", "canaryreleases", err)
	}
	for i := range l.Items {
		u := &l.Items[i]
		k := releaseKey(u.GetNamespace(), u.GetName())
		cr, err := release.FromUnstructured(u)
		if err != nil {
			set.bad[k] = err
			continue
		}
		set.byKey[k] = cr
	}
	return set, nil
}

// releaseWatcher watches one CanaryRelease, for the retrying watcher.
type releaseWatcher struct {
	dyn       dynamic.Interface
	namespace string
	name      string
}

func (w releaseWatcher) WatchWithContext(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.FieldSelector = fields.OneTermEqualSelector("metadata.name", w.name).String()
	return w.dyn.Resource(v1alpha1.GVR()).Namespace(w.namespace).Watch(ctx, opts)
}
