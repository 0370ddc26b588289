package shard

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	k8stesting "k8s.io/client-go/testing"
)

// Lease durations short enough for unit tests. client-go writes the lease
// duration in whole seconds, so one second is the least that works.
const (
	testLease = time.Second
	testRenew = 500 * time.Millisecond
	testRetry = 100 * time.Millisecond
	testNS    = "meshcanary-system"
)

// leaseStore is an API server's Leases in memory, shared by the fake
// clientsets of several replicas. Unlike client-go's object tracker it
// refuses an update made from a stale resourceVersion, as the API server
// does: without that, two replicas could both take one Lease and the tests
// would prove nothing.
type leaseStore struct {
	mu     sync.Mutex
	rv     int
	leases map[string]*coordinationv1.Lease
}

func newLeaseStore() *leaseStore { return &leaseStore{leases: map[string]*coordinationv1.Lease{}} }

// client is one replica's view of the store. While down is true a request
// hangs, as it does for a replica cut off from the API server, and fails
// once the connection is back.
func (s *leaseStore) client(down *atomic.Bool) coordinationv1client.LeasesGetter {
	cs := fake.NewClientset()
	cs.PrependReactor("*", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if down.Load() {
			for deadline := time.Now().Add(10 * time.Second); down.Load() && time.Now().Before(deadline); {
				<-time.After(5 * time.Millisecond)
			}
			return true, nil, errors.New("read tcp: i/o timeout")
		}
		return s.react(a)
	})
	return cs.CoordinationV1()
}

func (s *leaseStore) react(a k8stesting.Action) (bool, runtime.Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gr := coordinationv1.Resource("leases")
	switch a.GetVerb() {
	case "get":
		name := a.(k8stesting.GetAction).GetName()
		l, ok := s.leases[name]
		if !ok {
			return true, nil, apierrors.NewNotFound(gr, name)
		}
		return true, l.DeepCopy(), nil
	case "create", "update":
		l := a.(k8stesting.CreateAction).GetObject().(*coordinationv1.Lease).DeepCopy()
		cur, exists := s.leases[l.Name]
		switch {
		case a.GetVerb() == "create" && exists:
			return true, nil, apierrors.NewAlreadyExists(gr, l.Name)
		case a.GetVerb() == "update" && !exists:
			return true, nil, apierrors.NewNotFound(gr, l.Name)
		case a.GetVerb() == "update" && cur.ResourceVersion != l.ResourceVersion:
			return true, nil, apierrors.NewConflict(gr, l.Name, errors.New("the object has been modified"))
		}
		s.rv++
		l.ResourceVersion = strconv.Itoa(s.rv)
		s.leases[l.Name] = l
		return true, l.DeepCopy(), nil
	}
	return true, nil, fmt.Errorf("the lease store does not %s", a.GetVerb())
}

// holders maps each Lease to its holder.
func (s *leaseStore) holders() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for name, l := range s.leases {
		if l.Spec.HolderIdentity != nil {
			out[name] = *l.Spec.HolderIdentity
		}
	}
	return out
}

// put stores a Lease as a test sets it up.
func (s *leaseStore) put(name, holder string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rv++
	now := metav1.NowMicro()
	s.leases[name] = &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS, ResourceVersion: strconv.Itoa(s.rv)},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: ptr(int32(1)),
			AcquireTime: &now, RenewTime: &now},
	}
}

func ptr[T any](v T) *T { return &v }

// acting is one replica's lead of one shard: it acts until ctx is done.
type acting struct {
	replica string
	shard   int
	ctx     context.Context
}

// cluster is several replicas electing over one leaseStore, with a log of
// who acted on which shard when.
type cluster struct {
	t      *testing.T
	store  *leaseStore
	shards int

	mu   sync.Mutex
	log  []*acting
	lost map[string]error
	// overlaps are the moments a replica began to act on a shard while
	// another still did, as seen by the one beginning.
	overlaps []string
}

type replica struct {
	id     string
	down   atomic.Bool
	e      *Elector
	cancel context.CancelFunc
	done   chan struct{}
}

