package shard

import (
	"fmt"
	"math"
	"testing"
)

// The shards of these keys must never change: replicas of two versions
// run side by side during an upgrade and must agree on every key. The
// hashes of "" and "a" are FNV-1a's published test values (811c9dc5 and
// e40c292c), so a different hash fails here, not only a different modulo.
func TestOfKeepsEveryKnownKeyOnItsShard(t *testing.T) {
	cases := map[string]struct {
		key    string
		shards int
		want   int
	}{
		"the empty key is the offset basis 0x811c9dc5 mod 3":    {"", 3, 1},
		"the empty key is the offset basis 0x811c9dc5 mod 7":    {"", 7, 2},
		"a is 0xe40c292c mod 4":                                 {"a", 4, 0},
		"a is 0xe40c292c mod 7":                                 {"a", 7, 5},
		"a payment service on three shards":                     {"payments/payment-service", 3, 1},
		"a payment service on four shards":                      {"payments/payment-service", 4, 1},
		"a checkout on three shards":                            {"payments/checkout", 3, 2},
		"a checkout on four shards":                             {"payments/checkout", 4, 3},
		"an orders service in default on three shards":          {"default/orders", 3, 1},
		"a team's api on three shards":                          {"team-a/api", 3, 0},
		"a team's api on seven shards":                          {"team-a/api", 7, 4},
		"one shard owns every key":                              {"payments/checkout", 1, 0},
		"no shard count given owns every key as one shard does": {"payments/checkout", 0, 0},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if got := Of(c.key, c.shards); got != c.want {
				t.Errorf("Of(%q, %d) = %d, want %d", c.key, c.shards, got, c.want)
			}
		})
	}
}

// Rollouts are named alike (one namespace, app-1, app-2, ...): the hash
// must still spread them, or one replica would carry most of the work.
func TestOfSpreadsSimilarKeysEvenly(t *testing.T) {
	cases := map[string]struct{ shards, keys int }{
		"two shards":     {2, 10000},
		"three shards":   {3, 10000},
		"four shards":    {4, 10000},
		"seven shards":   {7, 14000},
		"sixteen shards": {16, 32000},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			counts := make([]int, c.shards)
			for i := range c.keys {
				s := Of(fmt.Sprintf("team-%d/app-%d", i%50, i), c.shards)
				if s < 0 || s >= c.shards {
					t.Fatalf("shard %d out of 0..%d", s, c.shards-1)
				}
				counts[s]++
			}
			want := float64(c.keys) / float64(c.shards)
			for s, n := range counts {
				if math.Abs(float64(n)-want) > 0.1*want {
					t.Errorf("shard %d owns %d of %d keys, want %.0f ± 10%%: %v", s, n, c.keys, want, counts)
				}
			}
		})
	}
}

func TestLeaseNamesAreTheDocumentedOnes(t *testing.T) {
	cases := map[string]struct {
		shard int
		want  string
	}{
		"the first shard": {0, "meshcanary-shard-0"},
		"the third shard": {2, "meshcanary-shard-2"},
		"a tenth shard":   {10, "meshcanary-shard-10"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if got := LeaseName(c.shard); got != c.want {
				t.Errorf("LeaseName(%d) = %q, want %q", c.shard, got, c.want)
			}
		})
	}
}
