package meshsim

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestGeneratorBounds(t *testing.T) {
	cases := []struct {
		name        string
		rps         float64
		maxDuration time.Duration
		maxRequests int64
		step        time.Duration
		steps       int
		// wantDoneAt is the step (1-based) that reports done; 0 for none.
		wantDoneAt int
		wantSent   int64
	}{
		{
			name: "MaxRequests stops the generator at exactly that many requests",
			rps:  1000, maxDuration: time.Hour, maxRequests: 250,
			step: 10 * time.Millisecond, steps: 100,
			wantDoneAt: 25, wantSent: 250,
		},
		{
			name: "MaxRequests cuts a step's batch short rather than overshooting",
			rps:  1000, maxDuration: time.Hour, maxRequests: 15,
			step: 10 * time.Millisecond, steps: 10,
			wantDoneAt: 2, wantSent: 15,
		},
		{
			name: "MaxDuration stops the generator at the deadline",
			rps:  100, maxDuration: time.Second, maxRequests: 1 << 40,
			step: 10 * time.Millisecond, steps: 150,
			wantDoneAt: 100, wantSent: 100,
		},
		{
			name: "a step past MaxDuration only generates up to the deadline",
			rps:  100, maxDuration: 250 * time.Millisecond, maxRequests: 1 << 40,
			step: 200 * time.Millisecond, steps: 5,
			wantDoneAt: 2, wantSent: 25,
		},
		{
			name: "half a request per second accumulates to one request every two seconds",
			rps:  0.5, maxDuration: time.Hour, maxRequests: 1 << 40,
			step: 10 * time.Millisecond, steps: 1000,
			wantSent: 5,
		},
		{
			name: "a stalled generator catches up at most one second of requests",
			rps:  10, maxDuration: time.Hour, maxRequests: 1 << 40,
			step: 5 * time.Second, steps: 1,
			wantSent: 10,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{
				MaxDuration: tc.maxDuration, MaxRequests: tc.maxRequests,
				Services: []Service{{Namespace: testNS, Host: "payment-service", RPS: tc.rps}},
			}, stableAndCanary(1), nil)
			doneAt := 0
			for i := 1; i <= tc.steps; i++ {
				if e.advance(tc.step) {
					doneAt = i
					break
				}
			}
			if doneAt != tc.wantDoneAt {
				t.Errorf("done at step %d, want %d", doneAt, tc.wantDoneAt)
			}
			if got := e.sim.TruthByService(testNS, "payment-service").Sent; got != tc.wantSent {
				t.Errorf("sent %d, want %d", got, tc.wantSent)
			}
		})
	}
}

func TestGeneratorRates(t *testing.T) {
	cases := []struct {
		name     string
		services []Service
	}{
		{
			name: "each service gets its own rate from the one loop",
			services: []Service{
				{Namespace: testNS, Host: "payment-service", RPS: 50},
				{Namespace: testNS, Host: "orders-service", RPS: 7.5},
				{Namespace: "other", Host: "payment-service", RPS: 0.25},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{Services: tc.services}, stableAndCanary(1), nil)
			for range 4000 { // 40 s of 10 ms steps
				e.advance(10 * time.Millisecond)
			}
			for _, svc := range tc.services {
				want := int64(math.Floor(svc.RPS * 40))
				if got := e.sim.TruthByService(svc.Namespace, svc.Host).Sent; got != want {
					t.Errorf("%s/%s sent %d, want %d", svc.Namespace, svc.Host, got, want)
				}
			}
		})
	}
}

