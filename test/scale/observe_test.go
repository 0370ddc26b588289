package scale

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/meshcanary/meshcanary/pkg/controller"
	"github.com/meshcanary/meshcanary/pkg/virtualservice"
)

// weightChange is a canary weight the route was seen carrying, and when.
type weightChange struct {
	weight int
	at     time.Time
}

// observer watches every VirtualService and Deployment of the cluster, as
// the benchmark's own witness of what the controller did and when.
type observer struct {
	mu      sync.Mutex
	weights map[string][]weightChange // by namespace/name
	// stableWrites counts changes of a stable Deployment's annotations
	// or spec (the controller's summary, commands and promotion), not of
	// its status.
	stableWrites int
	counting     bool
}

func observe(tb testing.TB) *observer {
	tb.Helper()
	o := &observer{weights: map[string][]weightChange{}}
	kube, dyn := suite.Clients(tb)
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	dynFactory := dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)
	vs := dynFactory.ForResource(controller.VirtualServiceGVR()).Informer()
	_, _ = vs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    o.route,
		UpdateFunc: func(_, obj any) { o.route(obj) },
	})
	factory := informers.NewSharedInformerFactory(kube, 0)
	deploys := factory.Apps().V1().Deployments().Informer()
	_, _ = deploys.AddEventHandler(cache.ResourceEventHandlerFuncs{UpdateFunc: o.deployment})
	dynFactory.Start(ctx.Done())
	factory.Start(ctx.Done())
	dynFactory.WaitForCacheSync(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	return o
}

func (o *observer) route(obj any) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	m, err := virtualservice.Find(u.Object, virtualservice.Target{Route: "primary", StableSubset: "stable", CanarySubset: "canary", Namespace: u.GetNamespace()})
	if err != nil {
		return
	}
	key := u.GetNamespace() + "/" + u.GetName()
	o.mu.Lock()
	defer o.mu.Unlock()
	seen := o.weights[key]
	if n := len(seen); n == 0 || seen[n-1].weight != m.CanaryWeight {
		o.weights[key] = append(seen, weightChange{weight: m.CanaryWeight, at: time.Now()})
	}
}

func (o *observer) deployment(oldObj, newObj any) {
	before, ok1 := oldObj.(*appsv1.Deployment)
	after, ok2 := newObj.(*appsv1.Deployment)
	if !ok1 || !ok2 || strings.HasSuffix(after.Name, "-canary") {
		return
	}
	if maps.Equal(before.Annotations, after.Annotations) && before.Generation == after.Generation {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.counting {
		o.stableWrites++
	}
}

// count starts or stops counting stable Deployment writes.
func (o *observer) count(on bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.counting = on
}

// stageLags is, for every stage that ended in the next stage, how long
// after its duration the next stage's weight was seen: the stage began
// when its weight was seen, ended duration later, and anything beyond is
// lag. weights lists the stages' weights in order.
func (o *observer) stageLags(weights []int, duration time.Duration) []time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	next := map[int]int{}
	for i := 0; i+1 < len(weights); i++ {
		next[weights[i]] = weights[i+1]
	}
	var lags []time.Duration
	for _, seen := range o.weights {
		for i := 0; i+1 < len(seen); i++ {
			if want, ok := next[seen[i].weight]; ok && seen[i+1].weight == want {
				lags = append(lags, max(seen[i+1].at.Sub(seen[i].at)-duration, 0))
			}
		}
	}
	slices.Sort(lags)
	return lags
}

func (o *observer) writes() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stableWrites
}
