package shard

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/clock"
)

// ErrRenewDeadline is what Config.Lost gets when the held Lease went
// unrenewed for longer than the renew deadline.
var ErrRenewDeadline = errors.New("the shard lease was not renewed within the renew deadline")

// errStopped is what Config.Lost gets when client-go stopped leading for
// another reason than the end of Run's context.
var errStopped = errors.New("the shard lease was lost")

// Config is what an Elector needs; every field but Log and Clock is
// required.
type Config struct {
	// Client reads and writes the Leases.
	Client coordinationv1client.LeasesGetter
	// Namespace holds the Leases; Identity names this replica in them.
	Namespace string
	Identity  string
	// Shards is the number of shards and Leases (at least 1).
	Shards int
	// LeaseDuration, RenewDeadline and RetryPeriod are client-go's: how
	// long an unrenewed Lease stays taken, how long the holder keeps trying
	// to renew it before it stops acting, and how often everyone tries.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Lead runs while the replica holds shard; ctx ends when the Lease is
	// lost or Run's context ends. It is called at most once.
	Lead func(ctx context.Context, shard int)
	// Lost is called once when the held Lease is lost while Run's context
	// is still live; the Elector does not lead again.
	Lost func(shard int, err error)
	Log  zerolog.Logger
	// Clock times the renew deadline; nil is the real clock.
	Clock clock.Clock
}

// Elector holds at most one of the shard Leases; see the package's
// contract.
type Elector struct {
	cfg       Config
	locks     []*renewLock
	electors  []*leaderelection.LeaderElector
	cancels   []context.CancelFunc
	cancelRun context.CancelFunc
	runCtx    context.Context

	mu sync.Mutex
	// held is the shard claimed, -1 before one is.
	held int
	// lost is set once the held Lease is lost; nothing is owned after it.
	lost     bool
	stopLead context.CancelFunc
}

// NewElector checks cfg and prepares one client-go LeaderElector per shard
// Lease.
func NewElector(cfg Config) (*Elector, error) {
	if cfg.Client == nil || cfg.Namespace == "" || cfg.Identity == "" || cfg.Lead == nil || cfg.Lost == nil {
		return nil, errors.New("shard: Client, Namespace, Identity, Lead and Lost are required")
	}
	if cfg.Shards < 1 {
		return nil, fmt.Errorf("shard: %d shards: expected at least 1", cfg.Shards)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	e := &Elector{cfg: cfg, held: -1, cancels: make([]context.CancelFunc, cfg.Shards)}
	for i := range cfg.Shards {
		lock := &renewLock{
			Interface: &resourcelock.LeaseLock{
				LeaseMeta:  metav1.ObjectMeta{Name: LeaseName(i), Namespace: cfg.Namespace},
				Client:     cfg.Client,
				LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
			},
			clock: cfg.Clock,
		}
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   cfg.LeaseDuration,
			RenewDeadline:   cfg.RenewDeadline,
			RetryPeriod:     cfg.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            LeaseName(i),
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) { e.started(ctx, i) },
				OnStoppedLeading: func() { e.stopped(i) },
			},
		})
		if err != nil {
			return nil, fmt.Errorf("shard: lease %s: %w", LeaseName(i), err)
		}
		e.locks = append(e.locks, lock)
		e.electors = append(e.electors, le)
	}
	return e, nil
}

// Run tries every Lease until one is won, then holds that one. It returns
// when ctx ends (giving the Lease back) or once the held Lease is lost.
// Call it once.
func (e *Elector) Run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ctxs := make([]context.Context, len(e.electors))
	e.mu.Lock()
	e.runCtx, e.cancelRun = ctx, cancel
	for i := range e.electors {
		ctxs[i], e.cancels[i] = context.WithCancel(ctx)
	}
	e.mu.Unlock()
	var wg sync.WaitGroup
	for i, le := range e.electors {
		wg.Go(func() { le.Run(ctxs[i]) })
	}
	wg.Wait()
}

