package cli

import (
	"context"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/apis/meshcanary/v1alpha1"
	"github.com/meshcanary/meshcanary/pkg/release"
	"github.com/meshcanary/meshcanary/pkg/status"
)

// rollout is what is published about one opted-in Deployment, as last
// seen: the Deployment (the summary the controller mirrors there, the
// pending commands) and its CanaryRelease (state, last analysis, history),
// nil when it has none.
type rollout struct {
	d  *appsv1.Deployment
	cr *v1alpha1.CanaryRelease
}

// view decodes the rollout; an error says what could not be read, and the
// view holds everything that could.
func (r rollout) view() (status.View, error) { return status.ReadWith(r.d, r.cr) }

// mirrored reports whether the summary the controller mirrors on the
// Deployment agrees with its CanaryRelease. The controller records each
// decision in the CanaryRelease first, then acts on it (weights, scale,
// promotion) and mirrors the summary (and removes the commands it
// consumed) last: until the two agree, it is still acting on what the
// CanaryRelease says, and results such as the VirtualService's weights may
// not be visible yet.
func (r rollout) mirrored() bool {
	if r.cr == nil || r.cr.Status.State == nil {
		return true
	}
	a, s := r.d.Annotations, r.cr.Status
	return a[annotations.Phase] == s.Phase && a[annotations.Revision] == s.Revision && a[annotations.Weight] == strconv.Itoa(int(s.Weight))
}

// deploymentWatcher watches one Deployment, for the retrying watcher.
type deploymentWatcher struct {
	kube      kubernetes.Interface
	namespace string
	name      string
}

func (w deploymentWatcher) WatchWithContext(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.FieldSelector = fields.OneTermEqualSelector("metadata.name", w.name).String()
	return w.kube.AppsV1().Deployments(w.namespace).Watch(ctx, opts)
}

// rolloutWatch follows a Deployment and its CanaryRelease with a watch on
// each, resumed where it left off when the connection drops.
type rolloutWatch struct {
	deployments <-chan watch.Event
	// releases is nil when there is no CanaryRelease to watch (the CRD is
	// not installed): a nil channel is never ready in a select.
	releases <-chan watch.Event
	stops    []func()
}

// watchRollout starts watching d from its resourceVersion and, when
// releasesRV is not empty, d's CanaryRelease from that resourceVersion
// (see releaseForWatch).
func (c *cluster) watchRollout(ctx context.Context, d *appsv1.Deployment, releasesRV string) (*rolloutWatch, error) {
	w := &rolloutWatch{}
	dw, err := watchtools.NewRetryWatcherWithContext(ctx, d.ResourceVersion, deploymentWatcher{kube: c.kube, namespace: d.Namespace, name: d.Name})
	if err != nil {
		return nil, fmt.Errorf("watching deployment %q: %w", d.Name, err)
	}
	w.deployments, w.stops = dw.ResultChan(), append(w.stops, dw.Stop)
	if releasesRV != "" {
		rw, err := watchtools.NewRetryWatcherWithContext(ctx, releasesRV, releaseWatcher{dyn: c.dyn, namespace: d.Namespace, name: d.Name})
		if err != nil {
			w.stop()
			return nil, releaseAPIError("watching", fmt.Sprintf("canaryrelease %q", d.Name), err)
		}
		w.releases, w.stops = rw.ResultChan(), append(w.stops, rw.Stop)
	}
	return w, nil
}

func (w *rolloutWatch) stop() {
	for _, s := range w.stops {
		s()
	}
}

// applyDeployment takes one event of the Deployment's watch (ok false when
// the channel closed) into r and reports whether r changed. It fails when
// the Deployment was deleted or the watch failed.
func (r *rollout) applyDeployment(ev watch.Event, ok bool) (bool, error) {
	name := r.d.Name
	if !ok {
		return false, fmt.Errorf("watching deployment %q: the watch ended", name)
	}
	switch ev.Type {
	case watch.Deleted:
		return false, fmt.Errorf("deployment %q was deleted", name)
	case watch.Error:
		return false, fmt.Errorf("watching deployment %q: %w", name, apierrors.FromObject(ev.Object))
	case watch.Added, watch.Modified:
		next, isDeployment := ev.Object.(*appsv1.Deployment)
		if !isDeployment {
			return false, nil
		}
		r.d = next
		return true, nil
	}
	return false, nil
}

// applyRelease takes one event of the CanaryRelease's watch into r. A
// deleted CanaryRelease leaves r without one (the controller creates it
// again); an undecodable one fails.
func (r *rollout) applyRelease(ev watch.Event, ok bool) (bool, error) {
	name := r.d.Name
	if !ok {
		return false, fmt.Errorf("watching canaryrelease %q: the watch ended", name)
	}
	switch ev.Type {
	case watch.Deleted:
		r.cr = nil
		return true, nil
	case watch.Error:
		return false, releaseAPIError("watching", fmt.Sprintf("canaryrelease %q", name), apierrors.FromObject(ev.Object))
	case watch.Added, watch.Modified:
		u, isUnstructured := ev.Object.(*unstructured.Unstructured)
		if !isUnstructured {
			return false, nil
		}
		cr, err := release.FromUnstructured(u)
		if err != nil {
			return false, err
		}
		r.cr = cr
		return true, nil
	}
	return false, nil
}
