package notify

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Channel types.
const (
	TypeSlack     = "slack"
	TypePagerDuty = "pagerduty"
	TypeWebhook   = "webhook"
)

// Secret keys. A channel's keys are "<channel>.<setting>"; see doc.go for
// the full list.
const (
	// KeyGrafanaBaseURL is the dashboard Slack messages link to.
	KeyGrafanaBaseURL = "grafana.baseURL"

	settingType       = "type"
	settingWebhookURL = "webhookURL" // slack
	settingRoutingKey = "routingKey" // pagerduty
	settingEndpoint   = "endpoint"   // pagerduty, optional
	settingURL        = "url"        // webhook
	settingHeader     = "header."    // webhook, prefix of header.<Name>

	// reservedName is not a channel: its keys configure Grafana links.
	reservedName = "grafana"
)

// Config is the notification configuration read from the controller's
// Secret. It holds secrets: it prints, formats and marshals with them
// redacted, so that a stray log line cannot leak them.
type Config struct {
	Channels []ChannelConfig
	// GrafanaBaseURL is a dashboard URL Slack messages link to, "" for no
	// link.
	GrafanaBaseURL string
}

// ChannelConfig is one channel's settings.
type ChannelConfig struct {
	Name string
	Type string // TypeSlack, TypePagerDuty or TypeWebhook
	// URL is a Slack incoming webhook URL or the generic webhook's URL.
	URL string
	// RoutingKey is the PagerDuty Events API v2 integration key.
	RoutingKey string
	// Endpoint is the PagerDuty Events API base URL, "" for PagerDuty's.
	Endpoint string
	// Headers are extra headers of the generic webhook.
	Headers map[string]string
}

// String names the channel and its type only.
func (c ChannelConfig) String() string {
	return fmt.Sprintf("{Name:%s Type:%s settings:%s}", c.Name, c.Type, redacted)
}

// GoString is String, so that %#v does not print secrets either.
func (c ChannelConfig) GoString() string { return c.String() }

// MarshalJSON writes the name and type only.
func (c ChannelConfig) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, `{"name":%q,"type":%q,"settings":%q}`, c.Name, c.Type, redacted), nil
}

// ParseSecret reads the data of the notification Secret. Every problem is
// reported at once, each naming its key and never its value. Values are
// trimmed of surrounding whitespace, since Secrets made from files usually
// end in a newline.
func ParseSecret(data map[string][]byte) (Config, error) {
	var cfg Config
	var errs []error
	byName := map[string]*ChannelConfig{}
	keysOf := map[string][]string{}
	for _, key := range slices.Sorted(maps.Keys(data)) {
		value := strings.TrimSpace(string(data[key]))
		if key == KeyGrafanaBaseURL {
			if err := checkURL(key, value); err != nil {
				errs = append(errs, err)
			}
			cfg.GrafanaBaseURL = value
			continue
		}
		name, setting, ok := strings.Cut(key, ".")
		if !ok || setting == "" {
			errs = append(errs, fmt.Errorf("key %q: expected <channel>.<setting>, such as slack.webhookURL, or %s", key, KeyGrafanaBaseURL))
			continue
		}
		if name == reservedName {
			errs = append(errs, fmt.Errorf("key %q: unknown; the only grafana key is %s", key, KeyGrafanaBaseURL))
			continue
		}
		if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("key %q: channel name %q: %s", key, name, strings.Join(msgs, "; ")))
			continue
		}
		if value == "" {
			errs = append(errs, fmt.Errorf("key %q is empty", key))
			continue
		}
		c := byName[name]
		if c == nil {
			c = &ChannelConfig{Name: name}
			byName[name] = c
		}
		keysOf[name] = append(keysOf[name], key)
		switch {
		case setting == settingType:
			c.Type = value
		case setting == settingWebhookURL:
			c.URL = value
		case setting == settingRoutingKey:
			c.RoutingKey = value
		case setting == settingEndpoint:
			c.Endpoint = value
		case setting == settingURL:
			c.URL = value
		case strings.HasPrefix(setting, settingHeader):
			if c.Headers == nil {
				c.Headers = map[string]string{}
			}
			c.Headers[strings.TrimPrefix(setting, settingHeader)] = value
		default:
			errs = append(errs, fmt.Errorf("key %q: unknown setting %q; settings are type, webhookURL (slack), routingKey and endpoint (pagerduty), url and header.<Name> (webhook)", key, setting))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		c := byName[name]
		errs = append(errs, checkChannel(c, keysOf[name])...)
		cfg.Channels = append(cfg.Channels, *c)
	}
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("notification secret: %w", errors.Join(errs...))
	}
	return cfg, nil
}

