package notify

import (
	"context"
	"net/http"
	"strings"
	"sync"

	"github.com/PagerDuty/go-pagerduty"
)

// PagerDuty event actions and severities of the Events API v2.
const (
	pdTrigger  = "trigger"
	pdResolve  = "resolve"
	pdCritical = "critical"
	pdError    = "error"
	// pdSummaryMax is the Events API's limit on payload.summary.
	pdSummaryMax = 1024
	// pdEnqueuePath is what go-pagerduty appends to the endpoint.
	pdEnqueuePath = "/v2/enqueue"
)

// PagerDuty sends Events API v2 events. It only acts on two kinds of
// Message, because a pager is for what needs a person now:
//
//   - Page: trigger, severity critical for a rollback (an automatic
//     rollback), error for anything else (a rule whose action pages);
//   - Resolve (and not Page): resolve.
//
// Both use the rollout's dedup key (Message.DedupKey), so a page and its
// resolution are one incident. Every other Message is skipped: Wants
// reports false, and the Dispatcher never queues it.
type PagerDuty struct {
	name       string
	routingKey string
	endpoint   string
	client     *http.Client
	secrets    []string
}

// NewPagerDuty returns a channel sending events with routingKey (an Events
// API v2 integration key). endpoint is the Events API's base URL, ""
// for PagerDuty's own (https://events.pagerduty.com); a URL ending in
// /v2/enqueue is accepted too. A nil httpClient means a client of the
// package's own.
func NewPagerDuty(name, routingKey, endpoint string, httpClient *http.Client) *PagerDuty {
	endpoint = strings.TrimSuffix(strings.TrimSuffix(endpoint, "/"), pdEnqueuePath)
	secrets := []string{routingKey}
	if endpoint != "" {
		secrets = append(secrets, secretsOf(endpoint)...)
	}
	return &PagerDuty{name: name, routingKey: routingKey, endpoint: endpoint, client: orDefaultClient(httpClient), secrets: secrets}
}

// Name is the channel's name, as routes refer to it.
func (p *PagerDuty) Name() string { return p.name }

// Wants reports whether m is a page or a resolution.
func (p *PagerDuty) Wants(m Message) bool { return m.Page || m.Resolve }

// Send triggers or resolves the rollout's incident; other messages are
// ignored. Errors are *SendError and never print the routing key.
func (p *PagerDuty) Send(ctx context.Context, m Message) error {
	ev, ok := pagerDutyEvent(m, p.routingKey)
	if !ok {
		return nil
	}
	// go-pagerduty flattens transport errors into text and fails on an
	// empty 2xx body; recording the exchange here keeps the status code
	// and the cause for classification and redaction.
	rec := &recordingDoer{client: p.client}
	opts := []pagerduty.ClientOptions{}
	if p.endpoint != "" {
		opts = append(opts, pagerduty.WithV2EventsAPIEndpoint(p.endpoint))
	}
	// The REST API token is unused by the Events API: the routing key in
	// the body authenticates the event.
	client := pagerduty.NewClient("", opts...)
	client.HTTPClient = rec
	_, err := client.ManageEventWithContext(ctx, ev)
	status, transportErr := rec.result()
	switch {
	case status >= 200 && status < 300:
		return nil
	case status != 0:
		return statusError(p.name, status, 0)
	case transportErr != nil:
		return transportError(ctx, p.name, transportErr, p.secrets)
	case err != nil:
		return invalidError(p.name, "building the event", redactErr(err, p.secrets))
	}
	return nil
}

// pagerDutyEvent builds the Events API v2 event for m, or reports that m is
// not for PagerDuty.
func pagerDutyEvent(m Message, routingKey string) (*pagerduty.V2Event, bool) {
	switch {
	case m.Page:
		severity := pdError
		if m.Kind == KindRolledBack {
			severity = pdCritical
		}
		return &pagerduty.V2Event{
			RoutingKey: routingKey,
			Action:     pdTrigger,
			DedupKey:   m.DedupKey(),
			Client:     "meshcanary",
			Payload: &pagerduty.V2Payload{
				Summary:   truncate(m.Summary(), pdSummaryMax),
				Source:    m.Namespace + "/" + m.Deployment,
				Severity:  severity,
				Timestamp: m.At.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
				Component: m.Deployment,
				Group:     m.Namespace,
				Class:     string(m.Kind),
				Details:   webhookBody(m),
			},
		}, true
	case m.Resolve:
		return &pagerduty.V2Event{
			RoutingKey: routingKey,
			Action:     pdResolve,
			DedupKey:   m.DedupKey(),
		}, true
	}
	return nil, false
}

// recordingDoer remembers the status code or transport error of the one
// request a PagerDuty send makes.
type recordingDoer struct {
	client *http.Client

	mu     sync.Mutex
	status int
	err    error
}

func (r *recordingDoer) Do(req *http.Request) (*http.Response, error) {
	resp, err := r.client.Do(req)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
	if resp != nil {
		r.status = resp.StatusCode
	}
	return resp, err
}

func (r *recordingDoer) result() (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status, r.err
}

// redactErr returns an error with err's text, secrets scrubbed.
func redactErr(err error, secrets []string) error {
	return &redactedError{msg: redactText(err.Error(), secrets), cause: contextCause(err)}
}

// Pages marks PagerDuty as a paging channel: resolves reach it whatever
// the event's kind, so the incidents it opened close.
func (p *PagerDuty) Pages() bool { return true }
