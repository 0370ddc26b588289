package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

const (
	// GroupName is the API group; it must match the +groupName marker in
	// doc.go, from which the CRD is generated.
	GroupName = "meshcanary.io"
	// Version is the API version of this package.
	Version = "v1alpha1"
	// CanaryReleaseKind is the kind of CanaryRelease objects.
	CanaryReleaseKind = "CanaryRelease"
	// CanaryReleaseResource is the plural resource name, as in URLs and RBAC
	// rules.
	CanaryReleaseResource = "canaryreleases"
)

// GroupVersion is meshcanary.io/v1alpha1.
func GroupVersion() schema.GroupVersion {
	return schema.GroupVersion{Group: GroupName, Version: Version}
}

// GVR is the resource of CanaryReleases, for the dynamic client.
func GVR() schema.GroupVersionResource {
	return GroupVersion().WithResource(CanaryReleaseResource)
}

// GVK is the kind of CanaryReleases, for TypeMeta and unstructured objects.
func GVK() schema.GroupVersionKind {
	return GroupVersion().WithKind(CanaryReleaseKind)
}

// Kind qualifies a kind of this group, e.g. for apierrors.
func Kind(kind string) schema.GroupKind {
	return schema.GroupKind{Group: GroupName, Kind: kind}
}

// Resource qualifies a resource of this group, e.g. for apierrors.
func Resource(resource string) schema.GroupResource {
	return schema.GroupResource{Group: GroupName, Resource: resource}
}

// AddToScheme registers CanaryRelease and CanaryReleaseList, and the meta
// types every group version carries (ListOptions, ...). It is a function,
// not a runtime.SchemeBuilder variable, because the project keeps no package
// state; the effect on the scheme is the same.
func AddToScheme(s *runtime.Scheme) error {
	gv := GroupVersion()
	s.AddKnownTypes(gv, &CanaryRelease{}, &CanaryReleaseList{})
	metav1.AddToGroupVersion(s, gv)
	return nil
}