func newCluster(t *testing.T, shards int) *cluster {
	return &cluster{t: t, store: newLeaseStore(), shards: shards, lost: map[string]error{}}
}

// start runs a replica until the test ends; client, when not nil, replaces
// the replica's view of the store.
func (c *cluster) start(id string, client func(down *atomic.Bool) coordinationv1client.LeasesGetter) *replica {
	c.t.Helper()
	r := &replica{id: id, done: make(chan struct{})}
	if client == nil {
		client = c.store.client
	}
	e, err := NewElector(Config{
		Client: client(&r.down), Namespace: testNS, Identity: id, Shards: c.shards,
		LeaseDuration: testLease, RenewDeadline: testRenew, RetryPeriod: testRetry,
		Lead: func(ctx context.Context, shard int) {
			c.mu.Lock()
			for _, a := range c.log {
				if a.shard == shard && a.ctx.Err() == nil {
					c.overlaps = append(c.overlaps, fmt.Sprintf("%s began to act on shard %d while %s still did", id, shard, a.replica))
				}
			}
			c.log = append(c.log, &acting{replica: id, shard: shard, ctx: ctx})
			c.mu.Unlock()
			<-ctx.Done()
		},
		Lost: func(_ int, err error) {
			c.mu.Lock()
			c.lost[id] = err
			c.mu.Unlock()
		},
		Log: zerolog.New(zerolog.NewTestWriter(c.t)),
	})
	if err != nil {
		c.t.Fatal(err)
	}
	r.e = e
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { defer close(r.done); e.Run(ctx) }()
	c.t.Cleanup(r.stop)
	return r
}

// stop ends the replica as a shutdown does and waits for it.
func (r *replica) stop() {
	r.cancel()
	<-r.done
}

// acts returns what the replica is acting on now.
func (c *cluster) acts(id string) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for _, a := range c.log {
		if a.replica == id && a.ctx.Err() == nil {
			out = append(out, a.shard)
		}
	}
	return out
}

func (c *cluster) lostErr(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost[id]
}

// checkNoOverlap fails when a replica began to act on a shard while
// another still acted on it, or one replica led twice.
func (c *cluster) checkNoOverlap() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	leads := map[string]int{}
	for _, a := range c.log {
		leads[a.replica]++
		if leads[a.replica] == 2 {
			c.t.Errorf("%s led more than once", a.replica)
		}
	}
	for _, o := range c.overlaps {
		c.t.Error(o)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last: %s", timeout, what, state)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// settled waits until each shard is acted on by a different replica and
// the others act on nothing, and returns the replica acting on each shard.
func (c *cluster) settled(replicas []*replica, timeout time.Duration) map[int]*replica {
	c.t.Helper()
	var byShard map[int]*replica
	eventually(c.t, "every shard to be held by one replica", timeout, func() (bool, string) {
		byShard = map[int]*replica{}
		for _, r := range replicas {
			acts := c.acts(r.id)
			if len(acts) > 1 {
				return false, fmt.Sprintf("%s acts on %v", r.id, acts)
			}
			for _, s := range acts {
				if r.e.Held() != s {
					return false, fmt.Sprintf("%s acts on %d but holds %d", r.id, s, r.e.Held())
				}
				byShard[s] = r
			}
		}
		return len(byShard) == c.shards, fmt.Sprintf("%d of %d shards acted on; leases %v", len(byShard), c.shards, c.store.holders())
	})
	return byShard
}

func TestEveryShardIsHeldByOneReplicaAndTheSpareHoldsNone(t *testing.T) {
	c := newCluster(t, 3)
	var rs []*replica
	for i := range 4 {
		rs = append(rs, c.start(fmt.Sprintf("replica-%d", i), nil))
	}
	byShard := c.settled(rs, 10*time.Second)

	// Some time of renewals and the spare's tries: nothing moves.
	until := time.Now().Add(3 * testLease)
	eventually(t, "three lease durations of steady state", 5*testLease, func() (bool, string) {
		holders := c.store.holders()
		for s, r := range byShard {
			if holders[LeaseName(s)] != r.id {
				t.Fatalf("lease %s is held by %q, but %s acts on shard %d", LeaseName(s), holders[LeaseName(s)], r.id, s)
			}
		}
		return time.Now().After(until), ""
	})
	for _, r := range rs {
		held := r.e.Held()
		acting := false
		for _, a := range byShard {
			acting = acting || a == r
		}
		if !acting && held != -1 {
			t.Errorf("the spare %s holds shard %d", r.id, held)
		}
		if err := c.lostErr(r.id); err != nil {
			t.Errorf("%s lost its lease: %v", r.id, err)
		}
	}
	c.checkNoOverlap()
}

func TestOwnsIsTheHeldShardsKeysOnly(t *testing.T) {
	c := newCluster(t, 3)
	r := c.start("replica-0", nil)
	eventually(t, "the replica to hold a shard", 5*time.Second, func() (bool, string) { return r.e.Held() >= 0, "" })
	held := r.e.Held()
	cases := map[string]struct {
		key  string
		want bool
	}{}
	for i := range 30 {
		key := fmt.Sprintf("team-%d/app", i)
		cases[fmt.Sprintf("key %s of shard %d", key, Of(key, 3))] = struct {
			key  string
			want bool
		}{key, Of(key, 3) == held}
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := r.e.Owns(tc.key); got != tc.want {
				t.Errorf("Owns(%q) = %t while holding shard %d, want %t", tc.key, got, held, tc.want)
			}
		})
	}
}

