package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// TestMain registers -update here rather than in a package-level variable.
func TestMain(m *testing.M) {
	flag.Bool("update", false, "rewrite golden files")
	flag.Parse()
	os.Exit(m.Run())
}

func updateGolden() bool {
	return flag.Lookup("update").Value.(flag.Getter).Get().(bool)
}

// documentedExample is the policy file of the user documentation, verbatim.
const documentedExample = `policies:
- name: payments
  interval: 1m            # analysis interval; values down to 1s work
  minRequests: 50         # per version per interval; fewer → inconclusive
  failureLimit: 2         # consecutive failed intervals that trigger a rollback
  metricsOutageLimit: 5   # consecutive intervals without answers from Prometheus before rolling back
  checks:                 # every stage, unless the stage lists its own
  - {metric: error-rate, max: "1%", maxIncrease: "0.5%"}    # absolute ceiling; allowed increase over stable, in points
  - {metric: latency-p95, max: 2s, maxRatio: 1.2}           # absolute ceiling; allowed ratio to stable
  - {metric: transaction-success, min: "99%"}
  metrics:
    transaction-success:
      query: sum(rate(payment_transactions_total{status="ok",namespace="{{ .Namespace }}",workload="{{ .Workload }}"}[{{ .Window }}])) / sum(rate(payment_transactions_total{namespace="{{ .Namespace }}",workload="{{ .Workload }}"}[{{ .Window }}]))
  stages:
  - {weight: 10, duration: 1h, checks: [{metric: error-rate, max: "1%"}, {metric: latency-p95, max: 2s}]}
  - {weight: 50, duration: 2h, checks: [{metric: error-rate, max: "0.5%"}, {metric: latency-p95, max: 2s}]}
  - {weight: 100, duration: 10m}
`

func TestParseDocumentedExample(t *testing.T) {
	f, err := Parse([]byte(documentedExample))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(f.Policies) != 1 {
		t.Fatalf("got %d policies; want 1", len(f.Policies))
	}
	p := f.Policies[0]
	if p.Name != "payments" || p.Interval.Duration != time.Minute || p.MinRequests != 50 || p.FailureLimit != 2 || p.MetricsOutageLimit != 5 {
		t.Errorf("policy header = %q %v %d %d %d; want payments 1m0s 50 2 5", p.Name, p.Interval, p.MinRequests, p.FailureLimit, p.MetricsOutageLimit)
	}

	if len(p.Checks) != 3 {
		t.Fatalf("got %d checks; want 3", len(p.Checks))
	}
	assertValue(t, "checks[0].max", p.Checks[0].Max, UnitPercent, 0.01)
	assertValue(t, "checks[0].maxIncrease", p.Checks[0].MaxIncrease, UnitPercent, 0.005)
	assertValue(t, "checks[1].max", p.Checks[1].Max, UnitDuration, 2)
	if p.Checks[1].MaxRatio == nil || *p.Checks[1].MaxRatio != 1.2 {
		t.Errorf("checks[1].maxRatio = %v; want 1.2", p.Checks[1].MaxRatio)
	}
	if p.Checks[2].Metric != "transaction-success" {
		t.Errorf("checks[2].metric = %q; want transaction-success", p.Checks[2].Metric)
	}
	assertValue(t, "checks[2].min", p.Checks[2].Min, UnitPercent, 0.99)

	query, err := p.Metrics["transaction-success"].Render(QueryVars{Namespace: "shop", Workload: "payments-canary", Window: "1m"})
	if err != nil {
		t.Fatalf("rendering the custom metric: %v", err)
	}
	wantQuery := `sum(rate(payment_transactions_total{status="ok",namespace="shop",workload="payments-canary"}[1m])) / sum(rate(payment_transactions_total{namespace="shop",workload="payments-canary"}[1m]))`
	if query != wantQuery {
		t.Errorf("rendered query = %s; want %s", query, wantQuery)
	}

	wantStages := []struct {
		weight   int
		duration time.Duration
		checks   int
	}{{10, time.Hour, 2}, {50, 2 * time.Hour, 2}, {100, 10 * time.Minute, 0}}
	if len(p.Stages) != len(wantStages) {
		t.Fatalf("got %d stages; want %d", len(p.Stages), len(wantStages))
	}
	for i, want := range wantStages {
		s := p.Stages[i]
		if s.Weight != want.weight || s.Duration.Duration != want.duration || len(s.Checks) != want.checks {
			t.Errorf("stages[%d] = weight %d, %v, %d checks; want %d, %v, %d", i, s.Weight, s.Duration, len(s.Checks), want.weight, want.duration, want.checks)
		}
	}
	assertValue(t, "stages[0].checks[0].max", p.Stages[0].Checks[0].Max, UnitPercent, 0.01)
	assertValue(t, "stages[1].checks[0].max", p.Stages[1].Checks[0].Max, UnitPercent, 0.005)
	assertValue(t, "stages[1].checks[1].max", p.Stages[1].Checks[1].Max, UnitDuration, 2)
	if got := p.ChecksFor(2); !reflect.DeepEqual(got, p.Checks) {
		t.Errorf("the last stage lists no checks, so it must use the policy's; got %+v", got)
	}
	if got := p.ChecksFor(0); !reflect.DeepEqual(got, p.Stages[0].Checks) {
		t.Errorf("the first stage must use its own checks; got %+v", got)
	}
}

