package meshsim

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
)

func TestMetricLabelSets(t *testing.T) {
	istio := []string{
		"destination_canonical_revision", "destination_canonical_service", "destination_service",
		"destination_service_name", "destination_version", "destination_workload",
		"destination_workload_namespace", "reporter", "request_protocol", "response_code",
		"response_flags", "source_workload", "source_workload_namespace",
	}
	truth := []string{"namespace", "service", "workload"}
	served := []runtime.Object{splitRoute(100, 0), stableCanaryRule()}
	unhealthy := []runtime.Object{splitRoute(0, 100), stableCanaryRule()}
	cases := []struct {
		name  string
		kube  []runtime.Object
		istio []runtime.Object
		// lines are series the exposition must hold, exactly as written.
		lines []string
		// absent are label pairs no Istio series may hold.
		absent     []string
		labelNames map[string][]string
	}{
		{
			name:  "a served request is counted by both proxies with Istio's metric and label names",
			kube:  stableAndCanary(1),
			istio: served,
			lines: []string{
				`istio_requests_total{destination_canonical_revision="v1",destination_canonical_service="payment",destination_service="payment-service.shop.svc.cluster.local",destination_service_name="payment-service",destination_version="v1",destination_workload="payment-stable",destination_workload_namespace="shop",reporter="destination",request_protocol="http",response_code="200",response_flags="-",source_workload="checkout",source_workload_namespace="shop-clients"} 100`,
				`istio_requests_total{destination_canonical_revision="v1",destination_canonical_service="payment",destination_service="payment-service.shop.svc.cluster.local",destination_service_name="payment-service",destination_version="v1",destination_workload="payment-stable",destination_workload_namespace="shop",reporter="source",request_protocol="http",response_code="200",response_flags="-",source_workload="checkout",source_workload_namespace="shop-clients"} 100`,
				`istio_request_duration_milliseconds_count{destination_canonical_revision="v1",destination_canonical_service="payment",destination_service="payment-service.shop.svc.cluster.local",destination_service_name="payment-service",destination_version="v1",destination_workload="payment-stable",destination_workload_namespace="shop",reporter="destination",request_protocol="http",response_code="200",response_flags="-",source_workload="checkout",source_workload_namespace="shop-clients"} 100`,
				`meshsim_requests_sent_total{namespace="shop",service="payment-service",workload="payment-stable"} 100`,
				`meshsim_requests_failed_total{namespace="shop",service="payment-service",workload="payment-stable"} 0`,
			},
			absent: []string{`destination_workload="payment-canary"`},
			labelNames: map[string][]string{
				"istio_requests_total":                       istio,
				"istio_request_duration_milliseconds_count":  istio,
				"istio_request_duration_milliseconds_sum":    istio,
				"istio_request_duration_milliseconds_bucket": append(slices.Clone(istio), "le"),
				"meshsim_requests_sent_total":                truth,
				"meshsim_requests_failed_total":              truth,
			},
		},
		{
			name:  "a request that finds no healthy upstream is counted by the source proxy only, with unknown destination labels",
			kube:  stableAndCanary(1, notReady()),
			istio: unhealthy,
			lines: []string{
				`istio_requests_total{destination_canonical_revision="unknown",destination_canonical_service="unknown",destination_service="payment-service.shop.svc.cluster.local",destination_service_name="payment-service",destination_version="unknown",destination_workload="unknown",destination_workload_namespace="unknown",reporter="source",request_protocol="http",response_code="503",response_flags="UH",source_workload="checkout",source_workload_namespace="shop-clients"} 100`,
				`meshsim_requests_sent_total{namespace="shop",service="payment-service",workload="unknown"} 100`,
				`meshsim_requests_failed_total{namespace="shop",service="payment-service",workload="unknown"} 100`,
			},
			absent: []string{`reporter="destination"`},
			labelNames: map[string][]string{
				"istio_requests_total":        istio,
				"meshsim_requests_sent_total": truth,
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{
				Seed: 1, SourceWorkload: "checkout", SourceNamespace: "shop-clients",
				Services: []Service{{Namespace: testNS, Host: "payment-service", RPS: 100}},
			}, tc.kube, tc.istio)
			e.advance(time.Second)
			text := e.scrape(t)
			lines := strings.Split(text, "\n")

			for _, want := range tc.lines {
				if !slices.Contains(lines, want) {
					t.Errorf("exposition lacks\n%s\n--- exposition:\n%s", want, text)
				}
			}
			for _, pair := range tc.absent {
				for _, l := range lines {
					if strings.HasPrefix(l, "istio_") && strings.Contains(l, pair) {
						t.Errorf("exposition holds a series it must not: %s", l)
					}
				}
			}
			for metric, want := range tc.labelNames {
				found := false
				for _, l := range lines {
					if !strings.HasPrefix(l, metric+"{") {
						continue
					}
					found = true
					got := labelNames(l)
					w := slices.Sorted(slices.Values(want))
					if !slices.Equal(got, w) {
						t.Errorf("%s has labels %v, want exactly %v", metric, got, w)
						break
					}
				}
				if !found {
					t.Errorf("exposition has no %s series", metric)
				}
			}
		})
	}
}

func TestDurationBuckets(t *testing.T) {
	cases := []struct {
		name string
		want []float64
	}{
		{"the duration histogram has Istio's default buckets", istioBuckets()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{Services: []Service{{Namespace: testNS, Host: "payment-service", RPS: 10}}},
				stableAndCanary(1), nil)
			e.advance(time.Second)
			var got []float64
			for _, l := range strings.Split(e.scrape(t), "\n") {
				if !strings.HasPrefix(l, "istio_request_duration_milliseconds_bucket{") || !strings.Contains(l, `destination_workload="payment-stable"`) || !strings.Contains(l, `reporter="source"`) {
					continue
				}
				_, rest, _ := strings.Cut(l, `le="`)
				le, _, _ := strings.Cut(rest, `"`)
				if le == "+Inf" {
					continue
				}
				f, err := strconv.ParseFloat(le, 64)
				if err != nil {
					t.Fatalf("bucket %q: %v", le, err)
				}
				got = append(got, f)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("buckets %v, want %v", got, tc.want)
			}
		})
	}
}
