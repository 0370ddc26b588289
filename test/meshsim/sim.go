package meshsim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

const (
	// ErrorRateAnnotation on a pod is the share of its requests answered 500.
	ErrorRateAnnotation = "sandbox.meshcanary.io/error-rate"
	// LatencyAnnotation on a pod is its median latency as a Go duration.
	LatencyAnnotation = "sandbox.meshcanary.io/latency"

	defaultSourceWorkload  = "meshsim-client"
	defaultSourceNamespace = "meshsim"

	// stepInterval is short enough that a weight change shows in the very
	// next batch of requests, long enough not to burn a shared core.
	stepInterval = 10 * time.Millisecond
	// maxCatchUp bounds the burst after a stalled step (GC, a suspended
	// process): a real client would not fire the missed seconds at once.
	maxCatchUp = time.Second
	// syncTimeout bounds the wait for the caches, which otherwise lasts
	// forever when, say, the Istio CRDs are not installed: the bounds must
	// hold even when generation never starts.
	syncTimeout = 2 * time.Minute
)

// Service is one target of the generated load.
type Service struct {
	Namespace string
	// Host is the Kubernetes Service name the load targets, e.g.
	// "payment-service".
	Host string
	// RPS is requests per second; fractions accumulate, so 0.5 is one
	// request every two seconds.
	RPS float64
}

// Config configures a Sim. Kube, Dynamic, Services, MaxDuration and
// MaxRequests are required.
//
// The Istio metrics carry the labels reporter, source_workload,
// source_workload_namespace, destination_workload,
// destination_workload_namespace, destination_service,
// destination_service_name, destination_version,
// destination_canonical_service, destination_canonical_revision,
// request_protocol, response_code and response_flags.
type Config struct {
	Kube     kubernetes.Interface
	Dynamic  dynamic.Interface
	Services []Service
	// MaxDuration is a hard bound: the generator stops by itself after it.
	MaxDuration time.Duration
	// MaxRequests is a hard bound on the total requests over all services.
	MaxRequests int64
	// Seed makes the traffic deterministic given the same routing state.
	Seed int64
	// SourceWorkload and SourceNamespace name the fictional client; they
	// default to "meshsim-client" and "meshsim".
	SourceWorkload  string
	SourceNamespace string
	// Registry receives the metrics; nil gets a private registry, never the
	// global one, so several simulators can live in one test binary.
	Registry *prometheus.Registry
}

// Counts is ground truth about requests.
type Counts struct {
	Sent int64
	// Failed counts 5xx of any kind, UH included.
	Failed int64
	// UH counts requests that found no healthy upstream.
	UH int64
}

// Sim generates the traffic and telemetry of a mesh. Create it with New.
type Sim struct {
	cfg       Config
	watches   map[string]*nsWatch
	kubeInf   []informers.SharedInformerFactory
	dynInf    []dynamicinformer.DynamicSharedInformerFactory
	synced    []cache.InformerSynced
	syncWait  time.Duration
	metrics   *metrics
	handler   http.Handler
	ready     chan struct{}
	running   atomic.Bool
	readyOnce sync.Once

	// Generator state, owned by the one goroutine that steps.
	rng   *rand.Rand
	start time.Time
	last  time.Time
	acc   []float64
	total int64

	mu    sync.Mutex
	truth map[truthKey]Counts
}

type truthKey struct {
	svcNamespace, service string
	wlNamespace, workload string
}

