package harness

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/test/meshsim"
)

// NewApps creates count apps named prefix-0 … prefix-(count−1), each
// namespace holding up to perNamespace of them, all at once (a bounded
// number of creations in flight), and waits until every stable Deployment
// is available: NewApp for a scale test, where making a thousand apps one
// after the other would take longer than the test.
func (s *Suite) NewApps(t testing.TB, prefix string, count, perNamespace int, stableReplicas int32) []*App {
	t.Helper()
	k, d := s.clients(t)
	apps := make([]*App, count)
	var namespaces []string
	for i := range apps {
		if i%perNamespace == 0 {
			namespaces = append(namespaces, s.env.NewNamespace(t))
		}
		apps[i] = &App{s: s, t: t, ns: namespaces[len(namespaces)-1], name: fmt.Sprintf("%s-%d", prefix, i), kube: k, dyn: d, stable: stableReplicas}
	}
	errs := make([]error, count)
	var wg sync.WaitGroup
	next := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range next {
				errs[i] = apps[i].create(context.Background(), AppOptions{})
			}
		})
	}
	for i := range apps {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("creating %s: %v", apps[i].name, err)
		}
	}
	s.waitAvailable(t, namespaces, count, stableReplicas)
	return apps
}

// waitAvailable waits until count stable Deployments in namespaces have
// their replicas available.
func (s *Suite) waitAvailable(t testing.TB, namespaces []string, count int, replicas int32) {
	t.Helper()
	k, _ := s.clients(t)
	WaitFor(t, fmt.Sprintf("%d stable Deployments available", count), 10*time.Minute, func() (bool, string) {
		ready := 0
		for _, ns := range namespaces {
			list, err := k.AppsV1().Deployments(ns).List(context.Background(), metav1.ListOptions{})
			if err != nil {
				return false, err.Error()
			}
			for _, d := range list.Items {
				if d.Spec.Replicas != nil && *d.Spec.Replicas == replicas && d.Status.AvailableReplicas == replicas && d.Annotations[annotations.Enabled] == "true" {
					ready++
				}
			}
		}
		return ready >= count, fmt.Sprintf("%d of %d", ready, count)
	})
}

// MeshApps is Mesh for many apps: one simulated data plane sending rps to
// each app's service, bounded by maxDuration, scraped by Prometheus until
// t ends.
func (s *Suite) MeshApps(t testing.TB, apps []*App, rps float64, seed int64, maxDuration time.Duration) *meshsim.Sim {
	t.Helper()
	services := make([]meshsim.Service, len(apps))
	for i, a := range apps {
		services[i] = meshsim.Service{Namespace: a.ns, Host: a.name, RPS: rps}
	}
	k, d := s.clients(t)
	sim, err := meshsim.New(meshsim.Config{
		Kube: k, Dynamic: d, Services: services,
		MaxDuration: maxDuration, MaxRequests: int64(rps*float64(len(apps))*maxDuration.Seconds()) + 1,
		Seed: seed, Registry: prometheus.NewRegistry(),
	})
	Must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sim.Run(ctx) }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Must(t, err)
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	s.AddScrapeTarget(t, "mesh-"+apps[0].ns, ln.Addr().String())
	t.Cleanup(func() { cancel(); <-done; _ = srv.Close() })
	select {
	case <-sim.Ready():
	case <-time.After(2 * time.Minute):
		t.Fatal("simulated mesh not ready within 2m")
	}
	return sim
}
