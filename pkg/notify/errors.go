package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Failure reasons, the reason label of meshcanary_notifications_failed_total.
// An HTTP answer is labelled by its status class: 3xx, 4xx or 5xx.
const (
	// Reason3xx: the endpoint redirected; the package's own clients do not
	// follow redirects, so the configured URL needs fixing.
	Reason3xx = "3xx"
	// Reason4xx: the endpoint refused the notification (429 is retried
	// first, the other 4xx are not, since resending cannot fix them).
	Reason4xx = "4xx"
	// Reason5xx: the endpoint failed on every attempt.
	Reason5xx = "5xx"
	// ReasonTimeout: no answer within Options.Timeout on the last attempt.
	ReasonTimeout = "timeout"
	// ReasonNetwork: no HTTP answer at all (refused, DNS, TLS, reset).
	ReasonNetwork = "network"
	// ReasonInvalid: the notification could not be built or sent as
	// configured; resending cannot help.
	ReasonInvalid = "invalid"
	// ReasonDropped: the channel's queue was full, or the controller shut
	// down before the notification went out.
	ReasonDropped = "dropped"
	// ReasonUnconfigured: a route names a channel the Secret does not
	// define.
	ReasonUnconfigured = "unconfigured"
	// ReasonOther: any other failure, such as an error of a Channel
	// outside this package that is not a *SendError.
	ReasonOther = "error"
)

// redacted replaces secrets in error texts.
const redacted = "[redacted]"

// SendError is the error the channels of this package return. Its text
// never holds the endpoint URL, routing key or header values: logs and
// Events may print it as it is. It does not unwrap to the transport error
// either, because net/http's *url.Error prints the URL; only the context
// errors are kept, for errors.Is.
type SendError struct {
	// Channel is the channel's name.
	Channel string
	// StatusCode is the HTTP status of the answer, 0 when none came.
	StatusCode int
	// RetryAfter is how long a 429 asked to wait, 0 when it did not say.
	RetryAfter time.Duration
	// Timeout is true when the send ran out of time.
	Timeout bool
	// Permanent is true when resending the same notification cannot
	// succeed (a 3xx, a 4xx other than 408 and 429, a message that cannot
	// be encoded).
	Permanent bool

	msg   string
	cause error // context.DeadlineExceeded, context.Canceled or nil
}

func (e *SendError) Error() string { return e.msg }

// Unwrap exposes context.DeadlineExceeded and context.Canceled, nothing
// that could print an endpoint.
func (e *SendError) Unwrap() error { return e.cause }

// Reason is the failure's reason label.
func (e *SendError) Reason() string {
	switch {
	case e.StatusCode >= 100 && e.StatusCode < 600:
		return strconv.Itoa(e.StatusCode/100) + "xx"
	case e.StatusCode != 0:
		return ReasonOther
	case e.Timeout:
		return ReasonTimeout
	case e.Permanent:
		return ReasonInvalid
	}
	return ReasonNetwork
}

// Retryable reports whether sending again may succeed.
func (e *SendError) Retryable() bool { return !e.Permanent }

// statusError describes an HTTP answer that is not a success.
func statusError(channel string, code int, retryAfter time.Duration) *SendError {
	// Resending cannot fix a refusal or a redirect; 408 and 429 ask for
	// exactly that.
	permanent := code >= 300 && code < 500 && code != http.StatusTooManyRequests && code != http.StatusRequestTimeout
	text := http.StatusText(code)
	if text == "" {
		text = "unknown status"
	}
	return &SendError{
		Channel:    channel,
		StatusCode: code,
		RetryAfter: retryAfter,
		Permanent:  permanent,
		msg:        fmt.Sprintf("%s: endpoint answered HTTP %d %s", channel, code, text),
	}
}

// invalidError is a notification that cannot be sent as configured. err
// must hold no secret (callers pass encoding errors or redacted ones).
func invalidError(channel, what string, err error) *SendError {
	return &SendError{Channel: channel, Permanent: true, msg: fmt.Sprintf("%s: %s: %s", channel, what, err)}
}

// transportError describes a send that got no HTTP answer. ctx is the
// send's context, to tell a timeout from a refused connection whatever the
// library made of it. secrets are scrubbed from the text as a second line
// of defence after the *url.Error is taken apart.
func transportError(ctx context.Context, channel string, err error, secrets []string) *SendError {
	e := &SendError{Channel: channel}
	var uerr *url.Error
	text := err.Error()
	if errors.As(err, &uerr) {
		// The *url.Error's text is `Post "<url>": <cause>`; keep the
		// operation and the cause, never the URL.
		text = uerr.Op + " " + redacted + ": " + uerr.Err.Error()
		e.Timeout = uerr.Timeout()
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		e.Timeout = true
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		e.Timeout = true
		e.cause = context.DeadlineExceeded
	case errors.Is(err, context.Canceled) || errors.Is(ctx.Err(), context.Canceled):
		e.cause = context.Canceled
	}
	e.msg = channel + ": " + redactText(text, secrets)
	return e
}

// secretsOf lists the strings of an endpoint URL that must not be printed:
// the URL in its spellings, and the path, query and credentials, which is
// where webhook URLs carry their tokens. The host is not secret and is
// left in dial errors, where it helps.
func secretsOf(raw string) []string {
	out := []string{raw}
	u, err := url.Parse(raw)
	if err != nil {
		return out
	}
	out = append(out, u.String(), u.Redacted())
	if len(u.Path) > 1 {
		out = append(out, u.Path, u.EscapedPath())
	}
	if u.RawQuery != "" {
		out = append(out, u.RawQuery)
	}
	if u.User != nil {
		out = append(out, u.User.String())
		if p, ok := u.User.Password(); ok {
			out = append(out, p)
		}
	}
	return out
}

// redactText replaces every secret in s, longest first so that a URL is
// replaced whole before its path is.
func redactText(s string, secrets []string) string {
	sorted := make([]string, 0, len(secrets))
	for _, sec := range secrets {
		if len(sec) >= 4 { // shorter strings are not secrets, and would mangle text
			sorted = append(sorted, sec)
		}
	}
	// Longest first; insertion sort as the list is a handful of strings.
	for i := 1; i < len(sorted); i++ {
		for j := i; j > 0 && len(sorted[j]) > len(sorted[j-1]); j-- {
			sorted[j], sorted[j-1] = sorted[j-1], sorted[j]
		}
	}
	for _, sec := range sorted {
		s = strings.ReplaceAll(s, sec, redacted)
	}
	return s
}

// safeError turns any error a Channel returns into one that is safe to log:
// SendErrors are so already; for other channels' errors the URL of every
// *url.Error in the chain is cut out.
func safeError(err error) error {
	var se *SendError
	if errors.As(err, &se) {
		return err
	}
	text := err.Error()
	for e := err; e != nil; {
		var uerr *url.Error
		if !errors.As(e, &uerr) {
			break
		}
		text = redactText(text, secretsOf(uerr.URL))
		e = uerr.Err
	}
	return &redactedError{msg: text, cause: contextCause(err)}
}

// redactedError is an error text with its secrets scrubbed. Like
// SendError, it unwraps to the context errors only.
type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.cause }

func contextCause(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return context.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return context.Canceled
	}
	return nil
}
