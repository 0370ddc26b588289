package policy

import (
	"encoding/json"
	"errors"
	"github.com/meshcanary/meshcanary/pkg/stages"
	"reflect"
	"strings"
	"testing"
	"time"
)

// paymentPlan is the payment team's release plan written as a policy:
// blue/green with an hour's watch, deploys at 14:00 on weekdays within
// office hours, nothing over Christmas, every kind of gate, and rules that
// page on errors and warn on latency.
const paymentPlan = `policies:
- name: payments
  strategy: blueGreen
  monitor: 1h
  window: "* 9-16 * * 1-5"
  startAt: "0 14 * * *"
  freeze:
  - "CRON_TZ=Europe/Paris * * 24-26 12 *"
  checks:
  - {metric: error-rate, max: "1%"}
  rules:
  - {when: "error-rate > 1%", for: 5m, action: rollback, notify: [pagerduty, slack]}
  - {when: "latency-p95 > 3s", action: alert, notify: [slack]}
  gates:
  - {name: smoke, type: pre-rollout, url: "https://ci.example.com/gates/smoke"}
  - {name: load, type: pre-stage, stage: 1, url: "https://ci.example.com/gates/load", timeout: 5m, retries: 0}
  - {name: synthetic, type: during-stage, stage: 1, url: "http://synthetic.shop.svc:8080/run", onFailure: hold}
  - {name: release-manager, type: confirm-promotion}
  notify:
  - {on: [rolledBack, stuck], to: pagerduty}
  - {on: all, to: slack}
`

