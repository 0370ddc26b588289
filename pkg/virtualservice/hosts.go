package virtualservice

import "strings"

// clusterDomain is the DNS suffix assumed for Kubernetes services. Clusters
// with another domain still work as long as both destinations spell the host
// the same way.
const clusterDomain = "svc.cluster.local"

// HostsEqual reports whether two destination hosts name the same service,
// resolving the short forms of a service in namespace: "reviews",
// "reviews.<namespace>", "reviews.<namespace>.svc" and
// "reviews.<namespace>.svc.cluster.local" are all equal. Users write both
// destinations of a route by hand and often spell the host differently in
// each; that must not stop meshcanary, while two genuinely different hosts
// must. Comparison ignores case and a trailing dot, as DNS does. Short forms
// are only resolved for namespace itself (with an empty namespace, only
// identical hosts are equal), and an empty host equals nothing.
func HostsEqual(a, b, namespace string) bool {
	ca, cb := canonicalHost(a, namespace), canonicalHost(b, namespace)
	return ca != "" && ca == cb
}

func canonicalHost(h, namespace string) string {
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	ns := strings.ToLower(namespace)
	if h == "" || ns == "" {
		return h
	}
	name, rest, _ := strings.Cut(h, ".")
	switch rest {
	case "", ns, ns + ".svc":
		return name + "." + ns + "." + clusterDomain
	}
	return h
}
