package policy

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// MaxGateRetries bounds a gate's retries: past a handful, a failing
// endpoint is broken rather than flaky, and retrying only delays the
// rollback.
const MaxGateRetries = 10

// minGateTimeout is the shortest attempt worth making: below a second a
// webhook times out on network latency alone.
const minGateTimeout = time.Second

// minMonitor is the shortest blue/green watch: below a second no request
// could be measured.
const minMonitor = time.Second

// channelNameDetail prefixes a malformed channel name's problem with what
// channel names look like, as ValidateNotify does for routes.
const channelNameDetail = "channel names are lowercase words joined by dashes: "

// validateRollout checks what shapes a rollout besides its stages and
// checks: strategy, schedules, rules, gates and notifications.
func validateRollout(p Policy, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch p.Strategy {
	case StrategyCanary, StrategyBlueGreen:
	default:
		errs = append(errs, field.NotSupported(path.Child("strategy"), p.Strategy, []string{StrategyCanary, StrategyBlueGreen}))
	}
	if p.Monitor.Duration < minMonitor {
		errs = append(errs, field.Invalid(path.Child("monitor"), p.Monitor.String(), "must be at least 1s"))
	}
	if p.Window != "" {
		errs = append(errs, validateSchedule(p.Window, path.Child("window"))...)
	}
	for i, spec := range p.Freeze {
		errs = append(errs, validateSchedule(spec, path.Child("freeze").Index(i))...)
	}
	if p.StartAt != "" {
		errs = append(errs, validateSchedule(p.StartAt, path.Child("startAt"))...)
	}
	if p.StuckAfter.Duration < 0 {
		errs = append(errs, field.Invalid(path.Child("stuckAfter"), p.StuckAfter.String(), "must not be negative"))
	}
	errs = append(errs, validateRules(p.Rules, p.Metrics, path.Child("rules"))...)
	stages := len(p.Stages)
	if p.Strategy == StrategyBlueGreen {
		// Blue/green replaces the stages with its one switch of traffic.
		stages = 1
	}
	errs = append(errs, validateGates(p.Gates, stages, p.Strategy == StrategyBlueGreen, path.Child("gates"))...)
	errs = append(errs, ValidateNotify(p.Notify, path.Child("notify"))...)
	return errs
}

func validateSchedule(spec string, path *field.Path) field.ErrorList {
	if _, err := ParseSchedule(spec); err != nil {
		reason := scheduleExpected
		if se, ok := errors.AsType[*ScheduleError](err); ok {
			reason = se.Reason
		}
		return field.ErrorList{field.Invalid(path, spec, reason)}
	}
	return nil
}

func validateRules(rules []Rule, metrics map[string]MetricQuery, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	names := map[string]int{}
	for i, r := range rules {
		rp := path.Index(i)
		switch first, dup := names[r.Name]; {
		case r.Name == "" && r.When != "":
			// Only a policy that skipped Defaults gets here.
			errs = append(errs, field.Required(rp.Child("name"), "name the rule, or leave it to Defaults to name it by its when"))
		case dup && r.Name != "":
			detail := fmt.Sprintf("rules[%d] has the same name", first)
			if r.Name == r.When {
				detail += "; a rule without a name is named by its when, so name one of them"
			}
			errs = append(errs, &field.Error{Type: field.ErrorTypeDuplicate, Field: rp.Child("name").String(), BadValue: r.Name, Detail: detail})
		case !dup:
			names[r.Name] = i
		}
		errs = append(errs, validateCondition(r.When, metrics, rp.Child("when"))...)
		if r.For.Duration < 0 {
			errs = append(errs, field.Invalid(rp.Child("for"), r.For.String(), "must not be negative"))
		}
		switch r.Action {
		case ActionRollback, ActionPause, ActionAlert:
		case "":
			errs = append(errs, field.Required(rp.Child("action"), "one of rollback, pause or alert"))
		default:
			errs = append(errs, field.NotSupported(rp.Child("action"), r.Action, []string{ActionRollback, ActionPause, ActionAlert}))
		}
		seen := map[string]bool{}
		for j, ch := range r.Notify {
			np := rp.Child("notify").Index(j)
			if seen[ch] {
				errs = append(errs, field.Duplicate(np, ch))
				continue
			}
			seen[ch] = true
			for _, msg := range validation.IsDNS1123Label(ch) {
				errs = append(errs, field.Invalid(np, ch, channelNameDetail+msg))
			}
		}
	}
	return errs
}

// validateCondition checks a rule's when as a check's bound is checked: the
// metric must exist and the value's unit must fit it.
func validateCondition(when string, metrics map[string]MetricQuery, path *field.Path) field.ErrorList {
	if strings.TrimSpace(when) == "" {
		return field.ErrorList{field.Required(path, `a condition on the canary, like "error-rate > 1%"`)}
	}
	c, err := ParseCondition(when)
	if err != nil {
		detail := conditionExpected
		if ce, ok := errors.AsType[*ConditionError](err); ok {
			detail = ce.Expected
		}
		return field.ErrorList{field.Invalid(path, when, detail)}
	}
	kind := metricKindOf(c.Metric)
	if _, defined := metrics[c.Metric]; kind == kindCustom && !defined {
		return field.ErrorList{&field.Error{
			Type:     field.ErrorTypeNotFound,
			Field:    path.String(),
			BadValue: when,
			Detail:   fmt.Sprintf("metric %q is neither built in (%s) nor defined under metrics", c.Metric, strings.Join(BuiltinMetrics(), ", ")),
		}}
	}
	errs := validateBound(&c.Value, kind, path)
	for _, e := range errs {
		// The whole condition reads better in the message than its value.
		e.BadValue = when
	}
	return errs
}

