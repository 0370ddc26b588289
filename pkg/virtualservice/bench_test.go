package virtualservice

import (
	"os"
	"testing"

	"sigs.k8s.io/yaml"
)

// BenchmarkSetCanaryWeight measures the edit of a realistic VirtualService
// (several routes, retries, fault injection, mirror): the cost of one
// weight write before it goes on the wire.
func BenchmarkSetCanaryWeight(b *testing.B) {
	raw, err := os.ReadFile("testdata/named-route-with-fault-mirror-headers.yaml")
	if err != nil {
		b.Skip("testdata not found:", err)
	}
	var obj map[string]any
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		b.Fatal(err)
	}
	t := Target{Route: "primary", StableSubset: "stable", CanarySubset: "canary", Namespace: "shop"}
	b.ReportAllocs()
	w := 0
	for b.Loop() {
		w = (w + 7) % 101
		if _, err := SetCanaryWeight(obj, t, w); err != nil {
			b.Fatal(err)
		}
	}
}
