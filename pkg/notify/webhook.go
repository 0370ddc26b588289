package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"
)

// WebhookVersion is the version field of the generic webhook body. Fields
// are only ever added within a version; a change in meaning or a removal
// bumps it.
const WebhookVersion = "v1"

// WebhookBody is the JSON the generic webhook posts; doc.go documents it
// field by field. PagerDuty's custom_details carry it too.
type WebhookBody struct {
	Version    string         `json:"version"`
	Kind       Kind           `json:"kind"`
	Namespace  string         `json:"namespace"`
	Deployment string         `json:"deployment"`
	Revision   string         `json:"revision"`
	Images     []string       `json:"images"`
	Stage      string         `json:"stage"`
	Weights    WebhookWeights `json:"weights"`
	Reason     string         `json:"reason"`
	Text       string         `json:"text"`
	Checks     []WebhookCheck `json:"checks"`
	DecidedBy  string         `json:"decidedBy"`
	Page       bool           `json:"page"`
	Resolve    bool           `json:"resolve"`
	DedupKey   string         `json:"dedupKey"`
	At         time.Time      `json:"at"`
	Summary    string         `json:"summary"`
}

// WebhookWeights are the traffic shares in percent; they add up to 100.
type WebhookWeights struct {
	Canary int `json:"canary"`
	Stable int `json:"stable"`
}

// WebhookCheck is one analysis check. Values are in the metric's base unit
// (fractions, seconds, requests per second), null when there was no data.
type WebhookCheck struct {
	Metric    string   `json:"metric"`
	Canary    *float64 `json:"canary"`
	Stable    *float64 `json:"stable"`
	Bound     string   `json:"bound"`
	Threshold string   `json:"threshold"`
	Verdict   string   `json:"verdict"`
}

// webhookBody is m in the documented schema. Lists are never null, so
// receivers need not tell null from empty.
func webhookBody(m Message) WebhookBody {
	images := m.Images
	if images == nil {
		images = []string{}
	}
	checks := make([]WebhookCheck, 0, len(m.Checks))
	for _, c := range m.Checks {
		checks = append(checks, WebhookCheck(c))
	}
	return WebhookBody{
		Version:    WebhookVersion,
		Kind:       m.Kind,
		Namespace:  m.Namespace,
		Deployment: m.Deployment,
		Revision:   m.Revision,
		Images:     images,
		Stage:      m.Stage,
		Weights:    WebhookWeights{Canary: m.CanaryWeight, Stable: m.StableWeight()},
		Reason:     m.Reason,
		Text:       m.Text,
		Checks:     checks,
		DecidedBy:  m.DecidedBy,
		Page:       m.Page,
		Resolve:    m.Resolve,
		DedupKey:   m.DedupKey(),
		At:         m.At.UTC(),
		Summary:    m.Summary(),
	}
}

// Webhook posts every Message as JSON (WebhookBody) to a URL.
type Webhook struct {
	name    string
	url     string
	headers map[string]string
	client  *http.Client
	secrets []string
}

// NewWebhook returns a channel posting to url with the extra headers
// (for example Authorization). Header values are treated as secrets, as
// the URL is. A nil httpClient means a client of the package's own.
func NewWebhook(name, url string, headers map[string]string, httpClient *http.Client) *Webhook {
	secrets := secretsOf(url)
	h := make(map[string]string, len(headers))
	for k, v := range headers {
		h[k] = v
		secrets = append(secrets, v)
	}
	return &Webhook{name: name, url: url, headers: h, client: orDefaultClient(httpClient), secrets: secrets}
}

// Name is the channel's name, as routes refer to it.
func (w *Webhook) Name() string { return w.name }

// Send posts one message; any 2xx is success. Errors are *SendError and
// never print the URL or header values.
func (w *Webhook) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(webhookBody(m))
	if err != nil {
		return invalidError(w.name, "encoding the body", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		// url.Parse errors quote the URL: say only that it is unusable.
		return &SendError{Channel: w.name, Permanent: true, msg: w.name + ": the configured URL cannot be used"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "meshcanary")
	for k, v := range w.headers {
		req.Header.Set(k, v)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return transportError(ctx, w.name, err, w.secrets)
	}
	// Drained so the connection is reused; bounded so a chatty receiver
	// cannot hold the worker.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	return statusError(w.name, resp.StatusCode, retryAfter(resp.Header.Get("Retry-After")))
}

// retryAfter reads a Retry-After in seconds; the HTTP-date form is rare
// for webhooks and falls back to the Dispatcher's backoff.
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}