// A replica cut off from the API server (a partition, a paused VM) cannot
// give its Lease back. It must stop acting on its own before the lease
// duration passes, so that the spare taking the shard over never acts on
// it at the same time.
func TestAPartitionedReplicaStopsActingBeforeTheSpareTakesItsShard(t *testing.T) {
	c := newCluster(t, 2)
	rs := []*replica{c.start("replica-0", nil), c.start("replica-1", nil), c.start("spare", nil)}
	byShard := c.settled(rs, 10*time.Second)
	victim := byShard[0]
	var spare *replica
	for _, r := range rs {
		if r != byShard[0] && r != byShard[1] {
			spare = r
		}
	}

	cut := time.Now()
	victim.down.Store(true)
	eventually(t, "the partitioned replica to stop acting", 2*testLease, func() (bool, string) {
		return len(c.acts(victim.id)) == 0 && victim.e.Held() == -1, fmt.Sprint(c.acts(victim.id))
	})
	stopped := time.Since(cut)
	if !errors.Is(c.lostErr(victim.id), ErrRenewDeadline) {
		t.Errorf("the partitioned replica reported %v, want ErrRenewDeadline", c.lostErr(victim.id))
	}
	if victim.e.Owns("any/key") {
		t.Error("the partitioned replica still owns keys")
	}
	eventually(t, "the spare to take shard 0", 5*testLease, func() (bool, string) {
		acts := c.acts(spare.id)
		return len(acts) == 1 && acts[0] == 0, fmt.Sprint(acts, c.store.holders())
	})
	t.Logf("the partitioned replica stopped %s after the cut, the spare acted %s after it", stopped, time.Since(cut))
	if stopped > testRenew+testRetry {
		t.Errorf("the partitioned replica acted for %s after its last renewal could be sent, want at most the renew deadline %s", stopped, testRenew)
	}
	// Its connection comes back: it must not clear the spare's record.
	victim.down.Store(false)
	<-victim.done
	if h := c.store.holders()[LeaseName(0)]; h != spare.id {
		t.Errorf("after the partition healed, lease %s is held by %q, want the spare", LeaseName(0), h)
	}
	c.checkNoOverlap()
}