// New validates cfg and prepares the informers; nothing is contacted until
// Run.
func New(cfg Config) (*Sim, error) {
	if cfg.Kube == nil || cfg.Dynamic == nil {
		return nil, errors.New("meshsim: Kube and Dynamic clients are required")
	}
	if len(cfg.Services) == 0 {
		return nil, errors.New("meshsim: at least one Service is required")
	}
	if cfg.MaxDuration <= 0 {
		return nil, errors.New("meshsim: MaxDuration must be > 0")
	}
	if cfg.MaxRequests <= 0 {
		return nil, errors.New("meshsim: MaxRequests must be > 0")
	}
	seen := map[string]bool{}
	for _, svc := range cfg.Services {
		if svc.Namespace == "" || svc.Host == "" {
			return nil, fmt.Errorf("meshsim: service %q/%q needs a namespace and a host", svc.Namespace, svc.Host)
		}
		if !(svc.RPS > 0) || math.IsInf(svc.RPS, 0) {
			return nil, fmt.Errorf("meshsim: service %s/%s: RPS must be a positive number, got %v", svc.Namespace, svc.Host, svc.RPS)
		}
		key := svc.Namespace + "/" + svc.Host
		if seen[key] {
			return nil, fmt.Errorf("meshsim: service %s is listed twice", key)
		}
		seen[key] = true
	}
	if cfg.SourceWorkload == "" {
		cfg.SourceWorkload = defaultSourceWorkload
	}
	if cfg.SourceNamespace == "" {
		cfg.SourceNamespace = defaultSourceNamespace
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}

	s := &Sim{
		cfg:      cfg,
		watches:  map[string]*nsWatch{},
		metrics:  m,
		handler:  promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{}),
		syncWait: syncTimeout,
		ready:    make(chan struct{}),
		rng:      rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6d65736873696d)),
		acc:      make([]float64, len(cfg.Services)),
		truth:    map[truthKey]Counts{},
	}
	// Namespaced informers, one set per namespace, so the simulator needs no
	// cluster-wide permissions and sees only what it routes.
	for _, svc := range cfg.Services {
		if _, ok := s.watches[svc.Namespace]; ok {
			continue
		}
		kf := informers.NewSharedInformerFactoryWithOptions(cfg.Kube, 0, informers.WithNamespace(svc.Namespace))
		df := dynamicinformer.NewFilteredDynamicSharedInformerFactory(cfg.Dynamic, 0, svc.Namespace, nil)
		pods := kf.Core().V1().Pods()
		svcs := kf.Core().V1().Services()
		vs := df.ForResource(virtualServiceGVR())
		dr := df.ForResource(destinationRuleGVR())
		s.synced = append(s.synced,
			pods.Informer().HasSynced, svcs.Informer().HasSynced,
			vs.Informer().HasSynced, dr.Informer().HasSynced)
		s.watches[svc.Namespace] = &nsWatch{
			namespace:        svc.Namespace,
			pods:             pods.Lister(),
			services:         svcs.Lister(),
			virtualServices:  vs.Lister(),
			destinationRules: dr.Lister(),
		}
		s.kubeInf = append(s.kubeInf, kf)
		s.dynInf = append(s.dynInf, df)
	}
	return s, nil
}

// Run starts the informers, waits for their caches and generates load until
// ctx is done or a bound is hit. Reaching a bound or ctx ending is a normal
// stop and returns nil; Run can be called once.
func (s *Sim) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("meshsim: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	stop, err := s.startInformers(ctx)
	defer func() {
		// The informers only end with ctx, and stop waits for them.
		cancel()
		stop()
	}()
	if err != nil {
		return err
	}

	ticker := time.NewTicker(stepInterval)
	defer ticker.Stop()
	s.begin(time.Now())
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-ticker.C:
			if s.step(now) {
				return nil
			}
		}
	}
}

// startInformers starts the caches and waits for them; stop waits for the
// informer goroutines after ctx ends, so Run leaves nothing behind.
func (s *Sim) startInformers(ctx context.Context) (stop func(), err error) {
	for _, f := range s.kubeInf {
		f.Start(ctx.Done())
	}
	for _, f := range s.dynInf {
		f.Start(ctx.Done())
	}
	stop = func() {
		for _, f := range s.kubeInf {
			f.Shutdown()
		}
		for _, f := range s.dynInf {
			f.Shutdown()
		}
	}
	waitCtx, cancel := context.WithTimeout(ctx, s.syncWait)
	defer cancel()
	if !cache.WaitForCacheSync(waitCtx.Done(), s.synced...) {
		if ctx.Err() != nil {
			return stop, fmt.Errorf("meshsim: informers did not sync: %w", ctx.Err())
		}
		return stop, fmt.Errorf("meshsim: informers did not sync within %s (are the Istio CRDs installed and the namespaces readable?)", s.syncWait)
	}
	return stop, nil
}