// checkChannel infers a missing type from the channel's name and checks
// that exactly the type's settings are present. keys are the channel's
// keys, to name the one at fault.
func checkChannel(c *ChannelConfig, keys []string) []error {
	var errs []error
	if c.Type == "" {
		switch c.Name {
		case TypeSlack, TypePagerDuty, TypeWebhook:
			c.Type = c.Name
		default:
			return []error{fmt.Errorf("channel %q: key %q is required: slack, pagerduty or webhook", c.Name, c.Name+"."+settingType)}
		}
	}
	key := func(setting string) string { return c.Name + "." + setting }
	// allowed lists the settings of the channel's type; anything else the
	// channel set is an error naming the key.
	var allowed []string
	switch c.Type {
	case TypeSlack:
		allowed = []string{settingWebhookURL}
		if c.URL == "" {
			errs = append(errs, fmt.Errorf("channel %q: key %q is required", c.Name, key(settingWebhookURL)))
		} else if err := checkURL(key(settingWebhookURL), c.URL); err != nil {
			errs = append(errs, err)
		}
	case TypePagerDuty:
		allowed = []string{settingRoutingKey, settingEndpoint}
		switch {
		case c.RoutingKey == "":
			errs = append(errs, fmt.Errorf("channel %q: key %q is required", c.Name, key(settingRoutingKey)))
		case strings.ContainsFunc(c.RoutingKey, isSpaceOrControl):
			errs = append(errs, fmt.Errorf("key %q: contains whitespace or control characters", key(settingRoutingKey)))
		}
		if c.Endpoint != "" {
			if err := checkURL(key(settingEndpoint), c.Endpoint); err != nil {
				errs = append(errs, err)
			}
		}
	case TypeWebhook:
		allowed = []string{settingURL}
		if c.URL == "" {
			errs = append(errs, fmt.Errorf("channel %q: key %q is required", c.Name, key(settingURL)))
		} else if err := checkURL(key(settingURL), c.URL); err != nil {
			errs = append(errs, err)
		}
		for _, h := range slices.Sorted(maps.Keys(c.Headers)) {
			if err := checkHeader(key(settingHeader+h), h, c.Headers[h]); err != nil {
				errs = append(errs, err)
			}
		}
	default:
		return []error{fmt.Errorf("key %q: unknown type %q, expected slack, pagerduty or webhook", key(settingType), c.Type)}
	}
	for _, k := range keys {
		setting := strings.TrimPrefix(k, c.Name+".")
		if setting == settingType || slices.Contains(allowed, setting) ||
			(c.Type == TypeWebhook && strings.HasPrefix(setting, settingHeader)) {
			continue
		}
		if isKnownSetting(setting) {
			errs = append(errs, fmt.Errorf("key %q: not a setting of %s channels", k, c.Type))
		}
	}
	return errs
}

func isKnownSetting(s string) bool {
	switch s {
	case settingType, settingWebhookURL, settingRoutingKey, settingEndpoint, settingURL:
		return true
	}
	return strings.HasPrefix(s, settingHeader)
}

// checkURL reports a value that is not an absolute http(s) URL, without
// quoting it: url.Parse's own errors quote the URL.
func checkURL(key, value string) error {
	u, err := url.Parse(value)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("key %q: not an absolute http or https URL", key)
	}
	return nil
}

// checkHeader refuses header names net/http would reject or that
// meshcanary sets itself, and values that could split the request.
func checkHeader(key, name, value string) error {
	if name == "" || strings.ContainsFunc(name, func(r rune) bool { return !isTokenChar(r) }) {
		return fmt.Errorf("key %q: not a valid HTTP header name", key)
	}
	switch http.CanonicalHeaderKey(name) {
	case "Content-Type", "Content-Length", "Host", "Transfer-Encoding":
		return fmt.Errorf("key %q: meshcanary sets this header itself", key)
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return fmt.Errorf("key %q: the value contains a line break or NUL", key)
	}
	return nil
}

// isTokenChar reports whether r may appear in an HTTP header name (RFC 9110
// token).
func isTokenChar(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	}
	return strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// Build makes the channels, sorted by name. httpClient is shared by all of
// them; nil gives each a client of the package's own.
func (c Config) Build(httpClient *http.Client) ([]Channel, error) {
	out := make([]Channel, 0, len(c.Channels))
	seen := map[string]bool{}
	for _, ch := range c.Channels {
		if seen[ch.Name] {
			return nil, fmt.Errorf("notification channel %q is defined twice", ch.Name)
		}
		seen[ch.Name] = true
		switch ch.Type {
		case TypeSlack:
			out = append(out, NewSlack(ch.Name, ch.URL, c.GrafanaBaseURL, httpClient))
		case TypePagerDuty:
			out = append(out, NewPagerDuty(ch.Name, ch.RoutingKey, ch.Endpoint, httpClient))
		case TypeWebhook:
			out = append(out, NewWebhook(ch.Name, ch.URL, ch.Headers, httpClient))
		default:
			return nil, fmt.Errorf("notification channel %q: unknown type %q", ch.Name, ch.Type)
		}
	}
	slices.SortFunc(out, func(a, b Channel) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// LoadFromSecret parses the notification Secret's data and builds its
// channels with the package's own HTTP clients.
func LoadFromSecret(data map[string][]byte) ([]Channel, error) {
	cfg, err := ParseSecret(data)
	if err != nil {
		return nil, err
	}
	return cfg.Build(nil)
}