// A replica that shuts down (SIGTERM, a rolling update) gives its Lease
// back: the spare takes over within a retry period, not a lease duration.
func TestAReplicaThatShutsDownHandsItsShardToTheSpareAtOnce(t *testing.T) {
	c := newCluster(t, 1)
	first := c.start("replica-0", nil)
	eventually(t, "the first replica to hold the shard", 5*time.Second, func() (bool, string) { return first.e.Held() == 0, "" })
	spare := c.start("spare", nil)
	// The spare is trying: it has read the Lease at least once.
	eventually(t, "the spare to see the lease held", 5*time.Second, func() (bool, string) {
		return c.store.holders()[LeaseName(0)] == first.id, ""
	})

	start := time.Now()
	first.stop()
	eventually(t, "the spare to take the shard", 5*testLease, func() (bool, string) { return spare.e.Held() == 0, "" })
	took := time.Since(start)
	t.Logf("the spare took the shard %s after the shutdown began", took)
	if took >= testLease {
		t.Errorf("the spare took %s, want less than the lease duration %s: the lease was not given back", took, testLease)
	}
	if err := c.lostErr(first.id); err != nil {
		t.Errorf("a shutdown was reported as a lost lease: %v", err)
	}
	c.checkNoOverlap()
}

// barrierLeases holds back a replica's writes that take a Lease until n of
// them are waiting, so that the replica wins n Leases at the same moment.
type barrierLeases struct {
	coordinationv1client.LeasesGetter
	n       int
	mu      sync.Mutex
	waiting int
	open    chan struct{}
}

func (b *barrierLeases) Leases(ns string) coordinationv1client.LeaseInterface {
	return barrierLease{LeaseInterface: b.LeasesGetter.Leases(ns), b: b}
}

func (b *barrierLeases) arrive() {
	b.mu.Lock()
	b.waiting++
	if b.waiting == b.n {
		close(b.open)
	}
	b.mu.Unlock()
	select {
	case <-b.open:
	case <-time.After(5 * time.Second):
	}
}

type barrierLease struct {
	coordinationv1client.LeaseInterface
	b *barrierLeases
}

func (l barrierLease) Update(ctx context.Context, lease *coordinationv1.Lease, opts metav1.UpdateOptions) (*coordinationv1.Lease, error) {
	if h := lease.Spec.HolderIdentity; h != nil && *h != "" {
		l.b.arrive()
	}
	return l.LeaseInterface.Update(ctx, lease, opts)
}

func TestAReplicaThatWinsSeveralLeasesAtOnceKeepsOneAndGivesTheOthersBack(t *testing.T) {
	c := newCluster(t, 3)
	for i := range 3 {
		c.store.put(LeaseName(i), "") // free, as a shutdown leaves them
	}
	b := &barrierLeases{n: 3, open: make(chan struct{})}
	r := c.start("replica-0", func(down *atomic.Bool) coordinationv1client.LeasesGetter {
		b.LeasesGetter = c.store.client(down)
		return b
	})
	eventually(t, "one lease kept and the others given back", 5*time.Second, func() (bool, string) {
		holders := c.store.holders()
		kept := 0
		for i := range 3 {
			if holders[LeaseName(i)] == r.id {
				kept++
			}
		}
		return kept == 1 && r.e.Held() >= 0 && holders[LeaseName(r.e.Held())] == r.id, fmt.Sprint(holders)
	})
	select {
	case <-b.open:
	default:
		t.Fatal("the replica never tried to take the three leases at once; the test proves nothing")
	}
	if acts := c.acts(r.id); len(acts) != 1 {
		t.Errorf("the replica acts on %v, want one shard", acts)
	}
	// A second replica gets a given-back Lease without waiting for it to
	// expire.
	start := time.Now()
	other := c.start("replica-1", nil)
	eventually(t, "a second replica to take a given-back lease", 5*testLease, func() (bool, string) { return other.e.Held() >= 0, "" })
	if took := time.Since(start); took >= testLease {
		t.Errorf("the second replica took %s to get a lease, want less than the lease duration: the extra leases were not given back", took)
	}
	c.checkNoOverlap()
}

