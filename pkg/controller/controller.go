package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/gates"
	"github.com/meshcanary/meshcanary/pkg/metrics"
	"github.com/meshcanary/meshcanary/pkg/notify"
	"github.com/meshcanary/meshcanary/pkg/policy"
)

// VirtualServiceGVR names Istio's VirtualService resource. Istio's resources
// are read and written as unstructured objects so that fields this
// controller does not know survive untouched.
func VirtualServiceGVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
}

// DestinationRuleGVR names Istio's DestinationRule resource.
func DestinationRuleGVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "destinationrules"}
}

// Analyzer answers one analysis request; *metrics.Analyzer implements it.
type Analyzer interface {
	Analyze(ctx context.Context, req metrics.Request) (metrics.Result, error)
}

// BatchAnalyzer answers several analyses with shared queries;
// *metrics.Analyzer implements it. An Analyzer without it is asked once
// per analysis.
type BatchAnalyzer interface {
	AnalyzeAll(ctx context.Context, reqs []metrics.Request) []metrics.Answer
}

// Notifier sends rollout events to people; *notify.Dispatcher implements
// it. Notify must never block.
type Notifier interface {
	Notify(routes []policy.NotifyRoute, m notify.Message)
}

// Config holds the controller's dependencies; New takes them all, so tests
// can pass fakes for any of them.
type Config struct {
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	Deploys appsinformers.DeploymentInformer
	VSs     cache.SharedIndexInformer // dynamic informer for VirtualServices
	DRs     cache.SharedIndexInformer // dynamic informer for DestinationRules
	// Releases is the dynamic informer for CanaryReleases, where each
	// rollout's state lives.
	Releases cache.SharedIndexInformer
	Policies *policy.Store
	Analyzer Analyzer
	Recorder record.EventRecorder
	Clock    clock.PassiveClock
	Metrics  *Metrics
	Log      zerolog.Logger
	Workers  int
	// ProgressDeadline bounds how long a canary may take to become
	// available for a stage before the release is rolled back.
	ProgressDeadline time.Duration
	// HistoryLimit is how many finished releases each Deployment keeps in
	// its CanaryRelease's status.history.
	HistoryLimit int
	// Notifier is optional: without it events are only Kubernetes Events.
	Notifier Notifier
	// Gates runs webhook gates; required only by policies that have them.
	Gates GateRunner
	// AnalysisWorkers bounds the analyses run at once off the reconcile
	// path (default 4); AnalysisTimeout bounds each one (default 30s).
	AnalysisWorkers int
	AnalysisTimeout time.Duration
	// Owns tells whether this replica acts on a rollout, by its workqueue
	// key, when the rollouts are sharded among replicas (pkg/shard); nil
	// owns every rollout. Informers still cache everything: a replica that
	// takes a shard over starts from a warm cache.
	Owns func(key string) bool
	// MaxConcurrentReleases caps the releases in flight at once on this
	// replica (--max-concurrent-releases); a release detected beyond it
	// waits, queued, until one ends. 0 is no cap.
	MaxConcurrentReleases int
}

// GateRunner runs webhook gates off the reconcile path; *gates.Runner
// implements it.
type GateRunner interface {
	Ensure(req gates.Request) gates.Result
	Forget(prefix string)
}

// Controller reconciles opted-in Deployments.
type Controller struct {
	cfg     Config
	queue   workqueue.TypedRateLimitingInterface[string]
	deploys cache.MutationCache
	vss     cache.MutationCache
	crs     cache.MutationCache
	// pool answers analyses off the reconcile path; set by Run.
	pool *analysisPool
	// admit counts the release slots (Config.MaxConcurrentReleases).
	admit *admission
}

// Index names used on the informers' indexers.
const (
	indexByCanary = "meshcanary/canary"         // stable Deployments by "ns/canary-name"
	indexByVS     = "meshcanary/virtualservice" // stable Deployments by "ns/vs-name"
)

