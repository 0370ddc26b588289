package notify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/meshcanary/meshcanary/pkg/policy"
)

// syncBuffer is a log sink the workers and the test share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestSecretsNeverAppearInLogsOrErrors(t *testing.T) {
	const (
		slackToken  = "SLACKT0KENxyz123"
		routingKey  = "R0UT1NGK3Yabcdef0123456789"
		hookToken   = "H00KT0KENquery42"
		bearerToken = "Bearer B34R3Rs3cr3t"
		password    = "pa55w0rdInUserinfo"
	)
	secrets := []string{slackToken, routingKey, hookToken, bearerToken, password}

	// The server echoes everything it got, headers and body, in its error
	// answers: nothing of an answer may reach a log line or an error.
	echo500 := func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = fmt.Fprintf(w, `{"error":{"message":"%s %s %v"}}`, r.URL.String(), body, r.Header)
	}
	hang := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

	tests := []struct {
		name       string
		handler    http.HandlerFunc // nil: connection refused
		wantReason string
	}{
		{name: "the connection is refused", wantReason: ReasonNetwork},
		{name: "the endpoint answers 500 and echoes the request", handler: echo500, wantReason: Reason5xx},
		{name: "the endpoint hangs past the timeout", handler: hang, wantReason: ReasonTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := "http://" + closedAddr(t)
			if tt.handler != nil {
				base = newRecorder(t, tt.handler).URL
			}
			withUser := strings.Replace(base, "http://", "http://user:"+password+"@", 1)
			channels := []Channel{
				NewSlack("slack", base+"/services/T000/B000/"+slackToken, "https://grafana.example.com/d/x", nil),
				NewPagerDuty("pagerduty", routingKey, base, nil),
				NewWebhook("webhook", withUser+"/hook?token="+hookToken, map[string]string{"Authorization": bearerToken}, nil),
			}

			// Each channel on its own: the error text and every way of
			// printing it.
			for _, ch := range channels {
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				err := ch.Send(ctx, rollback())
				cancel()
				if err == nil {
					t.Fatalf("%s: no error", ch.Name())
				}
				for _, out := range []string{err.Error(), fmt.Sprintf("%v %+v %#v", err, err, err)} {
					for _, s := range secrets {
						if strings.Contains(out, s) {
							t.Errorf("%s: error %q holds a secret", ch.Name(), out)
						}
					}
				}
				if !strings.HasPrefix(err.Error(), ch.Name()+": ") {
					t.Errorf("error %q does not name its channel", err)
				}
			}

			// Through the Dispatcher, logging everything down to debug.
			var logs syncBuffer
			reg := prometheus.NewPedanticRegistry()
			d, err := NewDispatcher(channels, Options{
				MaxAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
				Timeout: 200 * time.Millisecond, Metrics: reg,
				Log: zerolog.New(&logs).Level(zerolog.DebugLevel),
			})
			if err != nil {
				t.Fatal(err)
			}
			start(t, d)
			d.Notify([]policy.NotifyRoute{{On: []string{"all"}, To: "slack"}, {On: []string{"all"}, To: "pagerduty"}, {On: []string{"all"}, To: "webhook"}}, rollback())
			for _, ch := range channels {
				eventually(t, ch.Name()+" to fail", func() bool {
					return metricValue(t, reg, "meshcanary_notifications_failed_total", map[string]string{"channel": ch.Name(), "reason": tt.wantReason}) == 1
				})
			}
			out := logs.String()
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("logs hold secret %q:\n%s", s, out)
				}
			}
			for _, want := range []string{`"channel":"slack"`, `"channel":"pagerduty"`, `"channel":"webhook"`, `"deployment":"payment-service"`, `"failure":"` + tt.wantReason + `"`} {
				if !strings.Contains(out, want) {
					t.Errorf("logs lack %s:\n%s", want, out)
				}
			}
		})
	}
}

func TestErrorsOfOtherChannelsHaveTheirURLCutOut(t *testing.T) {
	const token = "0THERCHANNELt0ken"
	addr := closedAddr(t)
	ch := &fakeChannel{name: "custom", fail: func(int) error {
		_, err := http.Get("http://" + addr + "/x/" + token)
		return fmt.Errorf("custom channel: %w", err)
	}}
	var logs syncBuffer
	d, err := NewDispatcher([]Channel{ch}, Options{MaxAttempts: 1, Log: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	start(t, d)
	d.Notify([]policy.NotifyRoute{{On: []string{"all"}, To: "custom"}}, rollback())
	eventually(t, "the failure to be logged", func() bool { return strings.Contains(logs.String(), "notification failed") })
	if out := logs.String(); strings.Contains(out, token) || !strings.Contains(out, "custom channel: Get") {
		t.Errorf("logs:\n%s", out)
	}
}
