package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	appsv1 "k8s.io/api/apps/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"

	"github.com/meshcanary/meshcanary/pkg/apis/meshcanary/v1alpha1"
)

// FieldManager is the controller's field manager, the one its other writes
// use, so managedFields name a single owner.
const FieldManager = "meshcanary"

// FromUnstructured converts what the dynamic client or a dynamic informer
// returns. An object of another kind is an error rather than a
// CanaryRelease with whatever fields happened to match.
func FromUnstructured(u *unstructured.Unstructured) (*v1alpha1.CanaryRelease, error) {
	if u == nil {
		return nil, errors.New("release: nil object")
	}
	if gvk := u.GroupVersionKind(); !gvk.Empty() && gvk != v1alpha1.GVK() {
		return nil, fmt.Errorf("release: %s %s/%s is not a %s", gvk, u.GetNamespace(), u.GetName(), v1alpha1.GVK())
	}
	cr := &v1alpha1.CanaryRelease{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, cr); err != nil {
		return nil, fmt.Errorf("release: converting %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	cr.SetGroupVersionKind(v1alpha1.GVK())
	return cr, nil
}

// ToUnstructured converts for the dynamic client. apiVersion and kind are
// always set: typed objects usually come without TypeMeta, and the dynamic
// client refuses an object without them.
func ToUnstructured(cr *v1alpha1.CanaryRelease) (*unstructured.Unstructured, error) {
	if cr == nil {
		return nil, errors.New("release: nil CanaryRelease")
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(cr)
	if err != nil {
		return nil, fmt.Errorf("release: converting %s/%s: %w", cr.Namespace, cr.Name, err)
	}
	u := &unstructured.Unstructured{Object: obj}
	u.SetGroupVersionKind(v1alpha1.GVK())
	return u, nil
}

// NewForDeployment returns the CanaryRelease of d, not yet created. d must
// have been read from the API server: the owner reference needs its UID.
func NewForDeployment(d *appsv1.Deployment) *v1alpha1.CanaryRelease {
	return &v1alpha1.CanaryRelease{
		TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion().String(), Kind: v1alpha1.CanaryReleaseKind},
		ObjectMeta: metav1.ObjectMeta{
			Name:      d.Name,
			Namespace: d.Namespace,
			OwnerReferences: []metav1.OwnerReference{{
				// Typed Deployments from client-go carry no TypeMeta.
				APIVersion: appsv1.SchemeGroupVersion.String(),
				Kind:       "Deployment",
				Name:       d.Name,
				UID:        d.UID,
				// The controller reference (metav1.GetControllerOf), so that
				// an informer's owner lookup leads back to the Deployment.
				Controller: new(true),
				// Blocking the owner's foreground deletion would need
				// update on deployments/finalizers wherever the
				// OwnerReferencesPermissionEnforcement admission plugin runs
				// (OpenShift, hardened clusters); the controller has no such
				// permission and a Deployment never needs to wait for its
				// rollout record to go first.
				BlockOwnerDeletion: new(false),
			}},
		},
		Spec: v1alpha1.CanaryReleaseSpec{Deployment: d.Name},
	}
}

// Get reads one CanaryRelease.
func Get(ctx context.Context, dyn dynamic.Interface, namespace, name string) (*v1alpha1.CanaryRelease, error) {
	u, err := dyn.Resource(v1alpha1.GVR()).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("release: getting %s/%s: %w", namespace, name, err)
	}
	return FromUnstructured(u)
}

// Create creates cr and returns it as stored. Its status is not stored (see
// the package contract).
func Create(ctx context.Context, dyn dynamic.Interface, cr *v1alpha1.CanaryRelease) (*v1alpha1.CanaryRelease, error) {
	u, err := ToUnstructured(cr)
	if err != nil {
		return nil, err
	}
	out, err := dyn.Resource(v1alpha1.GVR()).Namespace(cr.Namespace).Create(ctx, u, metav1.CreateOptions{FieldManager: FieldManager})
	if err != nil {
		return nil, fmt.Errorf("release: creating %s/%s: %w", cr.Namespace, cr.Name, err)
	}
	return FromUnstructured(out)
}

// UpdateStatus replaces cr's status through the status subresource, on the
// condition that the object is still at cr's resourceVersion, and returns it
// as stored (with its new resourceVersion). Metadata and spec in cr are
// ignored by the server.
func UpdateStatus(ctx context.Context, dyn dynamic.Interface, cr *v1alpha1.CanaryRelease) (*v1alpha1.CanaryRelease, error) {
	if cr.ResourceVersion == "" {
		// Without one the write would not be conditional, which is the
		// point; the API server refuses it for custom resources anyway,
		// with a less helpful message.
		return nil, fmt.Errorf("release: updating the status of %s/%s: no resourceVersion; update what was read from the API server", cr.Namespace, cr.Name)
	}
	u, err := ToUnstructured(cr)
	if err != nil {
		return nil, err
	}
	out, err := dyn.Resource(v1alpha1.GVR()).Namespace(cr.Namespace).UpdateStatus(ctx, u, metav1.UpdateOptions{FieldManager: FieldManager})
	if err != nil {
		return nil, fmt.Errorf("release: updating the status of %s/%s at resourceVersion %s: %w", cr.Namespace, cr.Name, cr.ResourceVersion, err)
	}
	return FromUnstructured(out)
}

// SetCondition adds c to conds or updates the condition of its type, and
// reports whether anything changed, so a caller can skip a write that
// would change nothing. lastTransitionTime moves only when the status does
// (a zero one in c means now), as meta.SetStatusCondition does.
func SetCondition(conds *[]metav1.Condition, c metav1.Condition) bool {
	return meta.SetStatusCondition(conds, c)
}

// EncodeJSON marshals v for status.state, status.plan or
// status.lastAnalysis. The CRD accepts JSON objects only there, so v must
// marshal to one (a struct or a map).
func EncodeJSON(v any) (*apiextensionsv1.JSON, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("release: encoding %T: %w", v, err)
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, fmt.Errorf("release: %T encodes to %.20q, not a JSON object", v, raw)
	}
	return &apiextensionsv1.JSON{Raw: raw}, nil
}

// DecodeJSON unmarshals one of those fields into v. An absent field (nil j)
// leaves v as it is and is not an error: a CanaryRelease created by an older
// controller may lack it.
func DecodeJSON(j *apiextensionsv1.JSON, v any) error {
	if j == nil || len(j.Raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(j.Raw, v); err != nil {
		return fmt.Errorf("release: decoding into %T: %w", v, err)
	}
	return nil
}

// TruncateMessage shortens s to v1alpha1.MaxMessageLength characters, the
// most status.message accepts: a longer message would fail the whole status
// write. The cut ends in "…" so readers know there was more.
func TruncateMessage(s string) string {
	const ellipsis = "…"
	if utf8.RuneCountInString(s) <= v1alpha1.MaxMessageLength {
		return s
	}
	keep := v1alpha1.MaxMessageLength - utf8.RuneCountInString(ellipsis)
	n := 0
	for i := range s {
		if n == keep {
			return s[:i] + ellipsis
		}
		n++
	}
	return s
}
