package notify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// pdAccept answers like the Events API v2.
func pdAccept(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"status":"success","message":"Event processed","dedup_key":"x"}`)
}

type pdEvent struct {
	RoutingKey string `json:"routing_key"`
	Action     string `json:"event_action"`
	DedupKey   string `json:"dedup_key"`
	Payload    *struct {
		Summary   string         `json:"summary"`
		Source    string         `json:"source"`
		Severity  string         `json:"severity"`
		Timestamp string         `json:"timestamp"`
		Details   map[string]any `json:"custom_details"`
	} `json:"payload"`
}

func TestPagerDutyTriggersAndResolvesOneIncidentPerRollout(t *testing.T) {
	const key = "R0UT1NGK3Y0123456789abcdefABCDEF"
	rulePage := rollback()
	rulePage.Kind, rulePage.DecidedBy, rulePage.Text = KindAlert, "", "rule p99-regression fired"
	promoted := rollback()
	promoted.Kind, promoted.Page, promoted.Resolve, promoted.DecidedBy = KindPromoted, false, true, ""
	manual := rollback()
	manual.Page, manual.Resolve, manual.DecidedBy = false, true, "annotation"

	tests := []struct {
		name         string
		msg          Message
		wantAction   string
		wantSeverity string
	}{
		{name: "an automatic rollback triggers a critical incident", msg: rollback(), wantAction: "trigger", wantSeverity: "critical"},
		{name: "a rule that pages triggers an error incident", msg: rulePage, wantAction: "trigger", wantSeverity: "error"},
		{name: "a promotion resolves the incident", msg: promoted, wantAction: "resolve"},
		{name: "a manual rollback resolves the incident", msg: manual, wantAction: "resolve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, pdAccept)
			ch := NewPagerDuty("pagerduty", key, srv.URL, srv.Client())
			if !ch.Wants(tt.msg) {
				t.Fatal("channel does not want the message")
			}
			if err := ch.Send(context.Background(), tt.msg); err != nil {
				t.Fatalf("Send: %v", err)
			}
			req := srv.next(t)
			if req.Path != "/v2/enqueue" {
				t.Errorf("path = %q, want /v2/enqueue", req.Path)
			}
			var ev pdEvent
			if err := json.Unmarshal(req.Body, &ev); err != nil {
				t.Fatalf("body: %v", err)
			}
			if ev.RoutingKey != key || ev.Action != tt.wantAction {
				t.Errorf("routing_key %q event_action %q, want %q %q", ev.RoutingKey, ev.Action, key, tt.wantAction)
			}
			if want := "meshcanary/payments/payment-service/7d9f8c6b5"; ev.DedupKey != want {
				t.Errorf("dedup_key = %q, want %q", ev.DedupKey, want)
			}
			if tt.wantAction == "resolve" {
				if ev.Payload != nil {
					t.Errorf("a resolve carries no payload, got %+v", ev.Payload)
				}
				return
			}
			if ev.Payload == nil {
				t.Fatal("trigger without payload")
			}
			p := ev.Payload
			if p.Severity != tt.wantSeverity || p.Source != "payments/payment-service" || p.Timestamp != "2026-01-02T15:04:05.000Z" {
				t.Errorf("payload severity %q source %q timestamp %q", p.Severity, p.Source, p.Timestamp)
			}
			if !strings.Contains(p.Summary, "payment-service (payments)") || !strings.Contains(p.Summary, tt.msg.Text) {
				t.Errorf("summary %q lacks the service or the reason", p.Summary)
			}
			if p.Details["revision"] != "7d9f8c6b5" || p.Details["version"] != WebhookVersion {
				t.Errorf("custom_details = %v", p.Details)
			}
		})
	}
}

func TestPagerDutyUsesTheSameDedupKeyToTriggerAndResolve(t *testing.T) {
	srv := newRecorder(t, pdAccept)
	// A full enqueue URL is accepted as well as the base.
	ch := NewPagerDuty("pd", "key-0123456789", srv.URL+"/v2/enqueue", srv.Client())
	trigger := rollback()
	resolve := rollback()
	resolve.Page, resolve.Resolve = false, true
	for _, m := range []Message{trigger, resolve} {
		if err := ch.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	var first, second pdEvent
	_ = json.Unmarshal(srv.next(t).Body, &first)
	_ = json.Unmarshal(srv.next(t).Body, &second)
	if first.Action != "trigger" || second.Action != "resolve" || first.DedupKey == "" || first.DedupKey != second.DedupKey {
		t.Errorf("trigger %q/%q then resolve %q/%q", first.Action, first.DedupKey, second.Action, second.DedupKey)
	}
}

func TestPagerDutySkipsWhatIsNotAPageOrAResolution(t *testing.T) {
	srv := newRecorder(t, pdAccept)
	ch := NewPagerDuty("pd", "key-0123456789", srv.URL, srv.Client())
	m := rollback()
	m.Kind, m.Page = KindStageAdvanced, false
	if ch.Wants(m) {
		t.Error("a stage advance is wanted")
	}
	if err := ch.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if srv.count() != 0 {
		t.Errorf("%d requests sent for a stage advance", srv.count())
	}
}

func TestPagerDutyErrorsSayWhetherToRetry(t *testing.T) {
	tests := []struct {
		name       string
		handler    http.HandlerFunc
		wantErr    bool
		wantReason string
		wantRetry  bool
	}{
		{name: "an accepted event with an empty body is delivered", handler: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) }},
		{name: "an invalid event is not retried", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"status":"invalid event","message":"Event object is invalid","errors":["Length of 'routing_key' is incorrect"]}`)
		}, wantErr: true, wantReason: Reason4xx},
		{name: "rate limiting is retried", handler: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTooManyRequests) }, wantErr: true, wantReason: Reason4xx, wantRetry: true},
		{name: "a server error is retried", handler: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }, wantErr: true, wantReason: Reason5xx, wantRetry: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, tt.handler)
			err := NewPagerDuty("pd", "key-0123456789", srv.URL, srv.Client()).Send(context.Background(), rollback())
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				return
			}
			var se *SendError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a *SendError", err)
			}
			if se.Reason() != tt.wantReason || se.Retryable() != tt.wantRetry {
				t.Errorf("reason %s retry %v, want %s %v", se.Reason(), se.Retryable(), tt.wantReason, tt.wantRetry)
			}
		})
	}
}

func TestDedupKeyStaysWithinPagerDutysLimit(t *testing.T) {
	long := strings.Repeat("d", 253)
	a := DedupKey("payments", long, "rev1")
	b := DedupKey("payments", long, "rev2")
	if len(a) > 255 || len(b) > 255 {
		t.Errorf("lengths %d %d exceed 255", len(a), len(b))
	}
	if a == b {
		t.Error("different revisions share a dedup key")
	}
	if a != DedupKey("payments", long, "rev1") {
		t.Error("dedup key is not stable")
	}
}
