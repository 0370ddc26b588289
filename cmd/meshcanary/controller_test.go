package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rs/zerolog"

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