// New wires the event handlers and indexers; call it before the informers
// start.
func New(cfg Config) (*Controller, error) {
	if cfg.Kube == nil || cfg.Dynamic == nil || cfg.Deploys == nil || cfg.VSs == nil || cfg.DRs == nil || cfg.Releases == nil ||
		cfg.Policies == nil || cfg.Analyzer == nil || cfg.Recorder == nil || cfg.Metrics == nil {
		return nil, errors.New("controller: every dependency in Config is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.HistoryLimit <= 0 {
		cfg.HistoryLimit = 10
	}
	if cfg.ProgressDeadline <= 0 {
		cfg.ProgressDeadline = 10 * time.Minute
	}
	if cfg.AnalysisWorkers <= 0 {
		cfg.AnalysisWorkers = 4
	}
	if cfg.AnalysisTimeout <= 0 {
		cfg.AnalysisTimeout = 30 * time.Second
	}
	c := &Controller{
		cfg: cfg,
		// Retries back off per rollout only. client-go's default limiter
		// also shares one bucket of 10 retries a second among all keys:
		// when many releases cross a stage boundary together, the
		// conflicts their writes meet on not-yet-updated caches queued
		// behind that bucket for tens of seconds. The API is protected by
		// the client's own --kube-api-qps budget instead.
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](5*time.Millisecond, time.Minute),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "meshcanary", MetricsProvider: cfg.Metrics.QueueMetrics()},
		),
	}
	c.admit = newAdmission(cfg.MaxConcurrentReleases, c.Enqueue, cfg.Metrics)
	// The caches keep only what the controller reads (stripUnread).
	if err := leanCaches(cfg); err != nil {
		return nil, err
	}
	di := cfg.Deploys.Informer()
	if err := di.AddIndexers(cache.Indexers{indexByCanary: canaryIndex, indexByVS: vsIndex}); err != nil {
		return nil, fmt.Errorf("adding deployment indexers: %w", err)
	}
	if err := addDestinationRuleIndexers(cfg.DRs); err != nil {
		return nil, err
	}
	logger := klog.Background()
	// Overlaying our own recent writes keeps a reconcile that runs right
	// after a write from deciding on the state from before it.
	c.deploys = cache.NewIntegerResourceVersionMutationCache(logger, di.GetStore(), di.GetIndexer(), time.Minute, false)
	c.vss = cache.NewIntegerResourceVersionMutationCache(logger, cfg.VSs.GetStore(), cfg.VSs.GetIndexer(), time.Minute, false)
	c.crs = cache.NewIntegerResourceVersionMutationCache(logger, cfg.Releases.GetStore(), cfg.Releases.GetIndexer(), time.Minute, false)
	// A CanaryRelease is named after its Deployment: any change to it (a
	// person deleting it, or editing its status) wakes that rollout.
	if _, err := cfg.Releases.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueObject,
		UpdateFunc: func(old, cur any) { c.onUpdate(old, cur, c.enqueueObject) },
		DeleteFunc: c.enqueueObject,
	}); err != nil {
		return nil, fmt.Errorf("adding canaryrelease handler: %w", err)
	}

	if _, err := di.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.onDeployment,
		UpdateFunc: func(old, cur any) { c.onUpdate(old, cur, c.onDeployment) },
		DeleteFunc: c.onDeployment,
	}); err != nil {
		return nil, fmt.Errorf("adding deployment handler: %w", err)
	}
	if _, err := cfg.VSs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.onVirtualService,
		UpdateFunc: func(old, cur any) { c.onUpdate(old, cur, c.onVirtualService) },
		DeleteFunc: c.onVirtualService,
	}); err != nil {
		return nil, fmt.Errorf("adding virtualservice handler: %w", err)
	}
	if _, err := cfg.DRs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.onDestinationRule,
		UpdateFunc: func(old, cur any) { c.onUpdate(old, cur, c.onDestinationRule) },
		DeleteFunc: c.onDestinationRule,
	}); err != nil {
		return nil, fmt.Errorf("adding destinationrule handler: %w", err)
	}
	return c, nil
}

func canaryIndex(obj any) ([]string, error) {
	d, ok := obj.(*appsv1.Deployment)
	if !ok || !annotations.IsEnabled(d.Annotations) {
		return nil, nil
	}
	name := d.Annotations[annotations.Canary]
	if name == "" {
		name = d.Name + annotations.CanarySuffix
	}
	return []string{d.Namespace + "/" + name}, nil
}

func vsIndex(obj any) ([]string, error) {
	d, ok := obj.(*appsv1.Deployment)
	if !ok || !annotations.IsEnabled(d.Annotations) {
		return nil, nil
	}
	name := d.Annotations[annotations.VirtualService]
	if name == "" {
		name = d.Name
	}
	return []string{d.Namespace + "/" + name}, nil
}

// onUpdate skips resyncs that changed nothing, as sample-controller does.
func (c *Controller) onUpdate(old, cur any, next func(any)) {
	type rv interface{ GetResourceVersion() string }
	o, ok1 := old.(rv)
	n, ok2 := cur.(rv)
	if ok1 && ok2 && o.GetResourceVersion() == n.GetResourceVersion() {
		return
	}
	next(cur)
}

func objectMeta(obj any) (namespace, name string, ok bool) {
	if t, isTomb := obj.(cache.DeletedFinalStateUnknown); isTomb {
		obj = t.Obj
	}
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return o.Namespace, o.Name, true
	case *unstructured.Unstructured:
		return o.GetNamespace(), o.GetName(), true
	}
	return "", "", false
}

