package gates

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// snippetBytes is how much of a failing answer's body a Message quotes:
// enough for "database not ready" or a test summary, short enough for an
// Event.
const snippetBytes = 200

// redacted stands in for a secret in messages.
const redacted = "[redacted]"

// outcome is how one attempt ended. head is the status code, "timeout",
// "error" or "invalid"; detail explains it. Neither holds a secret.
type outcome struct {
	head, detail string
	passed       bool
	// permanent: the same request would fail the same way.
	permanent bool
}

// execute makes the attempts of one run and returns its Result and the
// last attempt's outcome (for the log, which must not show the URL).
// interrupted means ctx ended (Run stopping or Forget) before the run had
// a result.
func (r *Runner) execute(ctx context.Context, ru *run) (res Result, last outcome, interrupted bool) {
	req := ru.req
	target, secrets, ok := inspectURL(req.URL)
	if !ok {
		o := outcome{head: "invalid", detail: "the gate URL must be an absolute http or https URL"}
		return Result{Status: Failed, Message: message(target, o, 0)}, o, false
	}
	body, err := json.Marshal(req.Body)
	if err != nil { // cannot happen for these field types; failing is the safe answer
		o := outcome{head: "invalid", detail: "encoding the body: " + err.Error()}
		return Result{Status: Failed, Message: message(target, o, 0)}, o, false
	}
	tries := req.Retries + 1
	for attempt := 1; ; attempt++ {
		r.progress(ru, attempt, fmt.Sprintf("POST %s: attempt %d of %d in flight", target, attempt, tries))
		o := r.post(ctx, req, body, secrets)
		if o.passed {
			return Result{Status: Passed, Message: message(target, o, attempt), Attempts: attempt}, o, false
		}
		if ctx.Err() != nil {
			return Result{}, o, true
		}
		if o.permanent || attempt >= tries {
			return Result{Status: Failed, Message: message(target, o, attempt), Attempts: attempt}, o, false
		}
		wait := r.backoff(attempt)
		r.event(r.log.Debug(), req).Str("outcome", o.head).Str("detail", o.detail).Int("attempt", attempt).
			Dur("retryIn", wait).Msg("gate attempt failed")
		r.progress(ru, attempt, fmt.Sprintf("%s; retrying in %s (attempt %d of %d)", message(target, o, attempt), wait, attempt+1, tries))
		if !r.sleep(ctx, wait) {
			return Result{}, o, true
		}
	}
}

// post makes one attempt, bounded by req.Timeout.
func (r *Runner) post(ctx context.Context, req Request, body []byte, secrets []string) outcome {
	actx, cancel := context.WithTimeout(ctx, req.Timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(actx, http.MethodPost, req.URL, bytes.NewReader(body))
	if err != nil {
		// url errors quote the URL: say only that it is unusable.
		return outcome{head: "invalid", detail: "the gate URL cannot be used", permanent: true}
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("User-Agent", "meshcanary")
	resp, err := r.client.Do(hreq)
	if err != nil {
		if ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
			return outcome{head: "timeout", detail: "no answer within " + req.Timeout.String()}
		}
		return outcome{head: "error", detail: transportText(err, secrets)}
	}
	defer func() {
		// Drained, bounded, so the connection is reused and a chatty
		// endpoint cannot hold the worker.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()
	code := resp.StatusCode
	o := outcome{head: strconv.Itoa(code), passed: code >= 200 && code < 300}
	switch {
	case o.passed:
	case code >= 300 && code < 400:
		// The Location is not quoted: it may carry a token.
		o.detail, o.permanent = "redirects are not followed", true
	default:
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, snippetBytes))
		o.detail = redactText(cleanSnippet(snippet), secrets)
		// The test said no: asking again gets the same answer. 408 and
		// 429 ask for exactly that; 5xx may be passing trouble.
		o.permanent = code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests
	}
	return o
}

// message is a run's Message after attempts attempts ending in o; 0
// attempts means none could be made.
func message(target string, o outcome, attempts int) string {
	m := "POST " + target + " → " + o.head
	switch attempts {
	case 0:
	case 1:
		m += " after 1 attempt"
	default:
		m += fmt.Sprintf(" after %d attempts", attempts)
	}
	if o.detail != "" {
		m += ": " + o.detail
	}
	return m
}

// inspectURL returns the URL as it may be shown (no userinfo, no query,
// no fragment), the strings that must not be shown, and whether the URL
// can be used at all.
func inspectURL(raw string) (shown string, secrets []string, ok bool) {
	secrets = []string{raw}
	u, err := url.Parse(raw)
	if err != nil {
		return "[invalid URL]", secrets, false
	}
	ok = (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
	if u.User != nil {
		secrets = append(secrets, u.User.String())
		if p, set := u.User.Password(); set {
			secrets = append(secrets, p)
		}
	}
	safe := *u
	safe.User = nil
	safe.RawQuery, safe.ForceQuery, safe.Fragment, safe.RawFragment = "", false, "", ""
	shown = safe.String()
	if u.RawQuery != "" {
		secrets = append(secrets, u.RawQuery)
		for _, vs := range u.Query() {
			secrets = append(secrets, vs...)
		}
		// Say a query was there, so the message matches the policy.
		shown += "?" + redacted
	}
	return shown, secrets, ok
}

// transportText is a failed exchange's error without the URL: a
// *url.Error's text is `Post "<url>": <cause>`, and only the cause is
// kept. Secrets are scrubbed again in case the cause quotes them.
func transportText(err error, secrets []string) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	return redactText(err.Error(), secrets)
}

// cleanSnippet makes a body prefix fit one line of an Event: valid UTF-8
// (a rune cut at the end is dropped) and whitespace runs as one space.
func cleanSnippet(b []byte) string {
	s := strings.ToValidUTF8(string(b), "")
	s = strings.Map(func(c rune) rune {
		if c < ' ' || c == 0x7f {
			return ' '
		}
		return c
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// redactText replaces every secret in s, longest first so that a URL is
// replaced whole before its parts are. Strings under 4 bytes are skipped:
// they are no secrets and would mangle the text.
func redactText(s string, secrets []string) string {
	sorted := make([]string, 0, len(secrets))
	for _, sec := range secrets {
		if len(sec) >= 4 {
			sorted = append(sorted, sec)
		}
	}
	slices.SortFunc(sorted, func(a, b string) int { return len(b) - len(a) })
	for _, sec := range sorted {
		s = strings.ReplaceAll(s, sec, redacted)
	}
	return s
}
