package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestWebhookBodyMatchesTheDocumentedSchema(t *testing.T) {
	inFlight := rollback()
	inFlight.Kind, inFlight.Checks, inFlight.Images, inFlight.Page, inFlight.DecidedBy = KindStarted, nil, nil, false, ""

	tests := []struct {
		name string
		msg  Message
		want map[string]any
	}{
		{
			name: "a rollback carries every field with its checks",
			msg:  rollback(),
			want: map[string]any{
				"version": "v1", "kind": "rolledBack", "namespace": "payments", "deployment": "payment-service",
				"revision": "7d9f8c6b5", "stage": "2/4", "reason": "RolledBack", "decidedBy": "analysis",
				"page": true, "resolve": false, "dedupKey": "meshcanary/payments/payment-service/7d9f8c6b5",
				"at":      "2026-01-02T15:04:05Z",
				"weights": map[string]any{"canary": 10.0, "stable": 90.0},
				"images":  []any{"registry.example.com/payment:v2", "registry.example.com/sidecar:1.4"},
				"checks": []any{
					map[string]any{"metric": "error-rate", "canary": 0.021, "stable": 0.003, "bound": "max", "threshold": "1%", "verdict": "Fail"},
					map[string]any{"metric": "latency-p99", "canary": 0.312, "stable": 0.25, "bound": "maxIncrease", "threshold": "100ms", "verdict": "Pass"},
				},
			},
		},
		{
			name: "a start without analysis has empty lists, not nulls",
			msg:  inFlight,
			want: map[string]any{"kind": "started", "images": []any{}, "checks": []any{}, "decidedBy": "", "page": false},
		},
	}
	documented := documentedWebhookKeys(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, nil)
			ch := NewWebhook("audit", srv.URL+"/hook?token=s3cr3t", map[string]string{"Authorization": "Bearer abc123"}, srv.Client())
			if err := ch.Send(context.Background(), tt.msg); err != nil {
				t.Fatalf("Send: %v", err)
			}
			req := srv.next(t)
			if req.Header.Get("Authorization") != "Bearer abc123" || req.Header.Get("Content-Type") != "application/json" {
				t.Errorf("headers = %v", req.Header)
			}
			var got map[string]any
			if err := json.Unmarshal(req.Body, &got); err != nil {
				t.Fatal(err)
			}
			if keys := sortedMapKeys(got); !slices.Equal(keys, documented) {
				t.Errorf("body keys %v, documented %v", keys, documented)
			}
			for k, want := range tt.want {
				if g, _ := json.Marshal(got[k]); !bytes.Equal(g, mustJSON(t, want)) {
					t.Errorf("%s = %s, want %s", k, g, mustJSON(t, want))
				}
			}
			// Decoding strictly into the exported type shows it is the schema.
			dec := json.NewDecoder(bytes.NewReader(req.Body))
			dec.DisallowUnknownFields()
			var body WebhookBody
			if err := dec.Decode(&body); err != nil {
				t.Errorf("body does not decode strictly into WebhookBody: %v", err)
			}
		})
	}
}

// documentedWebhookKeys reads the top-level keys of the example body in
// doc.go, so the documentation cannot drift from the code.
func documentedWebhookKeys(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	in := false
	comment := regexp.MustCompile(`\s+//.*$`)
	for _, line := range strings.Split(string(src), "\n") {
		l := strings.TrimPrefix(line, "//\t")
		switch {
		case l == "{":
			in = true
		case in && l == "}":
			lines = append(lines, l)
			in = false
		}
		if in {
			lines = append(lines, comment.ReplaceAllString(l, ""))
		}
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(strings.Join(lines, "\n")), &doc); err != nil {
		t.Fatalf("the example body in doc.go is not JSON: %v\n%s", err, strings.Join(lines, "\n"))
	}
	return sortedMapKeys(doc)
}

func sortedMapKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWebhookDoesNotFollowRedirectsWithItsHeaders(t *testing.T) {
	elsewhere := newRecorder(t, nil)
	redirecting := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/steal", http.StatusTemporaryRedirect)
	})
	err := NewWebhook("audit", redirecting.URL+"/hook", map[string]string{"X-Token": "t0k3n"}, nil).Send(context.Background(), rollback())
	var se *SendError
	if !errors.As(err, &se) || se.Reason() != Reason3xx || se.Retryable() {
		t.Fatalf("error = %v, want a permanent 3xx", err)
	}
	if n := elsewhere.count(); n != 0 {
		t.Errorf("the redirect was followed %d times", n)
	}
}

func TestWebhookErrorsSayWhetherToRetry(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryAfter string
		wantReason string
		wantRetry  bool
		wantAfter  time.Duration
	}{
		{name: "any 2xx is success", status: http.StatusNoContent},
		{name: "a 401 is not retried", status: 401, wantReason: Reason4xx},
		{name: "a 408 is retried", status: 408, wantReason: Reason4xx, wantRetry: true},
		{name: "a 429 is retried after the time asked", status: 429, retryAfter: "3", wantReason: Reason4xx, wantRetry: true, wantAfter: 3 * time.Second},
		{name: "a 503 is retried", status: 503, wantReason: Reason5xx, wantRetry: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRecorder(t, func(w http.ResponseWriter, _ *http.Request) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.status)
			})
			err := NewWebhook("audit", srv.URL, nil, nil).Send(context.Background(), rollback())
			if tt.wantReason == "" {
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				return
			}
			var se *SendError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a *SendError", err)
			}
			if se.Reason() != tt.wantReason || se.Retryable() != tt.wantRetry || se.RetryAfter != tt.wantAfter {
				t.Errorf("reason %s retry %v after %s, want %s %v %s", se.Reason(), se.Retryable(), se.RetryAfter, tt.wantReason, tt.wantRetry, tt.wantAfter)
			}
		})
	}
}