func assertValue(t *testing.T, name string, v *Value, unit Unit, number float64) {
	t.Helper()
	if v == nil {
		t.Errorf("%s is unset; want %v %s", name, number, unit)
		return
	}
	if v.Unit != unit || v.Number != number {
		t.Errorf("%s = %v %s (raw %q); want %v %s", name, v.Number, v.Unit, v.Raw, number, unit)
	}
}

// invalidFile holds one problem of most kinds. Every one must be reported,
// each under its own path.
const invalidFile = `policies:
- name: Payments_API
  interval: 500ms
  minRequests: -5
  failureLimit: 0
  metricsOutageLimit: -1
  colour: blue
  checks:
  - {metric: latency-p95, max: "5%"}
  - {metric: error-rate, max: "1x"}
  - {metric: no-such-metric, max: 1}
  - {metric: error-rate}
  - {metric: success-rate, min: "99%", max: "90%"}
  - {metric: latency-p99, maxRatio: 0}
  metrics:
    broken: {query: 'sum(rate(x{namespace="{{ .Namespace }}"}[{{ .Nope }}]))'}
    empty: {query: ""}
  stages:
  - {weight: 50, duration: 1h}
  - {weight: 10, duration: -1m}
  - {weight: 101, canaryReplicas: 0}
  - {weight: ten}
- name: checkout
- name: checkout
`

