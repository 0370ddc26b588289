package shard

import (
	"hash/fnv"
	"strconv"
)

// LeasePrefix begins the name of every shard Lease.
const LeasePrefix = "meshcanary-shard-"

// Of returns the shard, 0..shards-1, that owns a workqueue key: FNV-1a
// (32 bits) of the key, modulo shards. With fewer than two shards every key
// is shard 0.
func Of(key string, shards int) int {
	if shards < 2 {
		return 0
	}
	h := fnv.New32a()
	// A hash.Hash's Write never fails.
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(shards))
}

// LeaseName is the name of shard i's Lease.
func LeaseName(i int) string { return LeasePrefix + strconv.Itoa(i) }
