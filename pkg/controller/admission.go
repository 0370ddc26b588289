package controller

import (
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshcanary/meshcanary/pkg/release"
	"github.com/meshcanary/meshcanary/pkg/stages"
)

// admission counts the release slots of this replica
// (Config.MaxConcurrentReleases, --max-concurrent-releases), so that one
// shared change, such as a base image bump, does not start thousands of
// releases at once. Whether a release starts is the core's decision
// (stages.Observation.Slots); admission only counts, and makes taking a
// slot one step with the count it rests on, so that two workers never
// both take the last one.
//
// It is rebuilt from the CanaryReleases' recorded states when the
// controller starts leading (Run), and kept by the reconciles after that:
// a rollout's reconciles never overlap and read the record they last
// wrote (the MutationCache), so each one is the authority on its own key,
// which the informer's events, arriving later and out of step with the
// writes, would not be. A release that is in flight on record is always
// admitted, over the cap if need be: a running release is never stopped
// by it.
type admission struct {
	limit int
	// wake queues a rollout; a freed slot wakes the releases next in line
	// through the workqueue, never by polling.
	wake    func(key string)
	metrics *Metrics

	mu       sync.Mutex
	inFlight map[string]struct{}
	// queue holds the releases waiting for a slot in the order they were
	// queued (stages.State.QueuedAt, then key), which survives restarts.
	queue []queuedRelease
}

type queuedRelease struct {
	key   string
	since time.Time
}

func newAdmission(limit int, wake func(string), m *Metrics) *admission {
	return &admission{limit: max(limit, 0), wake: wake, metrics: m, inFlight: map[string]struct{}{}}
}

// rebuild counts the releases in flight and the queued ones from the
// CanaryReleases in objs, of the rollouts this replica owns (owns nil:
// all; a replica's shard does not change while it runs). Call it before
// the workers start.
func (a *admission) rebuild(objs []any, owns func(key string) bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	clear(a.inFlight)
	a.queue = a.queue[:0]
	for _, o := range objs {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		cr, err := release.FromUnstructured(u)
		if err != nil || cr.Status.State == nil {
			continue
		}
		var st stages.State
		if release.DecodeJSON(cr.Status.State, &st) != nil {
			continue // the reconcile reports the unreadable state
		}
		key := cr.Namespace + "/" + cr.Name
		if owns != nil && !owns(key) {
			continue
		}
		switch {
		case stages.InFlight(st):
			a.inFlight[key] = struct{}{}
		case stages.Queued(st):
			a.enqueueLocked(key, st.QueuedAt)
		}
	}
	a.publishLocked()
}

// slots counts the slots as the core sees them for key.
func (a *admission) slots(key string) stages.Slots {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.slotsLocked(key)
}

func (a *admission) slotsLocked(key string) stages.Slots {
	s := stages.Slots{Limit: a.limit, InFlight: len(a.inFlight), Ahead: len(a.queue)}
	if _, ok := a.inFlight[key]; ok {
		s.InFlight--
	}
	if i := a.indexLocked(key); i >= 0 {
		s.Ahead = i
	}
	return s
}

// commit records what a decision made of key's release. It refuses (and
// changes nothing) when the decision started or queued a release on a
// count that has changed since: the caller decides again.
func (a *admission) commit(key string, before, after stages.State) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.commitLocked(key, before, after, true)
}

func (a *admission) commitLocked(key string, before, after stages.State, recheck bool) bool {
	_, held := a.inFlight[key]
	wasQueued := a.indexLocked(key) >= 0
	switch {
	case stages.InFlight(after):
		if recheck && !held && !stages.InFlight(before) && !a.slotsLocked(key).Free() {
			return false
		}
		a.inFlight[key] = struct{}{}
		a.dequeueLocked(key)
		// The release took the slot its place in line gave it: nobody
		// behind it moves up.
		a.publishLocked()
		return true
	case stages.Queued(after):
		if recheck && a.slotsLocked(key).Free() {
			return false // a slot freed meanwhile, and its wake-up came before this release was in line
		}
		delete(a.inFlight, key)
		a.enqueueLocked(key, after.QueuedAt)
	default:
		delete(a.inFlight, key)
		a.dequeueLocked(key)
	}
	if held || (wasQueued && !stages.Queued(after)) {
		a.kickLocked()
	}
	a.publishLocked()
	return true
}

// forget drops a rollout that is gone or no longer meshcanary's.
func (a *admission) forget(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, held := a.inFlight[key]
	delete(a.inFlight, key)
	if a.dequeueLocked(key) || held {
		a.kickLocked()
	}
	a.publishLocked()
}

// kickLocked wakes the releases first in line for the slots that are
// free: each of them will find its slot when it reconciles.
func (a *admission) kickLocked() {
	if a.limit <= 0 {
		return
	}
	free := a.limit - len(a.inFlight)
	for i := 0; i < free && i < len(a.queue); i++ {
		a.wake(a.queue[i].key)
	}
}

func (a *admission) indexLocked(key string) int {
	return slices.IndexFunc(a.queue, func(q queuedRelease) bool { return q.key == key })
}

func (a *admission) enqueueLocked(key string, since time.Time) {
	if i := a.indexLocked(key); i >= 0 {
		if a.queue[i].since.Equal(since) {
			return
		}
		a.queue = slices.Delete(a.queue, i, i+1)
	}
	q := queuedRelease{key: key, since: since}
	i, _ := slices.BinarySearchFunc(a.queue, q, compareQueued)
	a.queue = slices.Insert(a.queue, i, q)
}

func (a *admission) dequeueLocked(key string) bool {
	i := a.indexLocked(key)
	if i < 0 {
		return false
	}
	a.queue = slices.Delete(a.queue, i, i+1)
	return true
}

func compareQueued(x, y queuedRelease) int {
	if c := x.since.Compare(y.since); c != 0 {
		return c
	}
	return strings.Compare(x.key, y.key)
}

func (a *admission) publishLocked() {
	if a.metrics == nil {
		return
	}
	a.metrics.ReleasesInFlight.Set(float64(len(a.inFlight)))
	a.metrics.ReleasesQueued.Set(float64(len(a.queue)))
}

// decide asks the core with the release slots counted for key. A
// decision that started or queued a release on a count another worker
// changed meanwhile is made again, the second time under the admission
// lock, so that the count it rests on and the slot it takes are one step.
// Deciding is pure and takes microseconds; holding the lock across it is
// the rare path.
func (c *Controller) decide(key string, obs stages.Observation, st stages.State, now time.Time) stages.Decision {
	a := c.admit
	if a == nil {
		return stages.Decide(obs, st, now)
	}
	obs.Slots = a.slots(key)
	dec := stages.Decide(obs, st, now)
	if a.commit(key, st, dec.State) {
		return dec
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	obs.Slots = a.slotsLocked(key)
	dec = stages.Decide(obs, st, now)
	a.commitLocked(key, st, dec.State, false)
	return dec
}

// forgetRelease drops key's slot or place in line, when its Deployment is
// gone or no longer meshcanary's.
func (c *Controller) forgetRelease(key string) {
	if c.admit != nil {
		c.admit.forget(key)
	}
}