func TestRun(t *testing.T) {
	cases := []struct {
		name        string
		maxDuration time.Duration
		maxRequests int64
		cancelAfter bool
	}{
		{"Run returns by itself once MaxDuration has passed", 300 * time.Millisecond, 1 << 40, false},
		{"Run returns by itself once MaxRequests have been sent", time.Hour, 20, false},
		{"Run returns when its context is cancelled", time.Hour, 1 << 40, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Config{
				Kube:        kubefake.NewClientset(stableAndCanary(1)...),
				Dynamic:     dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds()),
				Services:    []Service{{Namespace: testNS, Host: "payment-service", RPS: 200}},
				MaxDuration: tc.maxDuration,
				MaxRequests: tc.maxRequests,
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			result := make(chan error, 1)
			go func() { result <- s.Run(ctx) }()

			select {
			case <-s.Ready():
			case err := <-result:
				t.Fatalf("Run returned before Ready: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatal("never Ready")
			}
			if tc.cancelAfter {
				cancel()
			}
			select {
			case err := <-result:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not stop")
			}
			sent := s.TruthByService(testNS, "payment-service").Sent
			if sent > tc.maxRequests {
				t.Errorf("sent %d, above MaxRequests %d", sent, tc.maxRequests)
			}
			if !tc.cancelAfter && sent == 0 {
				t.Error("nothing was sent")
			}
			if err := s.Run(t.Context()); err == nil {
				t.Error("a second Run was accepted")
			}
		})
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	valid := func() Config {
		return Config{
			Kube:        kubefake.NewClientset(),
			Dynamic:     dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds()),
			Services:    []Service{{Namespace: testNS, Host: "payment-service", RPS: 1}},
			MaxDuration: time.Minute,
			MaxRequests: 10,
		}
	}
	cases := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"a complete config is accepted", func(*Config) {}, ""},
		{"a config without MaxDuration is refused", func(c *Config) { c.MaxDuration = 0 }, "MaxDuration"},
		{"a config without MaxRequests is refused", func(c *Config) { c.MaxRequests = 0 }, "MaxRequests"},
		{"a config without services is refused", func(c *Config) { c.Services = nil }, "Service"},
		{"a config without clients is refused", func(c *Config) { c.Dynamic = nil }, "clients"},
		{"a service with a zero rate is refused", func(c *Config) { c.Services[0].RPS = 0 }, "RPS"},
		{"a service with an infinite rate is refused", func(c *Config) { c.Services[0].RPS = math.Inf(1) }, "RPS"},
		{"a service without a namespace is refused", func(c *Config) { c.Services[0].Namespace = "" }, "namespace"},
		{"a service listed twice is refused", func(c *Config) { c.Services = append(c.Services, c.Services[0]) }, "twice"},
		{"a registry that already holds the metrics is refused", func(c *Config) {
			c.Registry = prometheus.NewRegistry()
			other := valid()
			other.Registry = c.Registry
			if _, err := New(other); err != nil {
				t.Fatal(err)
			}
		}, "registering metrics"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid()
			tc.mutate(&cfg)
			_, err := New(cfg)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("New: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("New error %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
}

func TestRunGivesUpWhenCachesNeverSync(t *testing.T) {
	cases := []struct {
		name     string
		resource string
	}{
		{"Run fails instead of waiting forever when VirtualServices cannot be listed", "virtualservices"},
		{"Run fails instead of waiting forever when DestinationRules cannot be listed", "destinationrules"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds())
			dyn.PrependReactor("list", tc.resource, func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, errors.New("the server could not find the requested resource")
			})
			s, err := New(Config{
				Kube: kubefake.NewClientset(), Dynamic: dyn,
				Services:    []Service{{Namespace: testNS, Host: "payment-service", RPS: 1}},
				MaxDuration: time.Hour, MaxRequests: 10,
			})
			if err != nil {
				t.Fatal(err)
			}
			s.syncWait = 300 * time.Millisecond
			err = s.Run(t.Context())
			if err == nil || !strings.Contains(err.Error(), "did not sync") {
				t.Errorf("Run error %v, want one saying the caches did not sync", err)
			}
			select {
			case <-s.Ready():
				t.Error("Ready was closed though generation never started")
			default:
			}
		})
	}
}
