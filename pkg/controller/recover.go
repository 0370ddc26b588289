package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/stages"
)

// errPanicked sends a key whose reconcile panicked back to the queue with
// backoff: the panic may come from input that a person fixes later.
var errPanicked = errors.New("reconcile panicked")

// reconcileSafely runs one reconcile and turns a panic into that rollout's
// problem: it is shown as Invalid with the panic's message, and the worker
// goes on serving every other rollout. Traffic is not touched.
func (c *Controller) reconcileSafely(ctx context.Context, key string) (after time.Duration, err error) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		msg := stages.Bound(fmt.Sprintf("internal error while deciding this rollout (traffic left as it is): %v", r), stages.MaxMessage)
		c.cfg.Log.Error().Str("key", key).Str("stack", string(debug.Stack())).Msg(msg)
		c.showPanic(ctx, key, msg)
		after, err = 0, errPanicked
	}()
	return c.reconcile(ctx, key)
}

// showPanic writes the Invalid phase and the message to the stable
// Deployment's status annotations and emits a Warning. The state is left
// alone, so the rollout resumes from it once the cause is gone.
func (c *Controller) showPanic(ctx context.Context, key, msg string) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return
	}
	d, err := c.getDeployment(ns, name)
	if err != nil || d == nil {
		return
	}
	c.cfg.Recorder.Event(d, corev1.EventTypeWarning, stages.ReasonInvalidConfiguration, msg)
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		annotations.Phase:   string(stages.Invalid),
		annotations.Message: msg,
	}}})
	if err != nil {
		return
	}
	out, err := c.cfg.Kube.AppsV1().Deployments(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "meshcanary"})
	if err != nil {
		c.cfg.Log.Warn().Err(err).Str("key", key).Msg("could not show the internal error on the Deployment")
		return
	}
	c.deploys.Mutation(out)
}