func TestParseReportsEveryProblem(t *testing.T) {
	_, err := Parse([]byte(invalidFile))
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("Parse error = %v; want a *ValidationError", err)
	}
	wantPaths := []string{
		"policies[0].name",
		"policies[0].interval",
		"policies[0].minRequests",
		"policies[0].failureLimit",
		"policies[0].metricsOutageLimit",
		"policies[0].colour",
		"policies[0].checks[0].max",
		"policies[0].checks[1].max",
		"policies[0].checks[2].metric",
		"policies[0].checks[3]",
		"policies[0].checks[4].min",
		"policies[0].checks[5].maxRatio",
		"policies[0].metrics[broken].query",
		"policies[0].metrics[empty].query",
		"policies[0].stages[1].weight",
		"policies[0].stages[1].duration",
		"policies[0].stages[2].weight",
		"policies[0].stages[2].canaryReplicas",
		"policies[0].stages[3].weight",
		"policies[2].name",
	}
	got := map[string]bool{}
	for _, fe := range verr.Errors {
		got[fe.Field] = true
	}
	for _, p := range wantPaths {
		if !got[p] {
			t.Errorf("no error reported for %s", p)
		}
	}
	if len(verr.Errors) != len(wantPaths) {
		t.Errorf("got %d errors; want exactly %d, one per problem:\n%s", len(verr.Errors), len(wantPaths), err)
	}
	want := `policies[0].checks[1].max: Invalid value: "1x": expected a percentage like "1%", a duration like "2s" or a number`
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error text lacks %q:\n%s", want, err)
	}
	var fe *field.Error
	if !errors.As(err, &fe) {
		t.Errorf("errors.As must also reach each *field.Error")
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name       string
		policy     string // one policy, indented as an item of policies
		wantPath   string
		wantDetail string
	}{
		{
			name:       "a field unknown to the schema is rejected naming its path",
			policy:     "name: p\n  stage: []",
			wantPath:   "policies[0].stage",
			wantDetail: "unknown field",
		},
		{
			name:       "a field written in the wrong case is rejected with a suggestion",
			policy:     "name: p\n  MinRequests: 10",
			wantPath:   "policies[0].MinRequests",
			wantDetail: `did you mean "minRequests"?`,
		},
		{
			name:       "a threshold in none of the accepted spellings is rejected naming its path",
			policy:     `name: p` + "\n  " + `checks: [{metric: error-rate, max: "1x"}]`,
			wantPath:   "policies[0].checks[0].max",
			wantDetail: `expected a percentage like "1%", a duration like "2s" or a number`,
		},
		{
			name:       "an interval that is not a duration is rejected",
			policy:     "name: p\n  interval: 60",
			wantPath:   "policies[0].interval",
			wantDetail: "expected a duration",
		},
		{
			name:       "an interval below one second is rejected",
			policy:     "name: p\n  interval: 999ms",
			wantPath:   "policies[0].interval",
			wantDetail: "at least 1s",
		},
		{
			name:       "an interval written as zero is rejected rather than defaulted",
			policy:     "name: p\n  interval: 0s",
			wantPath:   "policies[0].interval",
			wantDetail: "at least 1s",
		},
		{
			name:       "a failure limit written as zero is rejected rather than defaulted",
			policy:     "name: p\n  failureLimit: 0",
			wantPath:   "policies[0].failureLimit",
			wantDetail: "at least 1",
		},
		{
			name:       "a metrics outage limit written as zero is rejected rather than defaulted",
			policy:     "name: p\n  metricsOutageLimit: 0",
			wantPath:   "policies[0].metricsOutageLimit",
			wantDetail: "at least 1",
		},
		{
			name:       "a minimum of zero requests is rejected because it would silently become 50",
			policy:     "name: p\n  minRequests: 0",
			wantPath:   "policies[0].minRequests",
			wantDetail: "default 50",
		},
		{
			name:       "a negative minimum of requests is rejected",
			policy:     "name: p\n  minRequests: -1",
			wantPath:   "policies[0].minRequests",
			wantDetail: "negative",
		},
		{
			name:       "a name that is not a DNS label is rejected",
			policy:     "name: Payments",
			wantPath:   "policies[0].name",
			wantDetail: "RFC 1123",
		},
		{
			name:       "a policy without a name is rejected",
			policy:     "interval: 1m",
			wantPath:   "policies[0].name",
			wantDetail: "Required",
		},
		{
			name:       "a latency bound written as a percentage is rejected",
			policy:     "name: p\n  checks: [{metric: latency-p99, max: \"5%\"}]",
			wantPath:   "policies[0].checks[0].max",
			wantDetail: "latency thresholds are durations",
		},
		{
			name:       "a latency bound written as a bare number is rejected because its unit would be a guess",
			policy:     "name: p\n  checks: [{metric: latency-p50, maxIncrease: 100}]",
			wantPath:   "policies[0].checks[0].maxIncrease",
			wantDetail: "latency thresholds are durations",
		},
		{
			name:       "an error-rate bound above 100% is rejected",
			policy:     "name: p\n  checks: [{metric: error-rate, max: \"150%\"}]",
			wantPath:   "policies[0].checks[0].max",
			wantDetail: "from 0% to 100%",
		},
		{
			name:       "an error-rate bound written as a plain number above 1 is rejected",
			policy:     "name: p\n  checks: [{metric: error-rate, max: 5}]",
			wantPath:   "policies[0].checks[0].max",
			wantDetail: "from 0% to 100%",
		},
		{
			name:       "a success-rate bound written as a duration is rejected",
			policy:     "name: p\n  checks: [{metric: success-rate, min: 1s}]",
			wantPath:   "policies[0].checks[0].min",
			wantDetail: "shares of requests",
		},
		{
			name:       "a request-rate bound written as a percentage is rejected",
			policy:     "name: p\n  checks: [{metric: request-rate, min: \"10%\"}]",
			wantPath:   "policies[0].checks[0].min",
			wantDetail: "plain numbers",
		},
		{
			name:       "a custom metric bound written as a duration is rejected",
			policy:     "name: p\n  checks: [{metric: m, max: 2s}]\n  metrics: {m: {query: 'up{namespace=\"{{ .Namespace }}\"}'}}",
			wantPath:   "policies[0].checks[0].max",
			wantDetail: "custom metrics are compared as numbers",
		},
		{
			name:       "a check on a metric that is neither built in nor defined is rejected",
			policy:     "name: p\n  checks: [{metric: saturation, max: 1}]",
			wantPath:   "policies[0].checks[0].metric",
			wantDetail: "nor defined under metrics",
		},
		{
			name:       "a check without a metric is rejected",
			policy:     "name: p\n  checks: [{max: 1}]",
			wantPath:   "policies[0].checks[0].metric",
			wantDetail: "Required",
		},
		{
			name:       "a check without any bound is rejected",
			policy:     "name: p\n  checks: [{metric: error-rate}]",
			wantPath:   "policies[0].checks[0]",
			wantDetail: "at least one of max, min, maxIncrease or maxRatio",
		},
		{
			name:       "a check whose min exceeds its max is rejected",
			policy:     "name: p\n  checks: [{metric: latency-p95, min: 3s, max: 2s}]",
			wantPath:   "policies[0].checks[0].min",
			wantDetail: "must not be more than max 2s",
		},
		{
			name:       "a ratio of zero is rejected",
			policy:     "name: p\n  checks: [{metric: latency-p95, maxRatio: 0}]",
			wantPath:   "policies[0].checks[0].maxRatio",
			wantDetail: "greater than 0",
		},
		{
			name:       "a ratio written as a string is rejected as the wrong type",
			policy:     "name: p\n  checks: [{metric: latency-p95, maxRatio: \"1.2\"}]",
			wantPath:   "policies[0].checks[0].maxRatio",
			wantDetail: "expected a number",
		},
		{
			name:       "a negative allowed increase of a share is rejected as out of range",
			policy:     "name: p\n  checks: [{metric: error-rate, maxIncrease: \"-1%\"}]",
			wantPath:   "policies[0].checks[0].maxIncrease",
			wantDetail: "from 0% to 100%",
		},
		{
			name:       "a negative allowed increase of a custom metric is rejected",
			policy:     "name: p\n  checks: [{metric: m, maxIncrease: -3}]\n  metrics: {m: {query: up}}",
			wantPath:   "policies[0].checks[0].maxIncrease",
			wantDetail: "cannot be negative",
		},
		{
			name:       "a stage check is validated like a policy check",
			policy:     "name: p\n  stages: [{weight: 10, checks: [{metric: latency-p95, max: \"1%\"}]}]",
			wantPath:   "policies[0].stages[0].checks[0].max",
			wantDetail: "latency thresholds are durations",
		},
		{
			name:       "stage weights that do not ascend are rejected",
			policy:     "name: p\n  stages: [{weight: 50}, {weight: 50}]",
			wantPath:   "policies[0].stages[1].weight",
			wantDetail: "more than the previous stage's weight 50",
		},
		{
			name:       "a stage weight above 100 is rejected",
			policy:     "name: p\n  stages: [{weight: 101}]",
			wantPath:   "policies[0].stages[0].weight",
			wantDetail: "from 1 to 100",
		},
		{
			name:       "a stage without a weight is rejected",
			policy:     "name: p\n  stages: [{duration: 1m}]",
			wantPath:   "policies[0].stages[0].weight",
			wantDetail: "from 1 to 100",
		},
		{
			name:       "a fractional stage weight is rejected as the wrong type",
			policy:     "name: p\n  stages: [{weight: 2.5}]",
			wantPath:   "policies[0].stages[0].weight",
			wantDetail: "whole number",
		},
		{
			name:       "a stage that is not a mapping is rejected",
			policy:     "name: p\n  stages: [10, {weight: 20}]",
			wantPath:   "policies[0].stages[0]",
			wantDetail: "expected a mapping",
		},
		{
			name:       "a stage duration written as zero is rejected rather than defaulted",
			policy:     "name: p\n  stages: [{weight: 10, duration: 0s}]",
			wantPath:   "policies[0].stages[0].duration",
			wantDetail: "longer than 0s",
		},
		{
			name:       "a negative stage duration is rejected",
			policy:     "name: p\n  stages: [{weight: 10, duration: -5m}]",
			wantPath:   "policies[0].stages[0].duration",
			wantDetail: "longer than 0s",
		},
		{
			name:       "zero canary replicas are rejected",
			policy:     "name: p\n  stages: [{weight: 10, canaryReplicas: 0}]",
			wantPath:   "policies[0].stages[0].canaryReplicas",
			wantDetail: "at least 1",
		},
		{
			name:       "canary replicas beyond an int32 are rejected as the wrong type",
			policy:     "name: p\n  stages: [{weight: 10, canaryReplicas: 3000000000}]",
			wantPath:   "policies[0].stages[0].canaryReplicas",
			wantDetail: "whole number from -2147483648 to 2147483647",
		},
		{
			name:       "a custom metric query using an unknown variable is rejected",
			policy:     "name: p\n  metrics: {m: {query: 'up{pod=\"{{ .Pod }}\"}'}}",
			wantPath:   "policies[0].metrics[m].query",
			wantDetail: "using only {{ .Namespace }}, {{ .Workload }} and {{ .Window }}",
		},
		{
			name:       "a custom metric query that is not a template is rejected",
			policy:     "name: p\n  metrics: {m: {query: 'up{namespace=\"{{ .Namespace\"}'}}",
			wantPath:   "policies[0].metrics[m].query",
			wantDetail: "parsing query template",
		},
		{
			name:       "a custom metric without a query is rejected",
			policy:     "name: p\n  metrics: {m: {}}",
			wantPath:   "policies[0].metrics[m].query",
			wantDetail: "Required",
		},
		{
			name:       "a custom metric reusing a built-in name is rejected",
			policy:     "name: p\n  metrics: {error-rate: {query: up}}",
			wantPath:   "policies[0].metrics[error-rate]",
			wantDetail: "built-in metric",
		},
		{
			name:       "a custom metric that is not a mapping is rejected",
			policy:     "name: p\n  metrics: {m: 'up'}",
			wantPath:   "policies[0].metrics[m]",
			wantDetail: "expected a mapping",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte("policies:\n- " + tt.policy + "\n"))
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Parse error = %v; want a *ValidationError", err)
			}
			for _, fe := range verr.Errors {
				if fe.Field == tt.wantPath && strings.Contains(fe.Error(), tt.wantDetail) {
					if len(verr.Errors) != 1 {
						t.Errorf("one problem must give one error; got:\n%s", err)
					}
					return
				}
			}
			t.Errorf("no error at %s containing %q; got:\n%s", tt.wantPath, tt.wantDetail, err)
		})
	}
}

