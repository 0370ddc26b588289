package policy

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// MinInterval is the shortest analysis interval: Prometheus scrapes rarely
// run faster, so shorter windows would hold no new samples.
const MinInterval = time.Second

// Validate reports every problem of one policy, each under path (the
// policy's own path, e.g. policies[0]; nil for a bare policy). It expects
// Defaults to have run; without them, unset fields are reported as invalid.
func Validate(p Policy, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if p.Name == "" {
		errs = append(errs, field.Required(path.Child("name"), "every policy needs a name for Deployments to refer to"))
	} else {
		for _, msg := range validation.IsDNS1123Label(p.Name) {
			errs = append(errs, field.Invalid(path.Child("name"), p.Name, msg))
		}
	}
	if p.Interval.Duration < MinInterval {
		errs = append(errs, field.Invalid(path.Child("interval"), p.Interval.String(), "must be at least 1s"))
	}
	if p.Lookback.Duration != 0 && p.Lookback.Duration < p.Interval.Duration {
		errs = append(errs, field.Invalid(path.Child("lookback"), p.Lookback.String(), "must be at least the interval ("+p.Interval.String()+"), or left out for one interval"))
	}
	if p.MinRequests < 0 {
		errs = append(errs, field.Invalid(path.Child("minRequests"), p.MinRequests, "must not be negative"))
	}
	if p.FailureLimit < 1 {
		errs = append(errs, field.Invalid(path.Child("failureLimit"), p.FailureLimit, "must be at least 1"))
	}
	if p.MetricsOutageLimit < 1 {
		errs = append(errs, field.Invalid(path.Child("metricsOutageLimit"), p.MetricsOutageLimit, "must be at least 1"))
	}
	errs = append(errs, validateMetrics(p.Metrics, path.Child("metrics"))...)
	errs = append(errs, validateChecks(p.Checks, p.Metrics, path.Child("checks"))...)
	errs = append(errs, validateStages(p.Stages, p.Metrics, path.Child("stages"))...)
	errs = append(errs, validateRollout(p, path)...)
	return errs
}

func validateStages(stages []Stage, metrics map[string]MetricQuery, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(stages) == 0 {
		return append(errs, field.Required(path, "at least one stage is needed"))
	}
	previous := 0
	for i, s := range stages {
		sp := path.Index(i)
		switch {
		case s.Weight < 1 || s.Weight > 100:
			errs = append(errs, field.Invalid(sp.Child("weight"), s.Weight, "must be a percentage from 1 to 100"))
		case s.Weight <= previous:
			errs = append(errs, field.Invalid(sp.Child("weight"), s.Weight,
				fmt.Sprintf("must be more than the previous stage's weight %d: stages only ever move traffic towards the canary", previous)))
		}
		// An out-of-range weight still orders the stages after it, so that
		// one typo is reported once rather than once per later stage.
		previous = max(previous, s.Weight)
		if s.Duration.Duration <= 0 {
			errs = append(errs, field.Invalid(sp.Child("duration"), s.Duration.String(), "must be longer than 0s"))
		}
		if s.CanaryReplicas != nil && *s.CanaryReplicas < 1 {
			errs = append(errs, field.Invalid(sp.Child("canaryReplicas"), *s.CanaryReplicas, "must be at least 1 when set"))
		}
		errs = append(errs, validateChecks(s.Checks, metrics, sp.Child("checks"))...)
	}
	return errs
}

func validateChecks(checks []Check, metrics map[string]MetricQuery, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, c := range checks {
		errs = append(errs, validateCheck(c, metrics, path.Index(i))...)
	}
	return errs
}

