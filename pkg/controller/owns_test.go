package controller

import (
	"testing"

	"github.com/meshcanary/meshcanary/pkg/metrics"
)

// With the rollouts sharded among replicas, a worker reconciles only the
// keys its replica owns, whatever queued the others: informer events, a
// policy reload (EnqueueAll), a finished gate or analysis (Enqueue).
func TestWorkersReconcileOnlyTheRolloutsTheReplicaOwns(t *testing.T) {
	r := newActRig(t, metrics.VerdictPass, "pay", "cart")
	r.c.cfg.Owns = func(key string) bool { return key == actNS+"/pay" }
	r.c.EnqueueAll()
	r.c.Enqueue(actNS + "/cart")
	for i := 0; r.c.QueueLen() > 0; i++ {
		if i == 100 {
			t.Fatalf("the queue never drained: %d keys left", r.c.QueueLen())
		}
		r.c.next(r.ctx)
		r.settle()
	}
	if r.release("pay") == nil {
		t.Error("the owned rollout was never reconciled: it has no CanaryRelease")
	}
	if r.release("cart") != nil {
		t.Error("the other shard's rollout was reconciled: it has a CanaryRelease")
	}
	if n := r.c.queue.NumRequeues(actNS + "/cart"); n != 0 {
		t.Errorf("the other shard's key is held for %d retries, want it forgotten", n)
	}
}