func TestParseRejectsDuplicateNames(t *testing.T) {
	_, err := Parse([]byte("policies:\n- name: a\n- name: b\n- name: a\n"))
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("Parse error = %v; want a *ValidationError", err)
	}
	if len(verr.Errors) != 1 || verr.Errors[0].Field != "policies[2].name" || verr.Errors[0].Type != field.ErrorTypeDuplicate {
		t.Fatalf("want one duplicate error at policies[2].name; got %s", err)
	}
	if !strings.Contains(err.Error(), "policies[0] has the same name") {
		t.Errorf("the error must point at the first policy of that name; got %s", err)
	}
}

func TestParseRejectsWhatIsNoPolicyFile(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{name: "an empty file is rejected as more likely a mistake than a wish", in: "", wantErr: "empty"},
		{name: "a file of only comments is rejected as empty", in: "# nothing yet\n", wantErr: "empty"},
		{name: "text that is not YAML is rejected", in: "policies: [\n", wantErr: "not valid YAML"},
		{name: "a key given twice is rejected", in: "policies: []\npolicies: []\n", wantErr: "not valid YAML"},
		{name: "a list at the top is rejected", in: "- name: p\n", wantErr: "must be a mapping"},
		{name: "a scalar at the top is rejected", in: "payments\n", wantErr: "must be a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Parse = %+v, %v; want an error containing %q", f, err, tt.wantErr)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		check func(t *testing.T, f *File)
	}{
		{
			name: "a policy that names only itself gets every default",
			in:   "policies:\n- name: p\n",
			check: func(t *testing.T, f *File) {
				want := Default()
				want.Name = "p"
				if !reflect.DeepEqual(f.Policies[0], want) {
					t.Errorf("got %+v; want %+v", f.Policies[0], want)
				}
			},
		},
		{
			name: "a policy may end below 100% and promote from there",
			in:   "policies:\n- name: p\n  stages: [{weight: 10}, {weight: 50}]\n",
			check: func(t *testing.T, f *File) {
				if got := len(f.Policies[0].Stages); got != 2 {
					t.Errorf("got %d stages; want 2", got)
				}
			},
		},
		{
			name: "a stage without a duration holds for five minutes",
			in:   "policies:\n- name: p\n  stages: [{weight: 10}, {weight: 100, duration: 1m}]\n",
			check: func(t *testing.T, f *File) {
				s := f.Policies[0].Stages
				if s[0].Duration.Duration != 5*time.Minute || s[1].Duration.Duration != time.Minute {
					t.Errorf("durations = %v, %v; want 5m0s, 1m0s", s[0].Duration, s[1].Duration)
				}
			},
		},
		{
			name: "an error-rate bound may be a plain fraction",
			in:   "policies:\n- name: p\n  checks: [{metric: error-rate, max: 0.02}]\n",
			check: func(t *testing.T, f *File) {
				assertValue(t, "max", f.Policies[0].Checks[0].Max, UnitNumber, 0.02)
			},
		},
		{
			name: "a request-rate bound is a plain number",
			in:   "policies:\n- name: p\n  checks: [{metric: request-rate, min: 5}]\n",
			check: func(t *testing.T, f *File) {
				assertValue(t, "min", f.Policies[0].Checks[0].Min, UnitNumber, 5)
			},
		},
		{
			name: "a custom metric may be bounded by a plain number",
			in:   "policies:\n- name: p\n  checks: [{metric: queue-depth, max: 300}]\n  metrics: {queue-depth: {query: 'max(queue{workload=\"{{ .Workload }}\"})'}}\n",
			check: func(t *testing.T, f *File) {
				assertValue(t, "max", f.Policies[0].Checks[0].Max, UnitNumber, 300)
			},
		},
		{
			name: "a one-second interval is accepted",
			in:   "policies:\n- name: p\n  interval: 1s\n",
			check: func(t *testing.T, f *File) {
				if f.Policies[0].Interval.Duration != time.Second {
					t.Errorf("interval = %v; want 1s", f.Policies[0].Interval)
				}
			},
		},
		{
			name: "canary replicas may be fixed per stage",
			in:   "policies:\n- name: p\n  stages: [{weight: 10, canaryReplicas: 2}]\n",
			check: func(t *testing.T, f *File) {
				if r := f.Policies[0].Stages[0].CanaryReplicas; r == nil || *r != 2 {
					t.Errorf("canaryReplicas = %v; want 2", r)
				}
			},
		},
		{
			name: "null fields are left to the defaults",
			in:   "policies:\n- name: p\n  interval:\n  checks:\n",
			check: func(t *testing.T, f *File) {
				if f.Policies[0].Interval.Duration != DefaultInterval || len(f.Policies[0].Checks) != 2 {
					t.Errorf("got %+v; want the default interval and checks", f.Policies[0])
				}
			},
		},
		{
			name: "a numeric name is read as a string, as sigs.k8s.io/yaml does",
			in:   "policies:\n- name: 2024\n",
			check: func(t *testing.T, f *File) {
				if f.Policies[0].Name != "2024" {
					t.Errorf("name = %q; want 2024", f.Policies[0].Name)
				}
			},
		},
		{
			name: "a file may redefine the default policy",
			in:   "policies:\n- name: default\n  interval: 30s\n",
			check: func(t *testing.T, f *File) {
				if f.Policies[0].Interval.Duration != 30*time.Second {
					t.Errorf("interval = %v; want 30s", f.Policies[0].Interval)
				}
			},
		},
		{
			name: "an explicitly empty list of policies is accepted",
			in:   "policies: []\n",
			check: func(t *testing.T, f *File) {
				if len(f.Policies) != 0 {
					t.Errorf("got %d policies; want none", len(f.Policies))
				}
			},
		},
		{
			name: "JSON is accepted since it is YAML",
			in:   `{"policies": [{"name": "p", "checks": [{"metric": "error-rate", "max": "2%"}]}]}`,
			check: func(t *testing.T, f *File) {
				assertValue(t, "max", f.Policies[0].Checks[0].Max, UnitPercent, 0.02)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, f)
		})
	}
}