// Ready is closed once the caches have synced and generation has started.
// It stays open when Run fails first, so wait on Run's result as well.
func (s *Sim) Ready() <-chan struct{} { return s.ready }

// Handler serves the metrics in Prometheus' exposition format; mount it at
// /metrics.
func (s *Sim) Handler() http.Handler { return s.handler }

// Truth is what the simulator sent to one destination workload, over all
// services. Workload "unknown" holds the requests that reached no pod, under
// the namespace of the service they were sent to.
func (s *Sim) Truth(namespace, workload string) Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	var c Counts
	for k, v := range s.truth {
		if k.wlNamespace == namespace && k.workload == workload {
			c = c.add(v)
		}
	}
	return c
}

// TruthByService is what the simulator sent to one of the configured
// services, over all destination workloads.
func (s *Sim) TruthByService(namespace, host string) Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	var c Counts
	for k, v := range s.truth {
		if k.svcNamespace == namespace && k.service == host {
			c = c.add(v)
		}
	}
	return c
}

func (c Counts) add(o Counts) Counts {
	return Counts{Sent: c.Sent + o.Sent, Failed: c.Failed + o.Failed, UH: c.UH + o.UH}
}

// begin marks the start of generation; it is separate from Run so tests can
// drive step with their own clock.
func (s *Sim) begin(now time.Time) {
	s.start = now
	s.last = now
	s.readyOnce.Do(func() { close(s.ready) })
}

// step emits the requests that fell due between the previous step and now,
// and reports whether a bound has been reached.
func (s *Sim) step(now time.Time) (done bool) {
	end := s.start.Add(s.cfg.MaxDuration)
	if !now.Before(end) {
		now = end
		done = true
	}
	dt := now.Sub(s.last)
	if dt > maxCatchUp {
		dt = maxCatchUp
	}
	if dt < 0 {
		dt = 0
	}
	s.last = now
	for i, svc := range s.cfg.Services {
		remaining := s.cfg.MaxRequests - s.total
		if remaining <= 0 {
			return true
		}
		s.acc[i] += svc.RPS * dt.Seconds()
		// The epsilon keeps 200 steps of 0.005 from summing to 0.99999.
		n := int64(s.acc[i] + 1e-9)
		if n <= 0 {
			continue
		}
		s.acc[i] -= float64(n)
		if n > remaining {
			n = remaining
		}
		s.emit(svc, n)
		s.total += n
	}
	return done || s.total >= s.cfg.MaxRequests
}

// emit sends n requests to svc over one snapshot of the routing state, so
// the informer caches are read once per step, not once per request.
func (s *Sim) emit(svc Service, n int64) {
	p := s.planFor(svc)
	for range n {
		s.record(svc, p.serve(s.rng))
	}
}

func (s *Sim) record(svc Service, o outcome) {
	s.metrics.observe(s.cfg, o)
	workload, wlNamespace := unknown, svc.Namespace
	if o.pod != nil {
		workload, wlNamespace = o.pod.workload, o.pod.namespace
	}
	failed := o.code >= 500
	uh := o.flags == flagNoHealthyUpstream
	s.metrics.truth(svc, workload, failed)

	s.mu.Lock()
	k := truthKey{svcNamespace: svc.Namespace, service: svc.Host, wlNamespace: wlNamespace, workload: workload}
	c := s.truth[k]
	c.Sent++
	if failed {
		c.Failed++
	}
	if uh {
		c.UH++
	}
	s.truth[k] = c
	s.mu.Unlock()
}
