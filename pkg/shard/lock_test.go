package shard

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	clocktesting "k8s.io/utils/clock/testing"
)

// client-go gives a Lease back from the record it last observed; the lock
// must refuse when the record it last read names someone else, or a replica
// whose connection came back would erase its successor's record.
func TestAReleaseIsRefusedUnlessTheLastReadRecordIsOurs(t *testing.T) {
	cases := map[string]struct {
		holderAtRelease string // who holds the Lease when it is read before the release; "" keeps ours
		wantRefused     bool
		wantHolder      string
	}{
		"our own lease is given back":                  {"", false, ""},
		"a lease another replica took over is kept":    {"successor", true, "successor"},
		"a lease someone else already gave back stays": {"-", true, ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			store := newLeaseStore()
			var down atomic.Bool
			l := &renewLock{
				Interface: &resourcelock.LeaseLock{
					LeaseMeta:  metav1.ObjectMeta{Name: LeaseName(0), Namespace: testNS},
					Client:     store.client(&down),
					LockConfig: resourcelock.ResourceLockConfig{Identity: "me"},
				},
				clock: clocktesting.NewFakeClock(time.Now()),
			}
			ctx := context.Background()
			if err := l.Create(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "me", LeaseDurationSeconds: 1}); err != nil {
				t.Fatal(err)
			}
			switch c.holderAtRelease {
			case "":
			case "-":
				store.put(LeaseName(0), "")
			default:
				store.put(LeaseName(0), c.holderAtRelease)
			}
			if _, _, err := l.Get(ctx); err != nil {
				t.Fatal(err)
			}
			err := l.Update(ctx, resourcelock.LeaderElectionRecord{LeaseDurationSeconds: 1})
			if refused := errors.Is(err, errNotOurs); refused != c.wantRefused {
				t.Errorf("release: %v, want refused: %t", err, c.wantRefused)
			}
			if h := store.holders()[LeaseName(0)]; h != c.wantHolder {
				t.Errorf("the lease is held by %q after the release, want %q", h, c.wantHolder)
			}
		})
	}
}

// The renew deadline is timed from when the last renewal was sent, not
// from when its answer came: the other replicas time the lease from a
// moment no earlier than the write.
func TestARenewalCountsFromWhenItWasSent(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	sent := clk.Now()
	inner := &slowLock{clock: clk, takes: 3 * time.Second}
	l := &renewLock{Interface: inner, clock: clk}
	// Steps of one lock's life, in order.
	steps := []struct {
		name      string
		write     func() error
		wantSince time.Time
	}{
		{"an acquisition that took three seconds counts from its start", func() error {
			return l.Create(context.Background(), resourcelock.LeaderElectionRecord{HolderIdentity: "me"})
		}, sent},
		{"a failed renewal changes nothing", func() error {
			inner.fail = true
			defer func() { inner.fail = false }()
			return l.Update(context.Background(), resourcelock.LeaderElectionRecord{HolderIdentity: "me"})
		}, sent},
		{"a release leaves nothing renewed", func() error {
			return l.Update(context.Background(), resourcelock.LeaderElectionRecord{})
		}, time.Time{}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			_ = step.write()
			if got := l.lastRenewed(); !got.Equal(step.wantSince) {
				t.Errorf("last renewed %s, want %s", got, step.wantSince)
			}
		})
	}
}

// slowLock is a lock whose writes take a while on a fake clock.
type slowLock struct {
	resourcelock.Interface
	clock *clocktesting.FakeClock
	takes time.Duration
	fail  bool
}

func (s *slowLock) write() error {
	s.clock.Step(s.takes)
	if s.fail {
		return errors.New("the server timed out")
	}
	return nil
}
func (s *slowLock) Create(context.Context, resourcelock.LeaderElectionRecord) error { return s.write() }
func (s *slowLock) Update(context.Context, resourcelock.LeaderElectionRecord) error { return s.write() }
func (s *slowLock) Identity() string                                                { return "me" }
func (s *slowLock) Describe() string                                                { return "slow lock" }