func TestDefaultMatchesGolden(t *testing.T) {
	got, err := json.MarshalIndent(Default(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	golden := filepath.Join("testdata", "default-policy.golden.json")
	if updateGolden() {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Default() changed; if intended, run go test -update.\ngot:\n%s\nwant:\n%s", got, want)
	}

	// The golden file is also a policy a user could write.
	f, err := Parse(append(append([]byte(`{"policies": [`), want...), "]}"...))
	if err != nil {
		t.Fatalf("the golden default does not parse back: %v", err)
	}
	if !reflect.DeepEqual(f.Policies[0], Default()) {
		t.Errorf("the golden default parses to %+v; want %+v", f.Policies[0], Default())
	}
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		name  string
		in    Policy
		check func(t *testing.T, p Policy)
	}{
		{
			name: "an empty policy gets the documented defaults",
			in:   Policy{Name: "p"},
			check: func(t *testing.T, p Policy) {
				if p.Interval.Duration != time.Minute || p.MinRequests != 50 || p.FailureLimit != 2 || p.MetricsOutageLimit != 5 {
					t.Errorf("got %v %d %d %d; want 1m0s 50 2 5", p.Interval, p.MinRequests, p.FailureLimit, p.MetricsOutageLimit)
				}
				var weights []int
				for _, s := range p.Stages {
					weights = append(weights, s.Weight)
					if s.Duration.Duration != 5*time.Minute {
						t.Errorf("stage %d holds %v; want 5m0s", s.Weight, s.Duration)
					}
				}
				if !reflect.DeepEqual(weights, []int{1, 10, 50, 100}) {
					t.Errorf("weights = %v; want [1 10 50 100]", weights)
				}
			},
		},
		{
			name: "the default checks compare the canary with stable",
			in:   Policy{Name: "p"},
			check: func(t *testing.T, p Policy) {
				if len(p.Checks) != 2 {
					t.Fatalf("got %d checks; want 2", len(p.Checks))
				}
				er, lat := p.Checks[0], p.Checks[1]
				if er.Metric != MetricErrorRate || lat.Metric != MetricLatencyP95 {
					t.Errorf("metrics = %s, %s; want error-rate, latency-p95", er.Metric, lat.Metric)
				}
				assertValue(t, "error-rate max", er.Max, UnitPercent, 0.05)
				assertValue(t, "error-rate maxIncrease", er.MaxIncrease, UnitPercent, 0.01)
				if lat.MaxRatio == nil || *lat.MaxRatio != 1.5 || lat.Max != nil {
					t.Errorf("latency check = %+v; want only maxRatio 1.5", lat)
				}
			},
		},
		{
			name: "values that were set are kept",
			in: Policy{
				Name: "p", Interval: Duration{10 * time.Second}, MinRequests: 7, FailureLimit: 3, MetricsOutageLimit: 9,
				Checks: []Check{{Metric: MetricRequestRate, Min: &Value{Raw: "1", Number: 1, Unit: UnitNumber}}},
				Stages: []Stage{{Weight: 20, Duration: Duration{time.Hour}}},
			},
			check: func(t *testing.T, p Policy) {
				if p.Interval.Duration != 10*time.Second || p.MinRequests != 7 || p.FailureLimit != 3 || p.MetricsOutageLimit != 9 {
					t.Errorf("set values changed: %+v", p)
				}
				if len(p.Checks) != 1 || len(p.Stages) != 1 || p.Stages[0].Duration.Duration != time.Hour {
					t.Errorf("set checks or stages changed: %+v", p)
				}
			},
		},
		{
			name: "invalid values are kept for Validate to report",
			in:   Policy{Name: "p", MinRequests: -1, FailureLimit: -2, Stages: []Stage{{Weight: 10, Duration: Duration{-time.Minute}}}},
			check: func(t *testing.T, p Policy) {
				if p.MinRequests != -1 || p.FailureLimit != -2 || p.Stages[0].Duration.Duration != -time.Minute {
					t.Errorf("invalid values were replaced: %+v", p)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.in
			Defaults(&p)
			tt.check(t, p)
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name      string
		in        Policy
		wantPaths []string
	}{
		{name: "the built-in default policy is valid", in: Default()},
		{
			name:      "a policy that skipped Defaults is reported field by field",
			in:        Policy{Name: "p"},
			wantPaths: []string{"interval", "failureLimit", "metricsOutageLimit", "stages", "strategy", "monitor"},
		},
		{
			name: "a threshold built in code without a unit is rejected",
			in: func() Policy {
				p := Default()
				p.Checks = []Check{{Metric: MetricErrorRate, Max: &Value{Raw: "1%"}}}
				return p
			}(),
			wantPaths: []string{"checks[0].max"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := Validate(tt.in, nil)
			var got []string
			for _, e := range errs {
				got = append(got, e.Field)
			}
			if !reflect.DeepEqual(got, tt.wantPaths) {
				t.Errorf("errors at %v; want %v\n%v", got, tt.wantPaths, errs.ToAggregate())
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content *string
		wantErr string
	}{
		{name: "a valid file loads", content: new("policies:\n- name: p\n")},
		{name: "a missing file is an error naming the cause", wantErr: "reading policy file"},
		{name: "an invalid file is an error naming the file", content: new("policies:\n- name: P\n"), wantErr: "bad.yaml"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "missing.yaml")
			if tt.content != nil {
				path = filepath.Join(dir, []string{"good.yaml", "", "bad.yaml"}[i])
				if err := os.WriteFile(path, []byte(*tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			f, err := LoadFile(path)
			if tt.wantErr == "" {
				if err != nil || len(f.Policies) != 1 {
					t.Fatalf("LoadFile = %+v, %v; want one policy", f, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("LoadFile error = %v; want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(documentedExample))
	f.Add([]byte(invalidFile))
	f.Add([]byte(paymentPlan))
	f.Add([]byte(invalidRolloutFile))
	f.Add([]byte("policies:\n- name: p\n"))
	f.Add([]byte("policies:\n- name: p\n  stages: [{weight: 10, canaryReplicas: 2, duration: 1m}]\n"))
	f.Add([]byte("policies:\n- name: p\n  checks: [{metric: m, max: 1, min: \"0.5%\"}]\n  metrics: {m: {query: '{{ .Window }}'}}\n"))
	f.Add([]byte(`{"policies": [{"name": "p", "interval": "1s", "minRequests": 1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		parsed, err := Parse(data)
		if err != nil {
			return
		}
		names := map[string]bool{}
		for i, p := range parsed.Policies {
			if errs := Validate(p, field.NewPath("policies").Index(i)); len(errs) > 0 {
				t.Fatalf("Parse accepted a policy that Validate rejects: %v", errs.ToAggregate())
			}
			if names[p.Name] {
				t.Fatalf("Parse accepted two policies named %q", p.Name)
			}
			names[p.Name] = true
		}
		// What Parse accepts, marshalled, must parse again: the controller
		// and the golden file both rely on the round trip.
		out, err := json.Marshal(parsed)
		if err != nil {
			t.Fatalf("marshalling an accepted file: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("an accepted file does not parse after a round trip: %v\n%s", err, out)
		}
		if len(again.Policies) != len(parsed.Policies) {
			t.Fatalf("round trip changed the number of policies")
		}
	})
}