func validateGates(gates []Gate, stages int, blueGreen bool, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	names := map[string]int{}
	confirm := -1
	for i, g := range gates {
		gp := path.Index(i)
		switch first, dup := names[g.Name]; {
		case g.Name == "":
			errs = append(errs, field.Required(gp.Child("name"), "every gate needs a name for events and status to refer to"))
		case dup:
			errs = append(errs, &field.Error{Type: field.ErrorTypeDuplicate, Field: gp.Child("name").String(), BadValue: g.Name,
				Detail: fmt.Sprintf("gates[%d] has the same name", first)})
		default:
			names[g.Name] = i
			for _, msg := range validation.IsDNS1123Label(g.Name) {
				errs = append(errs, field.Invalid(gp.Child("name"), g.Name, msg))
			}
		}

		known := true
		switch g.Type {
		case GatePreRollout, GateConfirmPromotion:
			if g.Stage != 0 {
				errs = append(errs, field.Forbidden(gp.Child("stage"), "only pre-stage and during-stage gates belong to a stage"))
			}
		case GatePreStage, GateDuringStage:
			switch {
			case g.Stage == 0:
				errs = append(errs, field.Required(gp.Child("stage"), g.Type+" gates name the 1-based stage they guard"))
			case stages == 0:
				// The missing stages are reported already.
			case blueGreen && g.Stage != 1:
				errs = append(errs, field.Invalid(gp.Child("stage"), g.Stage, "blue/green switches traffic in a single stage, 1"))
			case g.Stage < 1 || g.Stage > stages:
				errs = append(errs, field.Invalid(gp.Child("stage"), g.Stage, fmt.Sprintf("must be a stage from 1 to %d", stages)))
			}
		case "":
			known = false
			errs = append(errs, field.Required(gp.Child("type"), "one of "+strings.Join(gateTypes(), ", ")))
		default:
			known = false
			errs = append(errs, field.NotSupported(gp.Child("type"), g.Type, gateTypes()))
		}
		if g.Type == GateConfirmPromotion {
			if confirm >= 0 {
				errs = append(errs, &field.Error{Type: field.ErrorTypeDuplicate, Field: gp.Child("type").String(), BadValue: g.Type,
					Detail: fmt.Sprintf("gates[%d] already waits for approval, and one approval promotes", confirm)})
			} else {
				confirm = i
			}
		}

		switch {
		case g.Type == GateConfirmPromotion:
			if g.URL != "" {
				errs = append(errs, field.Forbidden(gp.Child("url"), "a person approves confirm-promotion with the meshcanary.io/approve annotation; no URL is called"))
			}
		case g.URL == "":
			// Whether a gate of an unknown type needs a URL is unknown.
			if known {
				errs = append(errs, field.Required(gp.Child("url"), "the http(s) URL the gate POSTs the rollout to"))
			}
		default:
			errs = append(errs, validateGateURL(g.URL, gp.Child("url"))...)
		}

		if g.Timeout.Duration < minGateTimeout {
			errs = append(errs, field.Invalid(gp.Child("timeout"), g.Timeout.String(), "must be at least 1s"))
		}
		if g.Retries != nil && (*g.Retries < 0 || *g.Retries > MaxGateRetries) {
			errs = append(errs, field.Invalid(gp.Child("retries"), *g.Retries, fmt.Sprintf("must be from 0 to %d", MaxGateRetries)))
		}
		switch g.OnFailure {
		case OnFailureRollback, OnFailureHold:
		case "":
			errs = append(errs, field.Required(gp.Child("onFailure"), "rollback or hold"))
		default:
			errs = append(errs, field.NotSupported(gp.Child("onFailure"), g.OnFailure, []string{OnFailureRollback, OnFailureHold}))
		}
	}
	return errs
}

// validateGateURL accepts only absolute http(s) URLs, since a gate is an
// HTTP POST from the controller, and refuses credentials in them, since
// the policies file is a ConfigMap anyone reading the namespace sees.
func validateGateURL(raw string, path *field.Path) field.ErrorList {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return field.ErrorList{field.Invalid(path, raw, `must be an absolute http or https URL, like "https://ci.example.com/gates/smoke"`)}
	}
	if u.User != nil {
		return field.ErrorList{field.Invalid(path, u.Redacted(), "must not hold credentials: the policies file is no secret")}
	}
	return nil
}

func gateTypes() []string {
	return []string{GatePreRollout, GatePreStage, GateDuringStage, GateConfirmPromotion}
}

// RetriesOrDefault is how many more attempts a failing gate gets: Retries,
// or DefaultGateRetries when unset.
func (g Gate) RetriesOrDefault() int {
	if g.Retries == nil {
		return DefaultGateRetries
	}
	return *g.Retries
}
