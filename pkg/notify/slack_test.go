package notify

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

// slackTexts collects every text a person sees in a webhook message.
func slackTexts(t *testing.T, msg slack.WebhookMessage) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(msg.Text + "\n")
	if msg.Blocks == nil {
		return b.String()
	}
	for _, block := range msg.Blocks.BlockSet {
		switch bl := block.(type) {
		case *slack.HeaderBlock:
			b.WriteString(bl.Text.Text + "\n")
		case *slack.SectionBlock:
			if bl.Text != nil {
				b.WriteString(bl.Text.Text + "\n")
			}
			for _, f := range bl.Fields {
				b.WriteString(f.Text + "\n")
			}
		case *slack.ContextBlock:
			for _, e := range bl.ContextElements.Elements {
				if tb, ok := e.(*slack.TextBlockObject); ok {
					b.WriteString(tb.Text + "\n")
				}
			}
		default:
			t.Errorf("unexpected block %T", block)
		}
	}
	return b.String()
}

func TestSlackMessageCarriesWhatOnCallNeeds(t *testing.T) {
	stageAdvance := rollback()
	stageAdvance.Kind, stageAdvance.Checks, stageAdvance.Page, stageAdvance.DecidedBy = KindStageAdvanced, nil, false, ""
	noData := rollback()
	noData.Checks = []Check{{Metric: "error-rate", Canary: nil, Stable: ptr(0), Bound: "max", Threshold: "1%", Verdict: "Inconclusive"}}

	tests := []struct {
		name    string
		msg     Message
		grafana string
		want    []string
		notWant []string
	}{
		{
			name:    "an automatic rollback shows the service, revision, images, stage, weights and each check against its threshold",
			msg:     rollback(),
			grafana: "https://grafana.example.com/d/meshcanary/rollouts?orgId=1",
			want: []string{
				"payment-service", "payments", "7d9f8c6b5",
				"registry.example.com/payment:v2", "registry.example.com/sidecar:1.4",
				"2/4", "canary 10% / stable 90%", "rolled back automatically", "analysis",
				"error-rate", "canary *2.1%* vs stable 0.3%", "(max 1%)", "Fail",
				"latency-p99", "canary *312ms* vs stable 250ms", "(maxIncrease 100ms)", "Pass",
				"error-rate 2.1% &gt; max 1% for 2 intervals",
				"Open in Grafana",
			},
		},
		{
			name:    "without a Grafana base URL there is no link",
			msg:     rollback(),
			notWant: []string{"Grafana"},
		},
		{
			name:    "a stage advance states the new weights",
			msg:     stageAdvance,
			want:    []string{"advanced to stage 2/4 (10% canary)", "canary 10% / stable 90%"},
			notWant: []string{"Canary vs stable"},
		},
		{
			name: "a check without data says so rather than printing zero",
			msg:  noData,
			want: []string{"canary *no data* vs stable 0%", "Inconclusive"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, nil)
			ch := NewSlack("slack", srv.URL+"/services/T000/B000/XXXX", tt.grafana, srv.Client())
			if err := ch.Send(context.Background(), tt.msg); err != nil {
				t.Fatalf("Send: %v", err)
			}
			req := srv.next(t)
			if ct := req.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(req.Body, &raw); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if _, ok := raw["blocks"]; !ok {
				t.Errorf("body has no blocks: %s", req.Body)
			}
			if _, ok := raw["text"]; !ok {
				t.Errorf("body has no fallback text: %s", req.Body)
			}
			var msg slack.WebhookMessage
			if err := json.Unmarshal(req.Body, &msg); err != nil {
				t.Fatalf("body does not decode as slack.WebhookMessage: %v", err)
			}
			text := slackTexts(t, msg)
			for _, w := range tt.want {
				if !strings.Contains(text, w) {
					t.Errorf("message lacks %q:\n%s", w, text)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(text, w) {
					t.Errorf("message has %q:\n%s", w, text)
				}
			}
			if tt.grafana != "" {
				link := GrafanaURL(tt.grafana, tt.msg)
				if !strings.Contains(text, "<"+slackEscape(link)+"|Open in Grafana>") {
					t.Errorf("message lacks the Grafana link %s:\n%s", link, text)
				}
			}
		})
	}
}

func TestGrafanaURLPointsAtTheRolloutAndItsTime(t *testing.T) {
	m := rollback()
	got := GrafanaURL("https://grafana.example.com/d/abc/rollouts?orgId=1", m)
	u, err := url.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	want := map[string]string{
		"orgId":          "1",
		"var-namespace":  "payments",
		"var-deployment": "payment-service",
		"from":           "1767362645000",
		"to":             "1767367145000",
	}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q (url %s)", k, q.Get(k), v, got)
		}
	}
	if u.Path != "/d/abc/rollouts" {
		t.Errorf("path = %q", u.Path)
	}
	if GrafanaURL("", m) != "" || GrafanaURL("not a url", m) != "" {
		t.Error("an empty or relative base URL must give no link")
	}
}

func TestSlackErrorsSayWhetherToRetry(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		wantReason string
		wantRetry  bool
		wantAfter  time.Duration
	}{
		{name: "a server error is retried", status: 500, wantReason: Reason5xx, wantRetry: true},
		{name: "a revoked webhook is not retried", status: 404, wantReason: Reason4xx},
		{name: "a bad payload is not retried", status: 400, wantReason: Reason4xx},
		{name: "rate limiting is retried after the time Slack asks for", status: 429, header: map[string]string{"Retry-After": "7"}, wantReason: Reason4xx, wantRetry: true, wantAfter: 7 * time.Second},
		{name: "rate limiting without a time is retried", status: 429, wantReason: Reason4xx, wantRetry: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
			})
			err := NewSlack("team", srv.URL+"/services/T/B/secret", "", srv.Client()).Send(context.Background(), rollback())
			var se *SendError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a *SendError", err)
			}
			if se.Reason() != tt.wantReason || se.Retryable() != tt.wantRetry || se.RetryAfter != tt.wantAfter || se.StatusCode != tt.status {
				t.Errorf("got reason %s retry %v after %s status %d, want %s %v %s %d",
					se.Reason(), se.Retryable(), se.RetryAfter, se.StatusCode, tt.wantReason, tt.wantRetry, tt.wantAfter, tt.status)
			}
			if !strings.HasPrefix(se.Error(), "team: ") {
				t.Errorf("error %q does not name the channel", se.Error())
			}
		})
	}
}

func TestSlackEscapesNamesSoTheyCannotMentionOrLink(t *testing.T) {
	m := rollback()
	m.Text = "<!channel> see <https://evil.example|here> & more"
	msg := slackMessage(m, "")
	b, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	var back slack.WebhookMessage
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	text := slackTexts(t, back)
	if strings.Contains(text, "<!channel>") || !strings.Contains(text, "&lt;!channel&gt;") || !strings.Contains(text, "&amp; more") {
		t.Errorf("mrkdwn not escaped:\n%s", text)
	}
}
