package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/spf13/pflag"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/meshcanary/meshcanary/pkg/apis/meshcanary/v1alpha1"
	"github.com/meshcanary/meshcanary/pkg/policy"
)

func TestPoliciesRoutingToUnconfiguredChannelsAreReported(t *testing.T) {
	f, err := policy.Parse([]byte(`
policies:
- name: payments
  notify:
  - {on: [rolledBack], to: pagerduty}
  - {on: all, to: slack}
`))
	if err != nil {
		t.Fatal(err)
	}
	store := policy.NewStore()
	store.Set(f)
	cases := map[string]struct {
		channels []string
		want     string // in the log; "" means nothing logged
	}{
		"every routed channel is configured":    {[]string{"pagerduty", "slack"}, ""},
		"a channel missing from the Secret":     {[]string{"pagerduty"}, "notify[1].to"},
		"no notification Secret names anything": {nil, "notify[0].to"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			warnUnknownChannels(store, c.channels, zerolog.New(&buf))
			got := buf.String()
			if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
				t.Fatalf("log %q, want it to mention %q", got, c.want)
			}
		})
	}
}

func TestControllerFlagsAreValidated(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string // in the error; "" means valid
	}{
		"the defaults":                                             {nil, ""},
		"a rate limit raised for a big fleet":                      {[]string{"--kube-api-qps=1000", "--kube-api-burst=2000"}, ""},
		"no requests per second at all":                            {[]string{"--kube-api-qps=0"}, "--kube-api-qps"},
		"a burst below one request":                                {[]string{"--kube-api-burst=0"}, "--kube-api-burst"},
		"a negative rate, which client-go would read as unlimited": {[]string{"--kube-api-qps=-1"}, "--kube-api-qps"},
		"a cap on releases in flight":                              {[]string{"--max-concurrent-releases=50"}, ""},
		"a negative cap on releases in flight":                     {[]string{"--max-concurrent-releases=-1"}, "--max-concurrent-releases"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			o := &controllerOptions{}
			fs := pflag.NewFlagSet("controller", pflag.ContinueOnError)
			o.BindFlags(fs)
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			err := o.validate()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want one naming %s", err, c.want)
			}
		})
	}
}

func TestEachClientHasABudgetOfItsOwn(t *testing.T) {
	base := &rest.Config{Host: "https://kube.example:6443", UserAgent: "meshcanary-controller"}
	o := &controllerOptions{KubeAPIQPS: 300, KubeAPIBurst: 600}
	traffic, events, election := clientConfigs(base, o)

	if traffic.RateLimiter == nil || traffic.RateLimiter.QPS() != 300 || traffic.Burst != 600 {
		t.Errorf("traffic: limiter %v, burst %d; want one limiter of 300/s, burst 600 for the typed and dynamic clients", traffic.RateLimiter, traffic.Burst)
	}
	// A limiter carried over from base would put Events back on the
	// traffic budget.
	if events.RateLimiter != nil || events.QPS != 150 || events.Burst != 300 {
		t.Errorf("events: limiter %v, %g/s, burst %d; want a limiter of their own at 150/s, burst 300", events.RateLimiter, events.QPS, events.Burst)
	}
	if election.RateLimiter != nil || election.QPS != 0 || election.Burst != 0 {
		t.Errorf("leader election: limiter %v, %g/s, burst %d; want client-go's default limiter of its own", election.RateLimiter, election.QPS, election.Burst)
	}
	if base.RateLimiter != nil || base.QPS != 0 || base.Burst != 0 {
		t.Errorf("the base configuration was changed: %+v", base)
	}
	for name, c := range map[string]*rest.Config{"traffic": traffic, "events": events, "election": election} {
		if c.Host != base.Host || !strings.HasPrefix(c.UserAgent, base.UserAgent) {
			t.Errorf("%s: host %q, user agent %q: not a copy of the base configuration", name, c.Host, c.UserAgent)
		}
	}

	if _, ev, _ := clientConfigs(base, &controllerOptions{KubeAPIQPS: 1, KubeAPIBurst: 1}); ev.QPS < 1 || ev.Burst < 1 {
		t.Errorf("the smallest budget leaves Events %g/s, burst %d; want at least 1", ev.QPS, ev.Burst)
	}
}

func TestProfilesAreServedOnlyOnTheirOwnMux(t *testing.T) {
	srv := httptest.NewServer(pprofHandler())
	defer srv.Close()
	cases := map[string]struct {
		path       string
		wantStatus int
		wantBody   string
	}{
		"the index lists the profiles":    {"/debug/pprof/", http.StatusOK, "goroutine"},
		"a named profile is served":       {"/debug/pprof/heap?debug=1", http.StatusOK, "heap profile"},
		"the command line is served":      {"/debug/pprof/cmdline", http.StatusOK, ""},
		"the metrics are not served here": {"/metrics", http.StatusNotFound, ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			resp, err := http.Get(srv.URL + c.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != c.wantStatus || !strings.Contains(string(body), c.wantBody) {
				t.Errorf("GET %s: %d %.200q; want %d with %q", c.path, resp.StatusCode, body, c.wantStatus, c.wantBody)
			}
		})
	}
	t.Run("profiles are off unless an address is given", func(t *testing.T) {
		cmd := newControllerCommand()
		if f := cmd.Flags().Lookup("pprof-bind-address"); f == nil || f.DefValue != "" {
			t.Errorf("--pprof-bind-address default %v, want empty", f)
		}
	})
}

func TestStartUpSaysHowToInstallAMissingCanaryReleaseCRD(t *testing.T) {
	gvr := v1alpha1.GVR()
	tests := map[string]struct {
		listErr error
		wantErr string
	}{
		"a served CRD starts":                    {},
		"a missing CRD names the fix":            {listErr: apierrors.NewNotFound(gvr.GroupResource(), ""), wantErr: "kubectl apply -f charts/meshcanary/crds/"},
		"other errors are left to the informers": {listErr: apierrors.NewForbidden(gvr.GroupResource(), "", errors.New("rbac"))},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{gvr: "CanaryReleaseList"})
			dyn.PrependReactor("list", "canaryreleases", func(k8stesting.Action) (bool, runtime.Object, error) {
				return tc.listErr != nil, nil, tc.listErr
			})
			err := checkReleaseCRD(context.Background(), dyn, "")
			if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
