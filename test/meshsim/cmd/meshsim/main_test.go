package main

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshcanary/meshcanary/test/meshsim"
)

func TestParseFlags(t *testing.T) {
	base := []string{"--kubeconfig", "kc.yaml", "--service", "shop/payment-service=20"}
	cases := []struct {
		name         string
		args         []string
		wantErr      string
		wantServices []meshsim.Service
		wantListen   string
		wantDuration time.Duration
		wantRequests int64
	}{
		{
			name:         "the defaults listen on an ephemeral loopback port and stop after 30 minutes",
			args:         base,
			wantServices: []meshsim.Service{{Namespace: "shop", Host: "payment-service", RPS: 20}},
			wantListen:   "127.0.0.1:0", wantDuration: 30 * time.Minute, wantRequests: defaultMaxRequests,
		},
		{
			name: "repeated --service flags add services, fractional rates included",
			args: append(slices.Clone(base), "--service", "shop/orders=0.5", "--max-duration", "2m", "--max-requests", "500"),
			wantServices: []meshsim.Service{
				{Namespace: "shop", Host: "payment-service", RPS: 20},
				{Namespace: "shop", Host: "orders", RPS: 0.5},
			},
			wantListen: "127.0.0.1:0", wantDuration: 2 * time.Minute, wantRequests: 500,
		},
		{
			name:         "an IPv6 loopback address is accepted",
			args:         append(slices.Clone(base), "--listen", "[::1]:9464"),
			wantServices: []meshsim.Service{{Namespace: "shop", Host: "payment-service", RPS: 20}},
			wantListen:   "[::1]:9464", wantDuration: 30 * time.Minute, wantRequests: defaultMaxRequests,
		},
		{
			name:         "another address in 127.0.0.0/8 is accepted",
			args:         append(slices.Clone(base), "--listen", "127.0.0.2:0"),
			wantServices: []meshsim.Service{{Namespace: "shop", Host: "payment-service", RPS: 20}},
			wantListen:   "127.0.0.2:0", wantDuration: 30 * time.Minute, wantRequests: defaultMaxRequests,
		},
		{"listening on every interface is refused", append(slices.Clone(base), "--listen", ":9464"), "loopback", nil, "", 0, 0},
		{"listening on a private address is refused", append(slices.Clone(base), "--listen", "10.1.2.3:9464"), "loopback", nil, "", 0, 0},
		{"listening on all IPv4 addresses is refused", append(slices.Clone(base), "--listen", "0.0.0.0:9464"), "loopback", nil, "", 0, 0},
		{"a listen address that is a host name other than localhost is refused", append(slices.Clone(base), "--listen", "example.com:80"), "loopback", nil, "", 0, 0},
		{"a missing kubeconfig is refused", []string{"--service", "shop/payment-service=20"}, "--kubeconfig", nil, "", 0, 0},
		{"a missing service is refused", []string{"--kubeconfig", "kc.yaml"}, "--service", nil, "", 0, 0},
		{"a service without a namespace is refused", []string{"--kubeconfig", "kc", "--service", "payment-service=20"}, "ns/host=rps", nil, "", 0, 0},
		{"a service without a rate is refused", []string{"--kubeconfig", "kc", "--service", "shop/payment-service"}, "ns/host=rps", nil, "", 0, 0},
		{"a service with a zero rate is refused", []string{"--kubeconfig", "kc", "--service", "shop/payment-service=0"}, "rps must be", nil, "", 0, 0},
		{"a zero max duration is refused", append(slices.Clone(base), "--max-duration", "0s"), "--max-duration", nil, "", 0, 0},
		{"a negative max requests is refused", append(slices.Clone(base), "--max-requests", "-1"), "--max-requests", nil, "", 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(o.services, tc.wantServices) || o.listen != tc.wantListen ||
				o.maxDuration != tc.wantDuration || o.maxRequests != tc.wantRequests {
				t.Errorf("options %+v, want services %v listen %s duration %s requests %d",
					o, tc.wantServices, tc.wantListen, tc.wantDuration, tc.wantRequests)
			}
		})
	}
}

func TestRunRefusesBeforeContactingAnything(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{
			name:    "a non-loopback listen address is refused before the kubeconfig is read",
			args:    []string{"--kubeconfig", "/nonexistent/kubeconfig", "--service", "shop/payment-service=1", "--listen", "192.168.1.1:0"},
			wantErr: "loopback",
		},
		{
			name:    "an unreadable kubeconfig is an error, not a fallback to in-cluster config",
			args:    []string{"--kubeconfig", "/nonexistent/kubeconfig", "--service", "shop/payment-service=1"},
			wantErr: "kubeconfig",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout strings.Builder
			err := run(t.Context(), tc.args, &stdout, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("run error %v, want one mentioning %q", err, tc.wantErr)
			}
			if stdout.Len() != 0 {
				t.Errorf("printed %q though it never served", stdout.String())
			}
		})
	}
}