func TestNewElectorRefusesWhatItCannotRun(t *testing.T) {
	var down atomic.Bool
	client := newLeaseStore().client(&down)
	valid := func() Config {
		return Config{Client: client, Namespace: testNS, Identity: "me", Shards: 3,
			LeaseDuration: testLease, RenewDeadline: testRenew, RetryPeriod: testRetry,
			Lead: func(context.Context, int) {}, Lost: func(int, error) {}}
	}
	cases := map[string]struct {
		edit    func(*Config)
		wantErr bool
	}{
		"a complete configuration":                     {func(*Config) {}, false},
		"one shard, as a single leader":                {func(c *Config) { c.Shards = 1 }, false},
		"no shards":                                    {func(c *Config) { c.Shards = 0 }, true},
		"no identity, which client-go cannot elect":    {func(c *Config) { c.Identity = "" }, true},
		"no namespace":                                 {func(c *Config) { c.Namespace = "" }, true},
		"no client":                                    {func(c *Config) { c.Client = nil }, true},
		"nothing to run while leading":                 {func(c *Config) { c.Lead = nil }, true},
		"nobody told when the lease is lost":           {func(c *Config) { c.Lost = nil }, true},
		"a renew deadline as long as the lease":        {func(c *Config) { c.RenewDeadline = c.LeaseDuration }, true},
		"a retry period as long as the renew deadline": {func(c *Config) { c.RetryPeriod = c.RenewDeadline }, true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := valid()
			tc.edit(&cfg)
			_, err := NewElector(cfg)
			if (err != nil) != tc.wantErr {
				t.Errorf("NewElector: %v, want an error: %t", err, tc.wantErr)
			}
		})
	}
}

// lossyLeases takes one Lease on the server once the replica holds another
// shard, and answers as if the request had been cancelled: what happens
// when the claim of one shard cancels the elector of another whose request
// was already on its way. The other Lease can be taken only once that
// request is on its way, so that the claim always comes in the middle.
type lossyLeases struct {
	coordinationv1client.LeasesGetter
	lossy, other string
	onItsWay     chan struct{}
	once         sync.Once
	after        func() bool // the lossy request is applied once this holds
}

func (g *lossyLeases) Leases(ns string) coordinationv1client.LeaseInterface {
	return lossyLease{LeaseInterface: g.LeasesGetter.Leases(ns), g: g}
}

type lossyLease struct {
	coordinationv1client.LeaseInterface
	g *lossyLeases
}

func (l lossyLease) Create(ctx context.Context, lease *coordinationv1.Lease, opts metav1.CreateOptions) (*coordinationv1.Lease, error) {
	switch lease.Name {
	case l.g.other:
		select {
		case <-l.g.onItsWay:
		case <-time.After(5 * time.Second):
		}
	case l.g.lossy:
		l.g.once.Do(func() { close(l.g.onItsWay) })
		for deadline := time.Now().Add(5 * time.Second); !l.g.after() && time.Now().Before(deadline); {
			<-time.After(5 * time.Millisecond)
		}
		if _, err := l.LeaseInterface.Create(context.Background(), lease, opts); err != nil {
			return nil, err
		}
		return nil, context.Canceled
	}
	return l.LeaseInterface.Create(ctx, lease, opts)
}

func TestALeaseWonByARequestWhoseAnswerWasLostIsGivenBack(t *testing.T) {
	c := newCluster(t, 2)
	var r *replica
	var started atomic.Bool
	r = c.start("replica-0", func(down *atomic.Bool) coordinationv1client.LeasesGetter {
		return &lossyLeases{LeasesGetter: c.store.client(down), lossy: LeaseName(1), other: LeaseName(0), onItsWay: make(chan struct{}),
			after: func() bool { return started.Load() && r.e.Held() == 0 }}
	})
	started.Store(true)
	eventually(t, "the replica to hold shard 0", 5*time.Second, func() (bool, string) { return r.e.Held() == 0, "" })
	eventually(t, "the lease taken by the lost request to be free", testLease/2, func() (bool, string) {
		h, exists := c.store.holders()[LeaseName(1)]
		return exists && h == "", fmt.Sprintf("%q holds it (exists: %t)", h, exists)
	})
	if acts := c.acts(r.id); len(acts) != 1 || acts[0] != 0 {
		t.Errorf("the replica acts on %v, want shard 0 only", acts)
	}
}