func validateCheck(c Check, metrics map[string]MetricQuery, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	kind := metricKindOf(c.Metric)
	switch {
	case c.Metric == "":
		errs = append(errs, field.Required(path.Child("metric"), "name a built-in metric ("+strings.Join(BuiltinMetrics(), ", ")+") or one defined under metrics"))
	case kind == kindCustom:
		if _, ok := metrics[c.Metric]; !ok {
			errs = append(errs, &field.Error{
				Type:     field.ErrorTypeNotFound,
				Field:    path.Child("metric").String(),
				BadValue: c.Metric,
				Detail:   "neither built in (" + strings.Join(BuiltinMetrics(), ", ") + ") nor defined under metrics",
			})
		}
	}
	if c.Max == nil && c.Min == nil && c.MaxIncrease == nil && c.MaxRatio == nil {
		errs = append(errs, field.Required(path, "set at least one of max, min, maxIncrease or maxRatio"))
	}
	errs = append(errs, validateBound(c.Max, kind, path.Child("max"))...)
	errs = append(errs, validateBound(c.Min, kind, path.Child("min"))...)
	incErrs := validateBound(c.MaxIncrease, kind, path.Child("maxIncrease"))
	if len(incErrs) == 0 && c.MaxIncrease != nil && c.MaxIncrease.Number < 0 {
		// Custom metrics may go negative, but an allowed increase that is
		// negative would fail a canary merely equal to stable.
		incErrs = append(incErrs, field.Invalid(path.Child("maxIncrease"), c.MaxIncrease.String(), "an allowed increase cannot be negative"))
	}
	errs = append(errs, incErrs...)
	if c.MaxRatio != nil {
		if r := *c.MaxRatio; !(r > 0) || math.IsInf(r, 0) {
			errs = append(errs, field.Invalid(path.Child("maxRatio"), r, "must be a factor greater than 0, such as 1.2"))
		}
	}
	if c.Min != nil && c.Max != nil && c.Min.Unit != "" && c.Max.Unit != "" && c.Min.Number > c.Max.Number {
		errs = append(errs, field.Invalid(path.Child("min"), c.Min.String(), "must not be more than max "+c.Max.String()))
	}
	return errs
}

// validateBound checks that a threshold is written in a unit that means
// something for its metric, since the unit decides how it is compared.
func validateBound(v *Value, kind metricKind, path *field.Path) field.ErrorList {
	if v == nil {
		return nil
	}
	var errs field.ErrorList
	switch v.Unit {
	case UnitNumber, UnitPercent, UnitDuration:
	default:
		// Only a Value built in code without ParseValue gets here.
		return append(errs, field.Invalid(path, v.Raw, valueExpected))
	}
	if math.IsNaN(v.Number) || math.IsInf(v.Number, 0) {
		return append(errs, field.Invalid(path, v.String(), "must be a finite number"))
	}
	switch kind {
	case kindLatency:
		if v.Unit != UnitDuration {
			errs = append(errs, field.Invalid(path, v.String(), `latency thresholds are durations, like "300ms" or "2s"`))
		} else if v.Number < 0 {
			errs = append(errs, field.Invalid(path, v.String(), "must not be negative"))
		}
	case kindShare:
		switch {
		case v.Unit != UnitPercent && v.Unit != UnitNumber:
			errs = append(errs, field.Invalid(path, v.String(), `shares of requests are percentages like "1%" or fractions from 0 to 1`))
		case v.Number < 0 || v.Number > 1:
			errs = append(errs, field.Invalid(path, v.String(), "must be from 0% to 100%"))
		}
	case kindRate:
		switch {
		case v.Unit != UnitNumber:
			errs = append(errs, field.Invalid(path, v.String(), "request rates are plain numbers of requests per second, like 20"))
		case v.Number < 0:
			errs = append(errs, field.Invalid(path, v.String(), "must not be negative"))
		}
	default:
		if v.Unit != UnitNumber && v.Unit != UnitPercent {
			errs = append(errs, field.Invalid(path, v.String(), `custom metrics are compared as numbers; write a number like 0.99 or a percentage like "99%"`))
		}
	}
	return errs
}

func validateMetrics(metrics map[string]MetricQuery, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, name := range sortedKeys(metrics) {
		mp := path.Key(name)
		if IsBuiltinMetric(name) {
			errs = append(errs, field.Invalid(mp, name, "is a built-in metric; give the custom metric another name"))
			continue
		}
		for _, msg := range validation.IsDNS1123Label(name) {
			errs = append(errs, field.Invalid(mp, name, "metric names are used in annotations and logs, so "+msg))
		}
		q := metrics[name]
		if strings.TrimSpace(q.Query) == "" {
			errs = append(errs, field.Required(mp.Child("query"), "a PromQL query template"))
			continue
		}
		if _, err := q.Render(QueryVars{Namespace: "default", Workload: "example", Window: "1m"}); err != nil {
			errs = append(errs, field.Invalid(mp.Child("query"), q.Query,
				"must be a PromQL query using only {{ .Namespace }}, {{ .Workload }} and {{ .Window }}: "+err.Error()))
		}
	}
	return errs
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
