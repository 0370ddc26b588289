// Package shard splits the rollouts among the controller's replicas
// (`meshcanary controller --shards N`): each of N shard Leases is held by at
// most one replica, and the holder of shard i acts only on the rollouts whose
// key hashes to i.
//
// Contract:
//   - Of(key, n) is FNV-1a (32 bits) of the workqueue key ("namespace/name"
//     of the stable Deployment) modulo n. It never changes between versions:
//     replicas of two versions running side by side during an upgrade must
//     agree on every key's shard. A test pins known keys to their shards.
//   - The shard Leases are named LeaseName(i) = "meshcanary-shard-<i>",
//     i = 0..N-1, in the leader-election namespace.
//   - An Elector holds at most one shard Lease at a time. It runs one
//     client-go LeaderElector per Lease; the first one to win claims the
//     replica and the others stop trying. A Lease won in the same moment as
//     the claimed one is given back at once (ReleaseOnCancel), so it waits
//     for nobody's lease duration; so is a Lease that a request cancelled
//     by that claim took on the server after all. A replica that holds no
//     Lease is a spare: it keeps trying every Lease and takes the first one
//     that frees up.
//   - Config.Lead runs while the shard is held. Its context ends, and Owns
//     answers false, as soon as the last successful renewal of the Lease
//     (timed from when that write was sent) is older than the renew
//     deadline: before the lease duration has passed and any other replica
//     can take the Lease, even when the API server cannot be reached to
//     give it back. Config.Lost is then called once, and the Elector never
//     leads again: the caller restarts the process as a spare.
//   - A Lease is only ever given back by the replica whose record it holds:
//     releasing a Lease that another replica took meanwhile is refused.
//   - Nothing here is global: the client, the clock and the callbacks come
//     through Config.
package shard