// Held is the shard this replica holds, or -1 while it holds none or after
// it lost the one it held.
func (e *Elector) Held() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.lost {
		return -1
	}
	return e.held
}

// Owns reports whether this replica acts on the rollout with this
// workqueue key now.
func (e *Elector) Owns(key string) bool {
	h := e.Held()
	return h >= 0 && Of(key, e.cfg.Shards) == h
}

// started runs when shard i's Lease was won. The first win claims the
// replica and stops the other electors; a later one gives its Lease back.
func (e *Elector) started(ctx context.Context, i int) {
	e.mu.Lock()
	if e.held >= 0 {
		e.mu.Unlock()
		e.cfg.Log.Info().Int("shard", i).Msg("won a second shard lease at the same moment; giving it back")
		e.cancels[i]()
		return
	}
	e.held = i
	for j, cancel := range e.cancels {
		if j != i {
			cancel()
		}
	}
	lead, stop := context.WithCancel(ctx)
	e.stopLead = stop
	e.mu.Unlock()
	e.cfg.Log.Info().Int("shard", i).Str("lease", LeaseName(i)).Str("identity", e.cfg.Identity).Msg("holding shard")
	go e.watchRenewals(lead, i)
	e.cfg.Lead(lead, i)
}

// watchRenewals ends the lead once the held Lease has gone unrenewed for
// the renew deadline, timed from when the last successful renewal was
// sent: other replicas wait the longer lease duration from when they saw
// that renewal, so this replica has stopped before any of them can start.
func (e *Elector) watchRenewals(ctx context.Context, i int) {
	for {
		wait := e.locks[i].lastRenewed().Add(e.cfg.RenewDeadline).Sub(e.cfg.Clock.Now())
		if wait <= 0 {
			e.lose(i, ErrRenewDeadline)
			return
		}
		t := e.cfg.Clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}

// stopped runs when shard i's elector returns, whether it ever led or not.
func (e *Elector) stopped(i int) {
	e.mu.Lock()
	held := e.held == i
	e.mu.Unlock()
	if held {
		e.lose(i, errStopped)
		return
	}
	e.giveBack(i)
}

// giveBack frees shard i's Lease if it names this replica although its
// elector never led: a request that took the Lease can succeed on the
// server after the claim of another shard cancelled it, and the elector,
// which saw only the cancellation, neither renews nor releases it. Without
// this the Lease would sit unused for a lease duration. The write carries
// the resourceVersion just read, so it cannot clear a record someone else
// wrote meanwhile.
func (e *Elector) giveBack(i int) {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.RenewDeadline)
	defer cancel()
	lock := e.locks[i]
	rec, _, err := lock.Get(ctx)
	if err != nil || rec == nil || rec.HolderIdentity != e.cfg.Identity {
		return
	}
	now := metav1.NewTime(e.cfg.Clock.Now())
	err = lock.Update(ctx, resourcelock.LeaderElectionRecord{
		LeaseDurationSeconds: 1, RenewTime: now, AcquireTime: now, LeaderTransitions: rec.LeaderTransitions,
	})
	if err != nil {
		e.cfg.Log.Warn().Err(err).Int("shard", i).Msg("could not give back a shard lease won as another was claimed; it frees up after the lease duration")
		return
	}
	e.cfg.Log.Info().Int("shard", i).Msg("gave back a shard lease won as another was claimed")
}

// lose ends the lead of shard i once, and reports it unless Run's context
// ended first (a shutdown, not a loss).
func (e *Elector) lose(i int, err error) {
	e.mu.Lock()
	if e.lost {
		e.mu.Unlock()
		return
	}
	e.lost = true
	e.stopLead()
	shutdown := e.runCtx.Err() != nil
	e.cancelRun()
	e.mu.Unlock()
	if !shutdown {
		e.cfg.Log.Error().Err(err).Int("shard", i).Msg("lost the shard lease; no longer acting")
		e.cfg.Lost(i, err)
	}
}
