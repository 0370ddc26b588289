package stages

import (
	"fmt"
	"time"
)

// heldForSlot is the Held reason of a release queued for a slot. It names
// no counts, so that the Queued Event is said once per wait while the
// message follows the counts.
const heldForSlot = "waiting for a release slot (--max-concurrent-releases)"

// Queued reports whether st is a release waiting for a release slot: it
// has not started, so it has no traffic and holds no slot. One parked by
// an invalid configuration waits for the fix first, not in the queue.
func Queued(st State) bool {
	return !st.QueuedAt.IsZero() && !InFlight(st) && st.Phase != Invalid
}

// waitForSlot holds a release that is about to start when every release
// slot is taken, and reports whether it did. Nothing starts: the canary is
// not scaled and no weight is written, so stable keeps its traffic. The
// wait ends when the caller, once a slot frees, asks again; a person's
// rollback ends it for good.
func (x *decider) waitForSlot() bool {
	s, slots := x.s(), x.obs.Slots
	if !x.startWanted() {
		x.leaveQueue()
		return false
	}
	if slots.Free() {
		return false // the start that follows begins a fresh State
	}
	if x.obs.Commands.Rollback != "" {
		x.cancelQueued()
		return true
	}
	if s.QueuedAt.IsZero() {
		s.QueuedAt = x.now
	}
	wait := fmt.Sprintf("waiting for a release slot: %d of %d releases in flight (--max-concurrent-releases)", slots.InFlight, slots.Limit)
	if slots.Ahead > 0 {
		wait += fmt.Sprintf(", %d queued ahead", slots.Ahead)
	}
	s.Message = fmt.Sprintf("release of canary revision %s queued: %s", x.obs.Canary.Revision, wait)
	if s.Held != heldForSlot {
		s.Held = heldForSlot
		x.event(false, ReasonQueued, "%s", s.Message)
	}
	// A retry waits with the release it asks for, so it stays for the
	// start to consume; the other commands find no release in progress.
	retry := x.obs.Commands.Retry
	x.obs.Commands.Retry = false
	x.ignoreCommands()
	x.obs.Commands.Retry = retry
	x.settle()
	return true
}

// startWanted reports whether this decision would start a release: the
// canary's revision is wanted, or meshcanary.io/retry asks for it again
// (retryWanted's condition, without consuming the command).
func (x *decider) startWanted() bool {
	c := x.obs.Canary.Revision
	retry := x.obs.Commands.Retry && c != "" && c != x.obs.Stable.Revision
	return retry || x.releaseWanted()
}

// leaveQueue forgets the wait of a release that is no longer wanted (the
// canary went back to stable's template, stable was changed under it).
func (x *decider) leaveQueue() {
	s := x.s()
	if s.QueuedAt.IsZero() {
		return
	}
	s.QueuedAt = time.Time{}
	if s.Held == heldForSlot {
		s.Held = ""
		s.Message = "the queued release is no longer wanted; it never started and stable kept all traffic"
	}
}

// cancelQueued is a person's rollback of a queued release: the revision
// must not go out, so it is recorded as rolled back before it started,
// and, as after any rollback, only a new canary template or
// meshcanary.io/retry releases again.
func (x *decider) cancelQueued() {
	s, cmd := x.s(), x.obs.Commands
	rev := x.obs.Canary.Revision
	*s = State{
		Unremoved:      s.Unremoved,
		Phase:          RolledBack,
		Revision:       rev,
		StableRevision: x.obs.Stable.Revision,
		Started:        s.QueuedAt,
		Finished:       x.now,
		Result:         ResultManualRollback,
		DecidedBy:      DecidedByAnnotation,
		Weight:         s.Weight,
		WeightPending:  s.WeightPending,
		WeightFrom:     s.WeightFrom,
	}
	if s.Started.IsZero() {
		s.Started = x.now
	}
	s.Message = fmt.Sprintf("manual rollback of the queued release of canary revision %s before it started: %s; stable kept all traffic", rev, cmd.Rollback)
	x.d.Consumed.Rollback = true
	x.d.Events = append(x.d.Events, Event{Warning: true, Reason: ReasonRolledBack, Message: s.Message, Resolve: true})
	if cmd.Retry {
		x.d.Consumed.Retry = true
		x.event(false, ReasonCommandIgnored, "meshcanary.io/retry ignored: the queued release it waited with was rolled back")
	}
	x.obs.Commands.Rollback, x.obs.Commands.Retry = "", false
	x.ignoreCommands()
	x.settle()
}
