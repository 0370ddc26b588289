package shard

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/clock"
)

// errNotOurs refuses to give back a Lease whose last read record names
// another holder.
var errNotOurs = errors.New("not releasing a lease held by another replica")

// renewLock is a resource lock that remembers when its holder's record was
// last written: client-go tells its OnStartedLeading context only after a
// failed renewal has also tried to give the Lease back, which can take
// another renew deadline while the API server is unreachable, so the
// Elector times the renew deadline itself from here.
//
// It also refuses a release (a write of an empty holder) unless the record
// it last read is this replica's: client-go decides to release from the
// record it last observed, and a replica cut off while another took the
// Lease over would otherwise erase the new holder's record when the
// connection comes back.
type renewLock struct {
	resourcelock.Interface
	clock clock.PassiveClock

	mu sync.Mutex
	// renewed is when the last successful write of this replica's record
	// was sent; zero before the first.
	renewed time.Time
	// readHolder is the holder named by the record last read.
	readHolder string
}

func (l *renewLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	rec, raw, err := l.Interface.Get(ctx)
	if err == nil && rec != nil {
		l.mu.Lock()
		l.readHolder = rec.HolderIdentity
		l.mu.Unlock()
	}
	return rec, raw, err
}

func (l *renewLock) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	return l.write(ler, func() error { return l.Interface.Create(ctx, ler) })
}

func (l *renewLock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	if ler.HolderIdentity == "" {
		l.mu.Lock()
		ours := l.readHolder == l.Identity()
		l.mu.Unlock()
		if !ours {
			return fmt.Errorf("%s: %w", l.Describe(), errNotOurs)
		}
	}
	return l.write(ler, func() error { return l.Interface.Update(ctx, ler) })
}

// write records the time a write of this replica's record was sent once it
// succeeded; a release leaves nothing to renew.
func (l *renewLock) write(ler resourcelock.LeaderElectionRecord, do func() error) error {
	sent := l.clock.Now()
	if err := do(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.readHolder = ler.HolderIdentity
	if ler.HolderIdentity == l.Identity() {
		l.renewed = sent
	} else {
		l.renewed = time.Time{}
	}
	return nil
}

// lastRenewed is when the last successful write of this replica's record
// was sent.
func (l *renewLock) lastRenewed() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.renewed
}
