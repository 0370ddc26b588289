package policy

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestParseCondition(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Condition
		wantErr string // part of ConditionError.Expected
	}{
		{
			name: "an error-rate ceiling in percent becomes a fraction",
			in:   "error-rate > 1%",
			want: Condition{Metric: MetricErrorRate, Op: OpGreater, Value: Value{Raw: "1%", Number: 0.01, Unit: UnitPercent}},
		},
		{
			name: "a latency ceiling becomes seconds",
			in:   "latency-p95 > 3s",
			want: Condition{Metric: MetricLatencyP95, Op: OpGreater, Value: Value{Raw: "3s", Number: 3, Unit: UnitDuration}},
		},
		{
			name: "a custom metric floor is read, leaving its existence to Validate",
			in:   "transaction-success < 99%",
			want: Condition{Metric: "transaction-success", Op: OpLess, Value: Value{Raw: "99%", Number: 0.99, Unit: UnitPercent}},
		},
		{
			name: "spaces around the operator are optional",
			in:   "request-rate<10",
			want: Condition{Metric: MetricRequestRate, Op: OpLess, Value: Value{Raw: "10", Number: 10, Unit: UnitNumber}},
		},
		{
			name: "surrounding and repeated whitespace is ignored",
			in:   " \terror-rate   >=\t0.5% \n",
			want: Condition{Metric: MetricErrorRate, Op: OpGreaterEqual, Value: Value{Raw: "0.5%", Number: 0.005, Unit: UnitPercent}},
		},
		{
			name: "at most is read",
			in:   "success-rate <= 0.99",
			want: Condition{Metric: MetricSuccessRate, Op: OpLessEqual, Value: Value{Raw: "0.99", Number: 0.99, Unit: UnitNumber}},
		},
		{
			name: "a negative value is read, leaving its sign to Validate",
			in:   "m > -3",
			want: Condition{Metric: "m", Op: OpGreater, Value: Value{Raw: "-3", Number: -3, Unit: UnitNumber}},
		},
		{name: "a condition without an operator is rejected saying what was expected", in: "error-rate is high", wantErr: `expected "<metric> <op> <value>"`},
		{name: "an empty condition is rejected", in: "", wantErr: `expected "<metric> <op> <value>"`},
		{name: "equality is rejected naming the operators", in: "error-rate == 1%", wantErr: "op must be one of >, >=, <, <="},
		{name: "inequality is rejected naming the operators", in: "error-rate != 1%", wantErr: "op must be one of >, >=, <, <="},
		{name: "a reversed operator is rejected naming the operators", in: "error-rate => 1%", wantErr: "op must be one of >, >=, <, <="},
		{name: "a doubled operator is rejected naming the operators", in: "error-rate >> 1%", wantErr: "op must be one of >, >=, <, <="},
		{name: "a diamond operator is rejected naming the operators", in: "error-rate <> 1%", wantErr: "op must be one of >, >=, <, <="},
		{name: "a condition without a metric is rejected", in: "> 1%", wantErr: "no metric before >"},
		{name: "a condition without a value is rejected naming the spellings", in: "error-rate >", wantErr: "no value after >: " + valueExpected},
		{name: "an unreadable value is rejected naming the spellings", in: "error-rate > 1x", wantErr: `the value "1x" after >: ` + valueExpected},
		{name: "infinity is rejected as a value", in: "error-rate < inf", wantErr: valueExpected},
		{name: "a metric name with a space is rejected", in: "error rate > 1%", wantErr: `"error rate" is not a metric name`},
		{name: "two conditions are rejected", in: "error-rate > 1% and latency-p95 > 2s", wantErr: valueExpected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCondition(tt.in)
			if tt.wantErr != "" {
				ce, ok := errors.AsType[*ConditionError](err)
				if !ok || ce.When != tt.in || !strings.Contains(ce.Expected, tt.wantErr) {
					t.Fatalf("ParseCondition(%q) = %+v, %v; want a *ConditionError expecting %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCondition(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseCondition(%q) = %+v; want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestConditionHolds(t *testing.T) {
	tests := []struct {
		name string
		when string
		v    float64
		want bool
	}{
		{name: "above a ceiling holds", when: "error-rate > 1%", v: 0.011, want: true},
		{name: "at a strict ceiling does not hold", when: "error-rate > 1%", v: 0.01, want: false},
		{name: "at an inclusive ceiling holds", when: "error-rate >= 1%", v: 0.01, want: true},
		{name: "below a ceiling does not hold", when: "error-rate >= 1%", v: 0.009, want: false},
		{name: "a latency is compared in seconds", when: "latency-p95 > 3s", v: 3.001, want: true},
		{name: "a latency in milliseconds is compared in seconds", when: "latency-p99 > 300ms", v: 0.25, want: false},
		{name: "below a floor holds", when: "request-rate < 10", v: 9.5, want: true},
		{name: "at a strict floor does not hold", when: "request-rate < 10", v: 10, want: false},
		{name: "at an inclusive floor holds", when: "request-rate <= 10", v: 10, want: true},
		{name: "a share written as a fraction compares the same as a percentage", when: "success-rate < 0.99", v: 0.985, want: true},
		{name: "a missing measurement never holds against a floor", when: "request-rate < 10", v: math.NaN(), want: false},
		{name: "a missing measurement never holds against a ceiling", when: "error-rate >= 0%", v: math.NaN(), want: false},
		{name: "an infinite latency holds against a ceiling", when: "latency-p95 > 3s", v: math.Inf(1), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCondition(tt.when)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Holds(tt.v); got != tt.want {
				t.Errorf("%q holds for %v = %v; want %v", tt.when, tt.v, got, tt.want)
			}
		})
	}
}

func TestConditionWithoutAnOperatorNeverHolds(t *testing.T) {
	if (Condition{Metric: MetricErrorRate, Value: Value{Number: 0, Unit: UnitNumber}}).Holds(1) {
		t.Errorf("a Condition built in code without Op must not hold")
	}
}

func TestConditionString(t *testing.T) {
	tests := []struct {
		name string
		in   Condition
		want string
	}{
		{name: "a parsed condition is written with its value as the user wrote it", in: mustCondition(t, "request-rate<10"), want: "request-rate < 10"},
		{name: "a percentage keeps its spelling", in: mustCondition(t, "error-rate >= 0.50%"), want: "error-rate >= 0.50%"},
		{name: "a condition built in code spells its value from the number", in: Condition{Metric: MetricLatencyP95, Op: OpGreater, Value: Value{Number: 1.5, Unit: UnitDuration}}, want: "latency-p95 > 1.5s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.String(); got != tt.want {
				t.Errorf("String() = %q; want %q", got, tt.want)
			}
		})
	}
}

func mustCondition(t *testing.T, when string) Condition {
	t.Helper()
	c, err := ParseCondition(when)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func FuzzParseCondition(f *testing.F) {
	for _, seed := range []string{
		"error-rate > 1%", "latency-p95 > 3s", "transaction-success < 99%", "request-rate<10",
		"success-rate <= 0.99", "m >= -1e3", "error-rate => 1%", "> 1", "a >", "a <> 1", "a\t>=\n1m30s", "a > 1%%",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, when string) {
		c, err := ParseCondition(when)
		if err != nil {
			if _, ok := errors.AsType[*ConditionError](err); !ok {
				t.Fatalf("ParseCondition(%q) failed with %T, not a *ConditionError", when, err)
			}
			return
		}
		again, err := ParseCondition(c.String())
		if err != nil {
			t.Fatalf("%q parsed to %+v, whose String %q does not parse: %v", when, c, c.String(), err)
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("%q parsed to %+v, but its String %q parses to %+v", when, c, c.String(), again)
		}
		if math.IsNaN(c.Value.Number) || math.IsInf(c.Value.Number, 0) {
			t.Fatalf("%q parsed to a value that is not finite: %+v", when, c)
		}
	})
}
