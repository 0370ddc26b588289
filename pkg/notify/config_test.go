package notify

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParseSecretReadsChannels(t *testing.T) {
	data := map[string][]byte{
		"slack.webhookURL":           []byte("https://hooks.slack.com/services/T0/B0/XXXX\n"),
		"pagerduty.routingKey":       []byte("R0UT1NGK3Y"),
		"pagerduty.endpoint":         []byte("https://events.eu.pagerduty.com"),
		"webhook.url":                []byte("https://audit.example.com/hook"),
		"payments-oncall.type":       []byte("pagerduty"),
		"payments-oncall.routingKey": []byte("K2"),
		"audit.type":                 []byte("webhook"),
		"audit.url":                  []byte("https://audit.example.com/x"),
		"audit.header.Authorization": []byte("Bearer abc"),
		"grafana.baseURL":            []byte("https://grafana.example.com/d/x"),
	}
	cfg, err := ParseSecret(data)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		GrafanaBaseURL: "https://grafana.example.com/d/x",
		Channels: []ChannelConfig{
			{Name: "audit", Type: TypeWebhook, URL: "https://audit.example.com/x", Headers: map[string]string{"Authorization": "Bearer abc"}},
			{Name: "pagerduty", Type: TypePagerDuty, RoutingKey: "R0UT1NGK3Y", Endpoint: "https://events.eu.pagerduty.com"},
			{Name: "payments-oncall", Type: TypePagerDuty, RoutingKey: "K2"},
			{Name: "slack", Type: TypeSlack, URL: "https://hooks.slack.com/services/T0/B0/XXXX"},
			{Name: "webhook", Type: TypeWebhook, URL: "https://audit.example.com/hook"},
		},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("ParseSecret =\n%#v\nwant\n%#v", cfg.Channels, want.Channels)
		for i := range cfg.Channels {
			t.Logf("%d: %q %q %q %q %q %v", i, cfg.Channels[i].Name, cfg.Channels[i].Type, cfg.Channels[i].URL, cfg.Channels[i].RoutingKey, cfg.Channels[i].Endpoint, cfg.Channels[i].Headers)
		}
	}
	channels, err := LoadFromSecret(data)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range channels {
		got = append(got, fmt.Sprintf("%s:%T", c.Name(), c))
	}
	if want := "audit:*notify.Webhook pagerduty:*notify.PagerDuty payments-oncall:*notify.PagerDuty slack:*notify.Slack webhook:*notify.Webhook"; strings.Join(got, " ") != want {
		t.Errorf("channels = %v", got)
	}
}

func TestParseSecretNamesTheKeyAtFaultButNeverItsValue(t *testing.T) {
	const secret = "hunter2-s3cr3t"
	tests := []struct {
		name    string
		data    map[string]string
		wantKey string
	}{
		{name: "an unknown key", data: map[string]string{"slack.webhookURL": "https://h/" + secret, "slack.token": secret}, wantKey: `"slack.token"`},
		{name: "a key without a setting", data: map[string]string{"slack": secret}, wantKey: `"slack"`},
		{name: "a setting of another type", data: map[string]string{"slack.webhookURL": "https://h/" + secret, "slack.routingKey": secret}, wantKey: `"slack.routingKey"`},
		{name: "a URL that is not one", data: map[string]string{"slack.webhookURL": "hooks.slack.com/" + secret}, wantKey: `"slack.webhookURL"`},
		{name: "a URL with a bad escape", data: map[string]string{"webhook.url": "https://h/%zz" + secret}, wantKey: `"webhook.url"`},
		{name: "an empty value", data: map[string]string{"pagerduty.routingKey": " \n"}, wantKey: `"pagerduty.routingKey"`},
		{name: "a missing required key", data: map[string]string{"pagerduty.endpoint": "https://events.pagerduty.com"}, wantKey: `"pagerduty.routingKey"`},
		{name: "a channel of no type", data: map[string]string{"team.url": "https://h/" + secret}, wantKey: `"team.type"`},
		{name: "an unknown type", data: map[string]string{"team.type": "teams", "team.url": "https://h/" + secret}, wantKey: `"team.type"`},
		{name: "a routing key with a space", data: map[string]string{"pagerduty.routingKey": secret + " x"}, wantKey: `"pagerduty.routingKey"`},
		{name: "a header that splits the request", data: map[string]string{"webhook.url": "https://h/x", "webhook.header.X-Token": secret + "\r\nX-Evil: 1"}, wantKey: `"webhook.header.X-Token"`},
		{name: "a header meshcanary sets", data: map[string]string{"webhook.url": "https://h/x", "webhook.header.Content-Type": secret}, wantKey: `"webhook.header.Content-Type"`},
		{name: "a bad header name", data: map[string]string{"webhook.url": "https://h/x", "webhook.header.X Token": secret}, wantKey: `"webhook.header.X Token"`},
		{name: "a channel name that is not a name", data: map[string]string{"Team_A.type": "slack"}, wantKey: `"Team_A.type"`},
		{name: "a grafana key other than baseURL", data: map[string]string{"grafana.url": secret}, wantKey: `"grafana.url"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := map[string][]byte{}
			for k, v := range tt.data {
				data[k] = []byte(v)
			}
			_, err := ParseSecret(data)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.wantKey) {
				t.Errorf("error %q does not name %s", err, tt.wantKey)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q prints the secret", err)
			}
			if _, err := LoadFromSecret(data); err == nil {
				t.Error("LoadFromSecret accepted it")
			}
		})
	}
}

func TestConfigNeverPrintsItsSecrets(t *testing.T) {
	cfg := Config{Channels: []ChannelConfig{
		{Name: "slack", Type: TypeSlack, URL: "https://hooks.slack.com/services/T0/B0/S3CR3T"},
		{Name: "pd", Type: TypePagerDuty, RoutingKey: "R0UT1NGK3Y"},
		{Name: "wh", Type: TypeWebhook, URL: "https://x/y", Headers: map[string]string{"Authorization": "Bearer T0K3N"}},
	}}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprint(cfg.Channels[0]), string(b)} {
		for _, s := range []string{"S3CR3T", "R0UT1NGK3Y", "T0K3N"} {
			if strings.Contains(out, s) {
				t.Errorf("%q printed in %s", s, out)
			}
		}
		if !strings.Contains(out, "slack") {
			t.Errorf("the channel's name is missing from %s", out)
		}
	}
}
