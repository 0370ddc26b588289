package policy

import (
	"fmt"
	"math"
	"strings"
)

// Comparison operators of a rule's condition.
const (
	OpGreater      = ">"
	OpGreaterEqual = ">="
	OpLess         = "<"
	OpLessEqual    = "<="
)

// conditionExpected is how every unreadable condition is reported, so that
// users see the accepted form wherever they erred.
const conditionExpected = `expected "<metric> <op> <value>" with op one of >, >=, <, <=, like "error-rate > 1%" or "latency-p95 > 3s"`

// Condition is a rule's When, parsed: the canary's Metric compared by Op
// with Value.
type Condition struct {
	Metric string
	// Op is one of OpGreater, OpGreaterEqual, OpLess, OpLessEqual.
	Op    string
	Value Value
}

// ConditionError reports a condition that cannot be read. Like ValueError
// it keeps the text apart from the expectation, so that Validate can report
// it against the rule it came from without repeating the text.
type ConditionError struct {
	When     string
	Expected string
}

func (e *ConditionError) Error() string {
	return fmt.Sprintf("invalid condition %q: %s", e.When, e.Expected)
}

// ParseCondition reads a rule's When, such as "error-rate > 1%" or
// "request-rate<10". Spaces around the operator are optional. The value is
// read by ParseValue, so its unit comes from its spelling; whether the
// metric exists and the unit fits it is Validate's concern, because only
// the policy knows its custom metrics.
func ParseCondition(when string) (Condition, error) {
	fail := func(expected string) (Condition, error) {
		return Condition{}, &ConditionError{When: when, Expected: expected}
	}
	i := strings.IndexAny(when, "<>")
	if i < 0 {
		if strings.ContainsAny(when, "=!") {
			return fail("op must be one of >, >=, <, <=; " + conditionExpected)
		}
		return fail(conditionExpected)
	}
	metric := strings.TrimSpace(when[:i])
	op, rest := when[i:i+1], when[i+1:]
	if strings.HasPrefix(rest, "=") {
		op, rest = op+"=", rest[1:]
	}
	value := strings.TrimSpace(rest)

	switch {
	case metric == "":
		return fail("no metric before " + op + "; " + conditionExpected)
	case strings.HasSuffix(metric, "=") || strings.HasSuffix(metric, "!"),
		strings.HasPrefix(value, "<"), strings.HasPrefix(value, ">"), strings.HasPrefix(value, "="):
		// "=>", "!<", "<>", ">>", "== " and the like: a typo of an
		// operator rather than a metric or value that happens to hold one.
		return fail("op must be one of >, >=, <, <=; " + conditionExpected)
	case !isMetricName(metric):
		return fail(fmt.Sprintf("%q is not a metric name: metrics are named with letters, digits, dashes, dots and underscores; %s", metric, conditionExpected))
	case value == "":
		return fail(fmt.Sprintf(`no value after %s: %s`, op, valueExpected))
	}
	v, err := ParseValue(value)
	if err != nil {
		return fail(fmt.Sprintf("the value %q after %s: %s", value, op, valueExpected))
	}
	return Condition{Metric: metric, Op: op, Value: v}, nil
}

// isMetricName admits the characters of built-in and custom metric names
// (custom ones are DNS labels) and a little more, so that an unknown but
// plausible name is reported by Validate as unknown rather than here as
// unreadable.
func isMetricName(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return false
		}
	}
	return s != ""
}

// Holds reports whether v, a measurement of the metric in its base unit
// (fractions for shares, seconds for latencies), meets the condition. A NaN
// measurement (no traffic, no data) never holds: a rule acts on what was
// seen, not on its absence.
func (c Condition) Holds(v float64) bool {
	if math.IsNaN(v) {
		return false
	}
	switch c.Op {
	case OpGreater:
		return v > c.Value.Number
	case OpGreaterEqual:
		return v >= c.Value.Number
	case OpLess:
		return v < c.Value.Number
	case OpLessEqual:
		return v <= c.Value.Number
	}
	return false
}

// String writes the condition in the form ParseCondition reads, with the
// value as the user wrote it.
func (c Condition) String() string {
	return c.Metric + " " + c.Op + " " + c.Value.String()
}