func (c *Controller) onDeployment(obj any) {
	ns, name, ok := objectMeta(obj)
	if !ok {
		return
	}
	if t, isTomb := obj.(cache.DeletedFinalStateUnknown); isTomb {
		obj = t.Obj
	}
	if d, ok := obj.(*appsv1.Deployment); ok && (optedIn(d.Annotations) || d.Annotations[annotations.State] != "" || c.hasRelease(ns, name)) {
		c.queue.Add(ns + "/" + name)
	}
	c.enqueueIndexed(indexByCanary, ns+"/"+name)
}

func (c *Controller) onVirtualService(obj any) {
	if ns, name, ok := objectMeta(obj); ok {
		c.enqueueIndexed(indexByVS, ns+"/"+name)
	}
}

// onDestinationRule wakes every opted-in Deployment of the namespace: which
// rule serves a Deployment depends on its VirtualService's host, and rules
// change rarely enough that precision is not worth an index.
func (c *Controller) onDestinationRule(obj any) {
	ns, _, ok := objectMeta(obj)
	if !ok {
		return
	}
	objs, err := c.cfg.Deploys.Informer().GetIndexer().ByIndex(cache.NamespaceIndex, ns)
	if err != nil {
		return
	}
	for _, o := range objs {
		if d, ok := o.(*appsv1.Deployment); ok && annotations.IsEnabled(d.Annotations) {
			c.queue.Add(d.Namespace + "/" + d.Name)
		}
	}
}

func (c *Controller) enqueueIndexed(index, value string) {
	objs, err := c.cfg.Deploys.Informer().GetIndexer().ByIndex(index, value)
	if err != nil {
		return
	}
	for _, o := range objs {
		if d, ok := o.(*appsv1.Deployment); ok {
			c.queue.Add(d.Namespace + "/" + d.Name)
		}
	}
}

// Enqueue wakes one rollout by its namespace/name key (a gate finished).
func (c *Controller) Enqueue(key string) { c.queue.Add(key) }

// EnqueueAll wakes every opted-in Deployment, after a policy reload.
func (c *Controller) EnqueueAll() {
	for _, o := range c.cfg.Deploys.Informer().GetStore().List() {
		if d, ok := o.(*appsv1.Deployment); ok && annotations.IsEnabled(d.Annotations) {
			c.queue.Add(d.Namespace + "/" + d.Name)
		}
	}
}

// Run waits for the caches, then runs the workers until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	c.cfg.Log.Info().Msg("waiting for informer caches to sync")
	if !cache.WaitForCacheSync(ctx.Done(), c.cfg.Deploys.Informer().HasSynced, c.cfg.VSs.HasSynced, c.cfg.DRs.HasSynced, c.cfg.Releases.HasSynced) {
		return errors.New("informer caches did not sync")
	}
	// Before any worker decides: releases in flight keep their slots.
	c.admit.rebuild(c.cfg.Releases.GetStore().List(), c.cfg.Owns)
	c.pool = newAnalysisPool(c.runAnalyses, c.Enqueue, c.cfg.AnalysisTimeout, 4096)
	c.pool.start(ctx, c.cfg.AnalysisWorkers)
	c.cfg.Log.Info().Int("workers", c.cfg.Workers).Int("analysisWorkers", c.cfg.AnalysisWorkers).Msg("caches synced; reconciling")
	for i := 0; i < c.cfg.Workers; i++ {
		go wait.UntilWithContext(ctx, c.worker, time.Second)
	}
	<-ctx.Done()
	return nil
}

func (c *Controller) worker(ctx context.Context) {
	for c.next(ctx) {
	}
}

func (c *Controller) next(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	// Another replica's shard: dropped here, in the one place every key
	// passes, however it was queued.
	if c.cfg.Owns != nil && !c.cfg.Owns(key) {
		c.queue.Forget(key)
		return true
	}
	start := time.Now()
	after, err := c.reconcileSafely(ctx, key)
	c.cfg.Metrics.ReconcileDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		c.cfg.Metrics.ReconcileErrors.Inc()
		c.cfg.Log.Error().Err(err).Str("key", key).Msg("reconcile failed; retrying with backoff")
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	if after > 0 {
		c.queue.AddAfter(key, after)
	}
	return true
}

// Queue exposes the workqueue length, for readiness and tests.
func (c *Controller) QueueLen() int { return c.queue.Len() }

// enqueueObject queues the rollout an object is named after.
func (c *Controller) enqueueObject(obj any) {
	if ns, name, ok := objectMeta(obj); ok {
		c.queue.Add(ns + "/" + name)
	}
}

// hasRelease: a Deployment with a CanaryRelease was opted in once; an undo
// can take its meshcanary.io/enabled away mid-release, and that change
// must still be looked at.
func (c *Controller) hasRelease(ns, name string) bool {
	_, exists, err := c.crs.GetByKey(ns + "/" + name)
	return err == nil && exists
}
