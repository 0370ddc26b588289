package notify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"
)

// Slack posts to a Slack incoming webhook. It sends every kind of Message.
type Slack struct {
	name    string
	url     string
	grafana string
	client  *http.Client
	secrets []string
}

// NewSlack returns a channel posting to the incoming webhook webhookURL.
// When grafanaBaseURL is set, messages link to it with the namespace,
// deployment and time range as query parameters (see GrafanaURL). A nil
// httpClient means a client of the package's own, never
// http.DefaultClient, which other code may change.
func NewSlack(name, webhookURL, grafanaBaseURL string, httpClient *http.Client) *Slack {
	return &Slack{
		name:    name,
		url:     webhookURL,
		grafana: grafanaBaseURL,
		client:  orDefaultClient(httpClient),
		secrets: secretsOf(webhookURL),
	}
}

// Name is the channel's name, as routes refer to it.
func (s *Slack) Name() string { return s.name }

// Send posts one message. Errors are *SendError and never print the
// webhook URL.
func (s *Slack) Send(ctx context.Context, m Message) error {
	// PostWebhookCustomHTTPContext is PostWebhookContext with our client:
	// the latter always uses http.DefaultClient.
	err := slack.PostWebhookCustomHTTPContext(ctx, s.url, s.client, slackMessage(m, s.grafana))
	if err == nil {
		return nil
	}
	var limited *slack.RateLimitedError
	if errors.As(err, &limited) {
		return statusError(s.name, http.StatusTooManyRequests, limited.RetryAfter)
	}
	var code slack.StatusCodeError
	if errors.As(err, &code) {
		return statusError(s.name, code.Code, 0)
	}
	var numErr *strconv.NumError
	if errors.As(err, &numErr) {
		// The library fails to parse a Retry-After it does not
		// understand, which only comes with a 429.
		return statusError(s.name, http.StatusTooManyRequests, 0)
	}
	return transportError(ctx, s.name, err, s.secrets)
}

// Slack limits: a header holds 150 characters, a section's text 3000, a
// field 2000, and a section 10 fields.
const (
	slackHeaderMax  = 150
	slackTextMax    = 3000
	slackFieldMax   = 2000
	slackChecksMax  = 20
	slackImagesMax  = 10
	grafanaLookback = time.Hour
	grafanaLookhead = 15 * time.Minute
)

// slackMessage renders m as Block Kit blocks, with a plain-text fallback
// for notifications and clients that do not show blocks.
func slackMessage(m Message, grafanaBaseURL string) *slack.WebhookMessage {
	header := slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, truncate(slackEmoji(m)+" "+m.Title(), slackHeaderMax), true, false))

	field := func(label, value string) *slack.TextBlockObject {
		return slack.NewTextBlockObject(slack.MarkdownType, truncate("*"+label+"*\n"+value, slackFieldMax), false, false)
	}
	fields := []*slack.TextBlockObject{
		field("Service", slackEscape(m.Deployment)),
		field("Namespace", slackEscape(m.Namespace)),
		field("Revision", "`"+slackEscape(orDash(m.Revision))+"`"),
		field("Stage", slackEscape(orDash(m.Stage))),
		field("Weights", fmt.Sprintf("canary %d%% / stable %d%%", m.CanaryWeight, m.StableWeight())),
	}
	if m.DecidedBy != "" {
		fields = append(fields, field("Decided by", slackEscape(m.DecidedBy)))
	}
	if m.Reason != "" {
		fields = append(fields, field("Reason", slackEscape(m.Reason)))
	}
	blocks := []slack.Block{header, slack.NewSectionBlock(nil, fields, nil)}

	if len(m.Images) > 0 {
		var b strings.Builder
		b.WriteString("*Images*")
		for i, img := range m.Images {
			if i == slackImagesMax {
				fmt.Fprintf(&b, "\n… and %d more", len(m.Images)-i)
				break
			}
			b.WriteString("\n`" + slackEscape(img) + "`")
		}
		blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, truncate(b.String(), slackTextMax), false, false), nil, nil))
	}
	if m.Text != "" {
		blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, truncate(slackEscape(m.Text), slackTextMax), false, false), nil, nil))
	}
	if len(m.Checks) > 0 {
		var b strings.Builder
		b.WriteString("*Canary vs stable*")
		for i, c := range m.Checks {
			if i == slackChecksMax {
				fmt.Fprintf(&b, "\n… and %d more checks", len(m.Checks)-i)
				break
			}
			b.WriteString("\n" + slackCheckLine(c))
		}
		blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, truncate(b.String(), slackTextMax), false, false), nil, nil))
	}
	if link := GrafanaURL(grafanaBaseURL, m); link != "" {
		blocks = append(blocks, slack.NewContextBlock("",
			slack.NewTextBlockObject(slack.MarkdownType, "<"+slackEscape(link)+"|Open in Grafana>", false, false)))
	}
	return &slack.WebhookMessage{
		Text:   slackEscape(m.Summary()), // also mrkdwn: push notifications show it
		Blocks: &slack.Blocks{BlockSet: blocks},
	}
}

func slackCheckLine(c Check) string {
	mark := "•"
	switch c.Verdict {
	case "Fail":
		mark = ":x:"
	case "Pass":
		mark = ":white_check_mark:"
	case "Inconclusive":
		mark = ":grey_question:"
	}
	line := fmt.Sprintf("%s `%s` canary *%s* vs stable %s", mark, slackEscape(c.Metric),
		slackEscape(formatValue(c, c.Canary)), slackEscape(formatValue(c, c.Stable)))
	if c.Bound != "" || c.Threshold != "" {
		line += fmt.Sprintf(" (%s %s)", slackEscape(c.Bound), slackEscape(c.Threshold))
	}
	if c.Verdict != "" {
		line += ": " + slackEscape(c.Verdict)
	}
	return line
}

func slackEmoji(m Message) string {
	switch m.Kind {
	case KindStarted:
		return "🚀"
	case KindStageAdvanced:
		return "⏩"
	case KindPromoted:
		return "✅"
	case KindRolledBack:
		return "⏪"
	case KindPaused:
		return "⏸️"
	case KindResumed:
		return "▶️"
	case KindStuck, KindInconclusive:
		return "⏳"
	case KindInvalid:
		return "⚠️"
	case KindAlert:
		return "🚨"
	}
	return "ℹ️"
}

// GrafanaURL links base (a dashboard URL) to the rollout: it adds
// var-namespace, var-deployment, and from/to in Unix milliseconds from an
// hour before the event to 15 minutes after, keeping base's own query
// parameters. It returns "" when base is empty or not a URL.
func GrafanaURL(base string, m Message) string {
	if base == "" {
		return ""
	}
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	q := u.Query()
	q.Set("var-namespace", m.Namespace)
	q.Set("var-deployment", m.Deployment)
	if !m.At.IsZero() {
		q.Set("from", strconv.FormatInt(m.At.Add(-grafanaLookback).UnixMilli(), 10))
		q.Set("to", strconv.FormatInt(m.At.Add(grafanaLookhead).UnixMilli(), 10))
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// slackEscape escapes the three characters Slack's mrkdwn gives meaning to,
// so that names and messages cannot turn into links or mentions.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// truncate cuts s to at most n runes, marking the cut.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// orDefaultClient returns c, or a client of our own: http.DefaultClient is
// shared with every other package in the binary, any of which may change
// it. The send's context bounds each request, so no client timeout is set.
// Our client does not follow redirects: net/http would forward custom
// headers (a webhook's token) to wherever the redirect points, and no
// notification endpoint needs one. A redirect fails as a 3xx.
func orDefaultClient(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
