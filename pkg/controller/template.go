package controller

import (
	"context"
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// writeTemplate replaces d's pod template with tmpl (a promotion, or
// stable put back after a rollback during one) and nothing else: a JSON
// Patch of spec.template, refused by the API server when d changed since
// the decision read it, as an Update with d's resourceVersion would be.
//
// It is a patch and not an Update of d because d comes from an informer
// cache, and the caches hold objects without what the controller never
// reads (stripUnread): an Update would send those fields back empty and
// wipe them on the server, kubectl's last-applied-configuration among
// them. It would also drop fields that a newer API server knows and this
// client does not.
func (c *Controller) writeTemplate(ctx context.Context, d *appsv1.Deployment, tmpl corev1.PodTemplateSpec) (*appsv1.Deployment, error) {
	patch, err := json.Marshal([]map[string]any{
		{"op": "test", "path": "/metadata/resourceVersion", "value": d.ResourceVersion},
		{"op": "replace", "path": "/spec/template", "value": tmpl},
	})
	if err != nil {
		return nil, fmt.Errorf("encoding the pod template patch of %s/%s: %w", d.Namespace, d.Name, err)
	}
	out, err := c.cfg.Kube.AppsV1().Deployments(d.Namespace).Patch(ctx, d.Name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: "meshcanary"})
	if err != nil {
		// A failed test means d changed since it was read: the retry
		// decides again from a fresh read.
		return nil, fmt.Errorf("patching the pod template of %s/%s as of resourceVersion %s: %w", d.Namespace, d.Name, d.ResourceVersion, err)
	}
	c.deploys.Mutation(out)
	return out, nil
}
