package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Notification events a route can name in `on`. They are API: policies and
// the generic webhook's `kind` field carry them, so they never change
// meaning. pkg/notify defines its Kind constants from these.
const (
	// NotifyAll matches every event.
	NotifyAll = "all"
	// NotifyStarted: a new canary revision began its first stage.
	NotifyStarted = "started"
	// NotifyStageAdvanced: the canary moved to its next stage weight.
	NotifyStageAdvanced = "stageAdvanced"
	// NotifyPromoted: stable runs the release and serves 100%.
	NotifyPromoted = "promoted"
	// NotifyRolledBack: traffic is back on stable, automatically or by hand.
	NotifyRolledBack = "rolledBack"
	// NotifyPaused and NotifyResumed follow meshcanary.io/pause.
	NotifyPaused  = "paused"
	NotifyResumed = "resumed"
	// NotifyStuck: the rollout cannot make progress (the canary does not
	// become available, Prometheus does not answer).
	NotifyStuck = "stuck"
	// NotifyInconclusive: analysis cannot judge the canary (too little
	// traffic, no data).
	NotifyInconclusive = "inconclusive"
	// NotifyInvalid: the configuration does not fit; traffic is left alone.
	NotifyInvalid = "invalid"
	// NotifyAlert: a rule raised an alert.
	NotifyAlert = "alert"
)

// NotifyEvents lists every event a route may name besides NotifyAll. It
// returns a new slice each time so callers may keep or change it.
func NotifyEvents() []string {
	return []string{
		NotifyStarted, NotifyStageAdvanced, NotifyPromoted, NotifyRolledBack,
		NotifyPaused, NotifyResumed, NotifyStuck, NotifyInconclusive,
		NotifyInvalid, NotifyAlert,
	}
}

// NotifyRoute sends the events named in On to the notification channel
// named in To. Channels are defined by the controller's notification
// Secret (see pkg/notify), not by the policy, so that policies never hold
// endpoints or keys.
//
// In YAML, `on` may be a list or a single event:
//
//	notify:
//	- {on: [rolledBack, stuck], to: pagerduty}
//	- {on: all, to: slack}
type NotifyRoute struct {
	On []string `json:"on"`
	To string   `json:"to"`
}

// notifyOnYAML11 is what an unquoted `on:` key becomes after YAML 1.1
// parsing (sigs.k8s.io/yaml reads `on`, like `yes`, as the boolean true and
// writes the key as "true"). Users write `on:` as documented and should not
// have to know to quote it.
const notifyOnYAML11 = "true"

// UnmarshalJSON accepts `on` as a list or as one string, and accepts the
// key "true" for "on" (see notifyOnYAML11). It is as strict as the rest of
// the policy file: unknown fields are errors. null leaves r unchanged.
func (r *NotifyRoute) UnmarshalJSON(data []byte) error {
	if string(bytes.TrimSpace(data)) == "null" {
		// A no-op, as encoding/json's convention asks: Parse empties a
		// malformed route to null once it has reported it.
		return nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return errors.New("expected a mapping with on and to")
	}
	if raw == nil {
		return errors.New("expected a mapping with on and to")
	}
	var out NotifyRoute
	var errs []string
	for key, val := range raw {
		switch key {
		case "on", notifyOnYAML11:
			if _, both := raw["on"]; both && key == notifyOnYAML11 {
				errs = append(errs, `on is given twice (an unquoted on: in YAML reads as "true")`)
				continue
			}
			on, ok := decodeNotifyOn(val)
			if !ok {
				errs = append(errs, "on: expected an event or a list of events")
			}
			out.On = on
		case "to":
			if err := strictDecode(val, &out.To); err != nil {
				errs = append(errs, "to: expected a channel name")
			}
		default:
			errs = append(errs, fmt.Sprintf("unknown field %q, expected on and to", key))
		}
	}
	if len(errs) > 0 {
		// Sorted because map order would make the message differ from
		// one load of the same file to the next.
		slices.Sort(errs)
		return errors.New(strings.Join(errs, "; "))
	}
	*r = out
	return nil
}

func decodeNotifyOn(val json.RawMessage) ([]string, bool) {
	if string(bytes.TrimSpace(val)) == "null" {
		return nil, true // unset, as encoding/json treats null; reported as required
	}
	var one string
	if err := strictDecode(val, &one); err == nil {
		return []string{one}, true
	}
	var list []string
	if err := strictDecode(val, &list); err != nil {
		return nil, false
	}
	return list, true
}

func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// ValidateNotify reports every problem of a policy's notification routes
// that can be seen without the controller's channel configuration: unknown
// or repeated events, missing or malformed channel names. Whether each
// channel is configured is ValidateNotifyChannels' job, because channels
// come from a Secret the policy file does not see.
func ValidateNotify(routes []NotifyRoute, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	known := append(NotifyEvents(), NotifyAll)
	for i, r := range routes {
		rp := path.Index(i)
		if len(r.On) == 0 {
			errs = append(errs, field.Required(rp.Child("on"), "name the events to send, or all"))
		}
		seen := map[string]bool{}
		for j, ev := range r.On {
			ep := rp.Child("on").Index(j)
			if seen[ev] {
				errs = append(errs, field.Duplicate(ep, ev))
				continue
			}
			seen[ev] = true
			if !slices.Contains(known, ev) {
				errs = append(errs, field.NotSupported(ep, ev, known))
			}
		}
		if seen[NotifyAll] && len(seen) > 1 {
			errs = append(errs, field.Invalid(rp.Child("on"), strings.Join(r.On, ", "), "all already includes every event; list either all or the events"))
		}
		if r.To == "" {
			errs = append(errs, field.Required(rp.Child("to"), "name a notification channel, such as slack, pagerduty or webhook"))
		} else {
			for _, msg := range validation.IsDNS1123Label(r.To) {
				errs = append(errs, field.Invalid(rp.Child("to"), r.To, "channel names are lowercase words joined by dashes: "+msg))
			}
		}
	}
	return errs
}

// ValidateNotifyChannels reports routes whose channel is not among
// channels, the names the controller's notification Secret defines (for
// example notify.Dispatcher.Channels()). A route to an unconfigured channel
// would otherwise drop its notifications, silently for the user.
func ValidateNotifyChannels(routes []NotifyRoute, channels []string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, r := range routes {
		if r.To == "" || slices.Contains(channels, r.To) {
			continue
		}
		detail := "no notification channel of that name is configured"
		if len(channels) > 0 {
			sorted := slices.Sorted(slices.Values(channels))
			detail += "; configured: " + strings.Join(sorted, ", ")
		} else {
			detail += "; the controller has no notification channels"
		}
		errs = append(errs, &field.Error{
			Type:     field.ErrorTypeNotFound,
			Field:    path.Index(i).Child("to").String(),
			BadValue: r.To,
			Detail:   detail,
		})
	}
	return errs
}