func TestParsePaymentPlan(t *testing.T) {
	f, err := Parse([]byte(paymentPlan))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	p := f.Policies[0]
	if p.Strategy != StrategyBlueGreen || p.Monitor.Duration != time.Hour || p.StuckAfter.Duration != DefaultStuckAfter {
		t.Errorf("strategy, monitor, stuckAfter = %s, %v, %v; want blueGreen, 1h0m0s, 30m0s", p.Strategy, p.Monitor, p.StuckAfter)
	}

	wantRules := []Rule{
		{Name: "error-rate > 1%", When: "error-rate > 1%", For: Duration{5 * time.Minute}, Action: ActionRollback, Notify: []string{"pagerduty", "slack"}},
		{Name: "latency-p95 > 3s", When: "latency-p95 > 3s", Action: ActionAlert, Notify: []string{"slack"}},
	}
	if !reflect.DeepEqual(p.Rules, wantRules) {
		t.Errorf("rules = %+v; want %+v", p.Rules, wantRules)
	}
	errorRate, err := ParseCondition(p.Rules[0].When)
	if err != nil || !errorRate.Holds(0.02) || errorRate.Holds(0.01) {
		t.Errorf("the error-rate rule must hold above 1%% only: %+v, %v", errorRate, err)
	}
	latency, err := ParseCondition(p.Rules[1].When)
	if err != nil || !latency.Holds(3.2) || latency.Holds(2.9) {
		t.Errorf("the latency rule must hold above 3s only: %+v, %v", latency, err)
	}

	wantGates := []Gate{
		{Name: "smoke", Type: GatePreRollout, URL: "https://ci.example.com/gates/smoke", Timeout: Duration{time.Minute}, Retries: new(2), OnFailure: OnFailureRollback},
		{Name: "load", Type: GatePreStage, Stage: 1, URL: "https://ci.example.com/gates/load", Timeout: Duration{5 * time.Minute}, Retries: new(0), OnFailure: OnFailureRollback},
		{Name: "synthetic", Type: GateDuringStage, Stage: 1, URL: "http://synthetic.shop.svc:8080/run", Timeout: Duration{time.Minute}, Retries: new(2), OnFailure: OnFailureHold},
		{Name: "release-manager", Type: GateConfirmPromotion, Timeout: Duration{time.Minute}, Retries: new(2), OnFailure: OnFailureRollback},
	}
	if !reflect.DeepEqual(p.Gates, wantGates) {
		t.Errorf("gates = %+v; want %+v", p.Gates, wantGates)
	}
	wantNotify := []NotifyRoute{{On: []string{NotifyRolledBack, NotifyStuck}, To: "pagerduty"}, {On: []string{NotifyAll}, To: "slack"}}
	if !reflect.DeepEqual(p.Notify, wantNotify) {
		t.Errorf("notify = %+v; want %+v", p.Notify, wantNotify)
	}

	// 2024-06-05 is a Wednesday, 2024-06-08 a Saturday.
	window, err := ParseSchedule(p.Window)
	if err != nil {
		t.Fatal(err)
	}
	if !stages.Matches(window, at("2024-06-05T10:30:00Z")) || stages.Matches(window, at("2024-06-05T17:00:00Z")) || stages.Matches(window, at("2024-06-08T10:30:00Z")) {
		t.Errorf("the window must match weekday office hours only")
	}
	startAt, err := ParseSchedule(p.StartAt)
	if err != nil {
		t.Fatal(err)
	}
	if got := startAt.Next(at("2024-06-05T09:12:00Z")); !got.Equal(at("2024-06-05T14:00:00Z")) {
		t.Errorf("a release at 09:12 starts at %v; want 14:00 the same day", got)
	}
	freeze, err := ParseSchedule(p.Freeze[0])
	if err != nil {
		t.Fatal(err)
	}
	// Christmas in Paris begins at 23:00 UTC the day before.
	if !stages.Matches(freeze, at("2024-12-23T23:00:00Z")) || stages.Matches(freeze, at("2024-12-23T22:59:00Z")) {
		t.Errorf("the freeze must follow Paris time")
	}

	// What Parse accepts marshals to a file that parses to the same policy.
	out, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(out)
	if err != nil {
		t.Fatalf("the marshalled plan does not parse: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(again.Policies[0], p) {
		t.Errorf("round trip changed the plan:\n%+v\nwant\n%+v", again.Policies[0], p)
	}
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// invalidRolloutFile holds one problem of each kind in the rollout fields.
// All must be reported at once, ordered as the file reads.
const invalidRolloutFile = `policies:
- name: payments
  strategy: rolling
  monitor: 500ms
  window: "9-17 * * 1-5"
  freeze: ["* * 24-26 12 *", "* * 32 12 *"]
  startAt: "14:00"
  stuckAfter: -1m
  stages: [{weight: 10}, {weight: 100}]
  rules:
  - {when: "error-rate is high", action: rollback}
  - {when: "saturation > 0.9", for: -1m, action: page, notify: [Slack]}
  - {when: "latency-p95 > 5%", action: alert}
  - {name: dup, when: "error-rate > 1%", action: rollback}
  - {name: dup, when: "error-rate > 2%", action: rollback}
  gates:
  - {name: Smoke, type: pre-rollout, stage: 1, url: "/gates/smoke"}
  - {name: load, type: pre-stage, url: "https://ci.example.com/load", timeout: 0s, retries: 11, onFailure: retry}
  - {name: load, type: during-stage, stage: 3, url: "ftp://ci.example.com/x"}
  - {name: approve, type: confirm-promotion, url: "https://example.com"}
  - {name: approve-again, type: confirm-promotion}
  - {name: other, type: post-stage}
  notify:
  - {on: [deployed], to: slack}
`

func TestParseReportsEveryRolloutProblem(t *testing.T) {
	_, err := Parse([]byte(invalidRolloutFile))
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("Parse error = %v; want a *ValidationError", err)
	}
	wantPaths := []string{
		"policies[0].strategy",
		"policies[0].monitor",
		"policies[0].window",
		"policies[0].freeze[1]",
		"policies[0].startAt",
		"policies[0].stuckAfter",
		"policies[0].rules[0].when",
		"policies[0].rules[1].when",
		"policies[0].rules[1].for",
		"policies[0].rules[1].action",
		"policies[0].rules[1].notify[0]",
		"policies[0].rules[2].when",
		"policies[0].rules[4].name",
		"policies[0].gates[0].name",
		"policies[0].gates[0].stage",
		"policies[0].gates[0].url",
		"policies[0].gates[1].stage",
		"policies[0].gates[1].timeout",
		"policies[0].gates[1].retries",
		"policies[0].gates[1].onFailure",
		"policies[0].gates[2].name",
		"policies[0].gates[2].stage",
		"policies[0].gates[2].url",
		"policies[0].gates[3].url",
		"policies[0].gates[4].type",
		"policies[0].gates[5].type",
		"policies[0].notify[0].on[0]",
	}
	var got []string
	for _, fe := range verr.Errors {
		got = append(got, fe.Field)
	}
	if !reflect.DeepEqual(got, wantPaths) {
		t.Errorf("errors at\n%s\nwant\n%s\nerror: %v", strings.Join(got, "\n"), strings.Join(wantPaths, "\n"), err)
	}
}

func TestParseRejectsRolloutProblems(t *testing.T) {
	tests := []struct {
		name       string
		policy     string // one policy, indented as an item of policies
		wantPath   string
		wantDetail string
	}{
		{
			name:       "an unknown strategy is rejected naming the supported ones",
			policy:     "name: p\n  strategy: rolling",
			wantPath:   "policies[0].strategy",
			wantDetail: `supported values: "canary", "blueGreen"`,
		},
		{
			name:       "a strategy in the wrong case is rejected",
			policy:     "name: p\n  strategy: bluegreen",
			wantPath:   "policies[0].strategy",
			wantDetail: "Unsupported value",
		},
		{
			name:       "a monitor below one second is rejected",
			policy:     "name: p\n  monitor: 500ms",
			wantPath:   "policies[0].monitor",
			wantDetail: "at least 1s",
		},
		{
			name:       "a monitor written as zero is rejected rather than defaulted",
			policy:     "name: p\n  monitor: 0s",
			wantPath:   "policies[0].monitor",
			wantDetail: "at least 1s",
		},
		{
			name:       "a window of four fields is rejected saying what a schedule looks like",
			policy:     "name: p\n  window: \"9-17 * * 1-5\"",
			wantPath:   "policies[0].window",
			wantDetail: `expected a cron schedule of 5 fields like "* 9-16 * * 1-5", optionally prefixed with CRON_TZ=<zone>`,
		},
		{
			name:       "a window with six fields is rejected",
			policy:     "name: p\n  window: \"0 * 9-16 * * 1-5\"",
			wantPath:   "policies[0].window",
			wantDetail: "found 6",
		},
		{
			name:       "a window in an unknown time zone is rejected",
			policy:     "name: p\n  window: \"CRON_TZ=Mars/Olympus * 9-16 * * 1-5\"",
			wantPath:   "policies[0].window",
			wantDetail: "bad location Mars/Olympus",
		},
		{
			name:       "a zone without a schedule is rejected rather than crashing the parser",
			policy:     "name: p\n  window: \"CRON_TZ=Europe/Paris\"",
			wantPath:   "policies[0].window",
			wantDetail: "must be followed by a space and the schedule",
		},
		{
			name:       "a window repeating @every is rejected because it names no minutes",
			policy:     "name: p\n  window: \"@every 1h\"",
			wantPath:   "policies[0].window",
			wantDetail: "@every",
		},
		{
			name:       "a window in the controller's Local zone is rejected",
			policy:     "name: p\n  window: \"TZ=Local * 9-16 * * 1-5\"",
			wantPath:   "policies[0].window",
			wantDetail: "Local",
		},
		{
			name:       "a freeze entry out of range is rejected naming its index",
			policy:     "name: p\n  freeze: [\"* * 24-26 12 *\", \"* * 32 12 *\"]",
			wantPath:   "policies[0].freeze[1]",
			wantDetail: "above maximum",
		},
		{
			name:       "an empty freeze entry is rejected",
			policy:     "name: p\n  freeze: [\"\"]",
			wantPath:   "policies[0].freeze[0]",
			wantDetail: "expected a cron schedule",
		},
		{
			name:       "a freeze given as one string rather than a list is rejected",
			policy:     "name: p\n  freeze: \"* * 24-26 12 *\"",
			wantPath:   "policies[0].freeze",
			wantDetail: "expected a list",
		},
		{
			name:       "a start time written as a clock time is rejected",
			policy:     "name: p\n  startAt: \"14:00\"",
			wantPath:   "policies[0].startAt",
			wantDetail: "expected a cron schedule",
		},
		{
			name:       "a negative stuck-after is rejected",
			policy:     "name: p\n  stuckAfter: -1m",
			wantPath:   "policies[0].stuckAfter",
			wantDetail: "must not be negative",
		},
		{
			name:       "a stuck-after written as zero is rejected because it would silently become 30m",
			policy:     "name: p\n  stuckAfter: 0s",
			wantPath:   "policies[0].stuckAfter",
			wantDetail: "default 30m",
		},
		{
			name:       "a rule whose condition has no operator is rejected saying what a condition looks like",
			policy:     "name: p\n  rules: [{when: \"error-rate is high\", action: rollback}]",
			wantPath:   "policies[0].rules[0].when",
			wantDetail: `expected "<metric> <op> <value>" with op one of >, >=, <, <=`,
		},
		{
			name:       "a rule with a mistyped operator is rejected naming the operators",
			policy:     "name: p\n  rules: [{when: \"error-rate => 1%\", action: rollback}]",
			wantPath:   "policies[0].rules[0].when",
			wantDetail: "op must be one of >, >=, <, <=",
		},
		{
			name:       "a rule whose value is unreadable is rejected naming the accepted spellings",
			policy:     "name: p\n  rules: [{when: \"error-rate > 1x\", action: rollback}]",
			wantPath:   "policies[0].rules[0].when",
			wantDetail: valueExpected,
		},
		{
			name:       "a rule without a condition is rejected",
			policy:     "name: p\n  rules: [{action: rollback}]",
			wantPath:   "policies[0].rules[0].when",
			wantDetail: "Required",
		},
		{
			name:       "a rule on a metric that is neither built in nor defined is rejected",
			policy:     "name: p\n  rules: [{when: \"saturation > 0.9\", action: alert}]",
			wantPath:   "policies[0].rules[0].when",
			wantDetail: `metric "saturation" is neither built in`,
		},
		{
			name:       "a latency rule with a percentage is rejected",
			policy:     "name: p\n  rules: [{when: \"latency-p95 > 5%\", action: alert}]",
			wantPath:   "policies[0].rules[0].when",
			wantDetail: "latency thresholds are durations",
		},
		{
			name:       "a latency rule with a bare number is rejected because its unit would be a guess",
			policy:     "name: p\n  rules: [{when: \"latency-p99 > 3\", action: alert}]",
			wantPath:   "policies[0].rules[0].when",
			wantDetail: "latency thresholds are durations",
		},
		{
			name:       "an error-rate rule with a duration is rejected",
			policy:     "name: p\n  rules: [{when: \"error-rate > 2s\", action: alert}]",
			wantPath:   "policies[0].rules[0].when",
			wantDetail: "shares of requests",
		},
		{
			name:       "an error-rate rule above 100% is rejected",
			policy:     "name: p\n  rules: [{when: \"error-rate > 150%\", action: alert}]",
			wantPath:   "policies[0].rules[0].when",
			wantDetail: "from 0% to 100%",
		},
		{
			name:       "a request-rate rule with a percentage is rejected",
			policy:     "name: p\n  rules: [{when: \"request-rate < 10%\", action: pause}]",
			wantPath:   "policies[0].rules[0].when",
			wantDetail: "request rates are plain numbers",
		},
		{
			name:       "a custom metric rule with a duration is rejected",
			policy:     "name: p\n  metrics: {m: {query: up}}\n  rules: [{when: \"m > 2s\", action: alert}]",
			wantPath:   "policies[0].rules[0].when",
			wantDetail: "custom metrics are compared as numbers",
		},
		{
			name:       "a rule's error quotes the whole condition",
			policy:     "name: p\n  rules: [{when: \"latency-p95 > 5%\", action: alert}]",
			wantPath:   "policies[0].rules[0].when",
			wantDetail: `Invalid value: "latency-p95 > 5%"`,
		},
		{
			name:       "a negative for is rejected",
			policy:     "name: p\n  rules: [{when: \"error-rate > 1%\", for: -1m, action: rollback}]",
			wantPath:   "policies[0].rules[0].for",
			wantDetail: "must not be negative",
		},
		{
			name:       "a for that is not a duration is rejected",
			policy:     "name: p\n  rules: [{when: \"error-rate > 1%\", for: 5, action: rollback}]",
			wantPath:   "policies[0].rules[0].for",
			wantDetail: "expected a duration",
		},
		{
			name:       "an unknown action is rejected naming the supported ones",
			policy:     "name: p\n  rules: [{when: \"error-rate > 1%\", action: page}]",
			wantPath:   "policies[0].rules[0].action",
			wantDetail: `supported values: "rollback", "pause", "alert"`,
		},
		{
			name:       "a rule without an action is rejected",
			policy:     "name: p\n  rules: [{when: \"error-rate > 1%\"}]",
			wantPath:   "policies[0].rules[0].action",
			wantDetail: "Required",
		},
		{
			name:       "a rule notifying a channel that is no DNS label is rejected",
			policy:     "name: p\n  rules: [{when: \"error-rate > 1%\", action: alert, notify: [slack, Pager_Duty]}]",
			wantPath:   "policies[0].rules[0].notify[1]",
			wantDetail: "channel names are lowercase words joined by dashes",
		},
		{
			name:       "a rule notifying one channel twice is rejected",
			policy:     "name: p\n  rules: [{when: \"error-rate > 1%\", action: alert, notify: [slack, slack]}]",
			wantPath:   "policies[0].rules[0].notify[1]",
			wantDetail: "Duplicate value",
		},
		{
			name:       "two rules of the same name are rejected pointing at the first",
			policy:     "name: p\n  rules: [{name: errors, when: \"error-rate > 1%\", action: alert}, {name: errors, when: \"error-rate > 5%\", action: rollback}]",
			wantPath:   "policies[0].rules[1].name",
			wantDetail: "rules[0] has the same name",
		},
		{
			name:       "two unnamed rules with the same condition are rejected as the same name",
			policy:     "name: p\n  rules: [{when: \"error-rate > 1%\", action: alert}, {when: \"error-rate > 1%\", action: rollback}]",
			wantPath:   "policies[0].rules[1].name",
			wantDetail: "named by its when",
		},
		{
			name:       "a gate without a name is rejected",
			policy:     "name: p\n  gates: [{type: pre-rollout, url: \"https://ci.example.com\"}]",
			wantPath:   "policies[0].gates[0].name",
			wantDetail: "Required",
		},
		{
			name:       "a gate name that is no DNS label is rejected",
			policy:     "name: p\n  gates: [{name: Smoke_Test, type: pre-rollout, url: \"https://ci.example.com\"}]",
			wantPath:   "policies[0].gates[0].name",
			wantDetail: "RFC 1123",
		},
		{
			name:       "two gates of the same name are rejected pointing at the first",
			policy:     "name: p\n  gates: [{name: smoke, type: pre-rollout, url: \"https://a.example.com\"}, {name: smoke, type: pre-rollout, url: \"https://b.example.com\"}]",
			wantPath:   "policies[0].gates[1].name",
			wantDetail: "gates[0] has the same name",
		},
		{
			name:       "an unknown gate type is rejected naming the supported ones",
			policy:     "name: p\n  gates: [{name: g, type: post-stage, url: \"https://ci.example.com\"}]",
			wantPath:   "policies[0].gates[0].type",
			wantDetail: `supported values: "pre-rollout", "pre-stage", "during-stage", "confirm-promotion"`,
		},
		{
			name:       "a gate without a type is rejected, and nothing that depends on the type",
			policy:     "name: p\n  gates: [{name: g}]",
			wantPath:   "policies[0].gates[0].type",
			wantDetail: "Required",
		},
		{
			name:       "a pre-stage gate without a stage is rejected",
			policy:     "name: p\n  gates: [{name: g, type: pre-stage, url: \"https://ci.example.com\"}]",
			wantPath:   "policies[0].gates[0].stage",
			wantDetail: "Required",
		},
		{
			name:       "a during-stage gate beyond the last stage is rejected naming the range",
			policy:     "name: p\n  stages: [{weight: 10}, {weight: 100}]\n  gates: [{name: g, type: during-stage, stage: 3, url: \"https://ci.example.com\"}]",
			wantPath:   "policies[0].gates[0].stage",
			wantDetail: "from 1 to 2",
		},
		{
			name:       "a negative gate stage is rejected",
			policy:     "name: p\n  gates: [{name: g, type: pre-stage, stage: -1, url: \"https://ci.example.com\"}]",
			wantPath:   "policies[0].gates[0].stage",
			wantDetail: "from 1 to 4",
		},
		{
			name:       "a blue/green gate on a stage other than 1 is rejected",
			policy:     "name: p\n  strategy: blueGreen\n  gates: [{name: g, type: pre-stage, stage: 2, url: \"https://ci.example.com\"}]",
			wantPath:   "policies[0].gates[0].stage",
			wantDetail: "single stage, 1",
		},
		{
			name:       "a pre-rollout gate with a stage is rejected",
			policy:     "name: p\n  gates: [{name: g, type: pre-rollout, stage: 1, url: \"https://ci.example.com\"}]",
			wantPath:   "policies[0].gates[0].stage",
			wantDetail: "only pre-stage and during-stage gates belong to a stage",
		},
		{
			name:       "a confirm-promotion gate with a stage is rejected",
			policy:     "name: p\n  gates: [{name: g, type: confirm-promotion, stage: 2}]",
			wantPath:   "policies[0].gates[0].stage",
			wantDetail: "Forbidden",
		},
		{
			name:       "a webhook gate without a URL is rejected",
			policy:     "name: p\n  gates: [{name: g, type: pre-rollout}]",
			wantPath:   "policies[0].gates[0].url",
			wantDetail: "Required",
		},
		{
			name:       "a relative gate URL is rejected",
			policy:     "name: p\n  gates: [{name: g, type: pre-rollout, url: /gates/smoke}]",
			wantPath:   "policies[0].gates[0].url",
			wantDetail: "absolute http or https URL",
		},
		{
			name:       "a gate URL of another scheme is rejected",
			policy:     "name: p\n  gates: [{name: g, type: pre-rollout, url: \"ftp://ci.example.com/smoke\"}]",
			wantPath:   "policies[0].gates[0].url",
			wantDetail: "absolute http or https URL",
		},
		{
			name:       "a gate URL without a host is rejected",
			policy:     "name: p\n  gates: [{name: g, type: pre-rollout, url: \"https://:8080/smoke\"}]",
			wantPath:   "policies[0].gates[0].url",
			wantDetail: "absolute http or https URL",
		},
		{
			name:       "a gate URL holding credentials is rejected without echoing the password",
			policy:     "name: p\n  gates: [{name: g, type: pre-rollout, url: \"https://ci:s3cret@ci.example.com/smoke\"}]",
			wantPath:   "policies[0].gates[0].url",
			wantDetail: `"https://ci:xxxxx@ci.example.com/smoke": must not hold credentials`,
		},
		{
			name:       "a confirm-promotion gate with a URL is rejected",
			policy:     "name: p\n  gates: [{name: g, type: confirm-promotion, url: \"https://ci.example.com\"}]",
			wantPath:   "policies[0].gates[0].url",
			wantDetail: "meshcanary.io/approve",
		},
		{
			name:       "a gate timeout below one second is rejected",
			policy:     "name: p\n  gates: [{name: g, type: pre-rollout, url: \"https://ci.example.com\", timeout: 100ms}]",
			wantPath:   "policies[0].gates[0].timeout",
			wantDetail: "at least 1s",
		},
		{
			name:       "a gate timeout written as zero is rejected rather than defaulted",
			policy:     "name: p\n  gates: [{name: g, type: pre-rollout, url: \"https://ci.example.com\", timeout: 0s}]",
			wantPath:   "policies[0].gates[0].timeout",
			wantDetail: "at least 1s",
		},
		{
			name:       "more than ten retries are rejected",
			policy:     "name: p\n  gates: [{name: g, type: pre-rollout, url: \"https://ci.example.com\", retries: 11}]",
			wantPath:   "policies[0].gates[0].retries",
			wantDetail: "from 0 to 10",
		},
		{
			name:       "negative retries are rejected",
			policy:     "name: p\n  gates: [{name: g, type: pre-rollout, url: \"https://ci.example.com\", retries: -1}]",
			wantPath:   "policies[0].gates[0].retries",
			wantDetail: "from 0 to 10",
		},
		{
			name:       "an unknown failure mode is rejected naming the supported ones",
			policy:     "name: p\n  gates: [{name: g, type: pre-rollout, url: \"https://ci.example.com\", onFailure: retry}]",
			wantPath:   "policies[0].gates[0].onFailure",
			wantDetail: `supported values: "rollback", "hold"`,
		},
		{
			name:       "a second confirm-promotion gate is rejected pointing at the first",
			policy:     "name: p\n  gates: [{name: a, type: confirm-promotion}, {name: b, type: confirm-promotion}]",
			wantPath:   "policies[0].gates[1].type",
			wantDetail: "gates[0] already waits for approval",
		},
		{
			name:       "a notification route to an unknown event is rejected",
			policy:     "name: p\n  notify: [{on: [deployed], to: slack}]",
			wantPath:   "policies[0].notify[0].on[0]",
			wantDetail: "Unsupported value",
		},
		{
			name:       "a notification route without a channel is rejected",
			policy:     "name: p\n  notify: [{on: all}]",
			wantPath:   "policies[0].notify[0].to",
			wantDetail: "Required",
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

func TestParseAcceptsRolloutFields(t *testing.T) {
	tests := []struct {
		name  string
		in    string // one policy, indented as an item of policies
		check func(t *testing.T, p Policy)
	}{
		{
			name: "a policy without a strategy is a canary",
			in:   "name: p",
			check: func(t *testing.T, p Policy) {
				if p.Strategy != StrategyCanary || p.Monitor.Duration != DefaultMonitor || p.StuckAfter.Duration != DefaultStuckAfter {
					t.Errorf("got %s %v %v; want canary 10m0s 30m0s", p.Strategy, p.Monitor, p.StuckAfter)
				}
			},
		},
		{
			name: "a blue/green gate on stage 1 is accepted whatever the stages",
			in:   "name: p\n  strategy: blueGreen\n  stages: [{weight: 100}]\n  gates: [{name: g, type: during-stage, stage: 1, url: \"https://ci.example.com\"}]",
			check: func(t *testing.T, p Policy) {
				if p.Gates[0].Stage != 1 {
					t.Errorf("stage = %d; want 1", p.Gates[0].Stage)
				}
			},
		},
		{
			name: "a gate on the last stage is accepted",
			in:   "name: p\n  gates: [{name: g, type: pre-stage, stage: 4, url: \"http://gate.ns.svc:8080/check?x=1\"}]",
			check: func(t *testing.T, p Policy) {
				if p.Gates[0].Stage != 4 {
					t.Errorf("stage = %d; want 4", p.Gates[0].Stage)
				}
			},
		},
		{
			name: "zero retries are kept, not defaulted",
			in:   "name: p\n  gates: [{name: g, type: pre-rollout, url: \"https://ci.example.com\", retries: 0}]",
			check: func(t *testing.T, p Policy) {
				if got := p.Gates[0].RetriesOrDefault(); got != 0 {
					t.Errorf("retries = %d; want 0", got)
				}
			},
		},
		{
			name: "ten retries are accepted",
			in:   "name: p\n  gates: [{name: g, type: pre-rollout, url: \"https://ci.example.com\", retries: 10}]",
			check: func(t *testing.T, p Policy) {
				if got := p.Gates[0].RetriesOrDefault(); got != 10 {
					t.Errorf("retries = %d; want 10", got)
				}
			},
		},
		{
			name: "schedules may use descriptors and either zone prefix",
			in:   "name: p\n  window: \"TZ=America/New_York * 9-16 * * MON-FRI\"\n  freeze: [\"@yearly\", \"CRON_TZ=UTC 0-59 0 * * SUN\"]\n  startAt: \"@daily\"",
			check: func(t *testing.T, p Policy) {
				if len(p.Freeze) != 2 || p.StartAt != "@daily" {
					t.Errorf("got freeze %v, startAt %q", p.Freeze, p.StartAt)
				}
			},
		},
		{
			name: "a rule may compare without spaces and on a custom metric",
			in:   "name: p\n  metrics: {tx-success: {query: up}}\n  rules: [{when: \"request-rate<10\", action: pause}, {name: tx, when: \"tx-success < 99%\", for: 10m, action: rollback}]",
			check: func(t *testing.T, p Policy) {
				if p.Rules[0].Name != "request-rate<10" || p.Rules[1].Name != "tx" || p.Rules[1].For.Duration != 10*time.Minute {
					t.Errorf("rules = %+v", p.Rules)
				}
			},
		},
		{
			name: "a rule on a share may be a plain fraction",
			in:   "name: p\n  rules: [{when: \"success-rate <= 0.99\", action: alert}]",
			check: func(t *testing.T, p Policy) {
				if p.Rules[0].For.Duration != 0 {
					t.Errorf("for = %v; want 0s: act on the first interval", p.Rules[0].For)
				}
			},
		},
		{
			name: "a stuck-after of one second is accepted",
			in:   "name: p\n  stuckAfter: 1s",
			check: func(t *testing.T, p Policy) {
				if p.StuckAfter.Duration != time.Second {
					t.Errorf("stuckAfter = %v; want 1s", p.StuckAfter)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse([]byte("policies:\n- " + tt.in + "\n"))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, f.Policies[0])
		})
	}
}

func TestDefaultsOfRolloutFields(t *testing.T) {
	// rollout is the part of a policy this test is about.
	type rollout struct {
		Strategy            string
		Monitor, StuckAfter Duration
		Rules               []Rule
		Gates               []Gate
	}
	of := func(p Policy) rollout {
		return rollout{p.Strategy, p.Monitor, p.StuckAfter, p.Rules, p.Gates}
	}
	tests := []struct {
		name string
		in   Policy
		want rollout
	}{
		{
			name: "an empty policy is a canary with a 10m monitor, reported stuck after 30m",
			in:   Policy{},
			want: rollout{Strategy: StrategyCanary, Monitor: Duration{10 * time.Minute}, StuckAfter: Duration{30 * time.Minute}},
		},
		{
			name: "rules are named by their condition and gates get a 1m timeout, 2 retries and rollback",
			in: Policy{
				Rules: []Rule{{When: "error-rate > 1%", Action: ActionAlert}},
				Gates: []Gate{{Name: "g", Type: GatePreRollout, URL: "https://ci.example.com"}},
			},
			want: rollout{
				Strategy: StrategyCanary, Monitor: Duration{10 * time.Minute}, StuckAfter: Duration{30 * time.Minute},
				Rules: []Rule{{Name: "error-rate > 1%", When: "error-rate > 1%", Action: ActionAlert}},
				Gates: []Gate{{Name: "g", Type: GatePreRollout, URL: "https://ci.example.com", Timeout: Duration{time.Minute}, Retries: new(2), OnFailure: OnFailureRollback}},
			},
		},
		{
			name: "values that were set are kept, zero retries included",
			in: Policy{
				Strategy: StrategyBlueGreen, Monitor: Duration{time.Hour}, StuckAfter: Duration{time.Minute},
				Rules: []Rule{{Name: "errors", When: "error-rate > 1%", Action: ActionAlert}},
				Gates: []Gate{{Name: "g", Type: GatePreRollout, URL: "https://ci.example.com", Timeout: Duration{time.Second}, Retries: new(0), OnFailure: OnFailureHold}},
			},
			want: rollout{
				Strategy: StrategyBlueGreen, Monitor: Duration{time.Hour}, StuckAfter: Duration{time.Minute},
				Rules: []Rule{{Name: "errors", When: "error-rate > 1%", Action: ActionAlert}},
				Gates: []Gate{{Name: "g", Type: GatePreRollout, URL: "https://ci.example.com", Timeout: Duration{time.Second}, Retries: new(0), OnFailure: OnFailureHold}},
			},
		},
		{
			name: "invalid values are kept for Validate to report",
			in: Policy{
				Strategy: "rolling", Monitor: Duration{-time.Hour}, StuckAfter: Duration{-time.Minute},
				Gates: []Gate{{Timeout: Duration{-time.Second}, Retries: new(-1), OnFailure: "retry"}},
			},
			want: rollout{
				Strategy: "rolling", Monitor: Duration{-time.Hour}, StuckAfter: Duration{-time.Minute},
				Gates: []Gate{{Timeout: Duration{-time.Second}, Retries: new(-1), OnFailure: "retry"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.in
			Defaults(&p)
			if got := of(p); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Defaults gave\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestGateRetriesOrDefault(t *testing.T) {
	tests := []struct {
		name    string
		retries *int
		want    int
	}{
		{name: "unset retries are the default two", retries: nil, want: 2},
		{name: "zero retries mean a single attempt", retries: new(0), want: 0},
		{name: "set retries are returned", retries: new(7), want: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (Gate{Retries: tt.retries}).RetriesOrDefault(); got != tt.want {
				t.Errorf("RetriesOrDefault() = %d; want %d", got, tt.want)
			}
		})
	}
}

func TestValidateRolloutFieldsOfPoliciesBuiltInCode(t *testing.T) {
	valid := func(edit func(p *Policy)) Policy {
		p := Default()
		edit(&p)
		return p
	}
	tests := []struct {
		name      string
		in        Policy
		wantPaths []string
	}{
		{
			name: "a gate and a rule that skipped Defaults are reported field by field",
			in: valid(func(p *Policy) {
				p.Rules = []Rule{{When: "error-rate > 1%", Action: ActionAlert}}
				p.Gates = []Gate{{Name: "g", Type: GateConfirmPromotion}}
			}),
			wantPaths: []string{"rules[0].name", "gates[0].timeout", "gates[0].onFailure"},
		},
		{
			name: "unset retries are valid since they read as the default",
			in: valid(func(p *Policy) {
				p.Gates = []Gate{{Name: "g", Type: GateConfirmPromotion, Timeout: Duration{time.Minute}, OnFailure: OnFailureHold}}
			}),
			wantPaths: nil,
		},
		{
			name:      "a stuck-after of zero is valid in code, where it is not mistaken for unset",
			in:        valid(func(p *Policy) { p.StuckAfter = Duration{} }),
			wantPaths: nil,
		},
		{
			name: "a pre-stage gate of a policy without stages reports only the missing stages",
			in: valid(func(p *Policy) {
				p.Stages = nil
				p.Gates = []Gate{{Name: "g", Type: GatePreStage, Stage: 3, URL: "https://x.example.com", Timeout: Duration{time.Minute}, OnFailure: OnFailureHold}}
			}),
			wantPaths: []string{"stages"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, e := range Validate(tt.in, nil) {
				got = append(got, e.Field)
			}
			if !reflect.DeepEqual(got, tt.wantPaths) {
				t.Errorf("errors at %v; want %v", got, tt.wantPaths)
			}
		})
	}
}

func TestDeepCopySharesNoRolloutFields(t *testing.T) {
	f, err := Parse([]byte(paymentPlan))
	if err != nil {
		t.Fatal(err)
	}
	orig := f.Policies[0]
	cp := orig.DeepCopy()
	cp.Freeze[0] = "changed"
	cp.Rules[0].Notify[0] = "changed"
	*cp.Gates[0].Retries = 9
	cp.Notify[0].On[0] = "changed"
	if orig.Freeze[0] == "changed" || orig.Rules[0].Notify[0] == "changed" || *orig.Gates[0].Retries == 9 || orig.Notify[0].On[0] == "changed" {
		t.Errorf("a change to the copy reached the original: %+v", orig)
	}
	if !reflect.DeepEqual(f.Policies[0].DeepCopy(), f.Policies[0]) {
		t.Errorf("DeepCopy must equal its original")
	}
}
