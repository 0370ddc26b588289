package notify

import (
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"github.com/meshcanary/meshcanary/pkg/policy"
)

func TestValidateNotifyReportsEachBadRoute(t *testing.T) {
	tests := []struct {
		name   string
		routes []policy.NotifyRoute
		want   []string // "type field" per error
	}{
		{
			name:   "the issue's routes are valid",
			routes: []policy.NotifyRoute{{On: []string{"rolledBack", "stuck"}, To: "pagerduty"}, {On: []string{"all"}, To: "slack"}},
		},
		{
			name:   "every event is valid",
			routes: []policy.NotifyRoute{{On: policy.NotifyEvents(), To: "audit-log"}},
		},
		{
			name:   "an unknown event is not supported",
			routes: []policy.NotifyRoute{{On: []string{"rolledback"}, To: "slack"}},
			want:   []string{"FieldValueNotSupported notify[0].on[0]"},
		},
		{
			name:   "a route without events is incomplete",
			routes: []policy.NotifyRoute{{To: "slack"}},
			want:   []string{"FieldValueRequired notify[0].on"},
		},
		{
			name:   "a route without a channel is incomplete",
			routes: []policy.NotifyRoute{{On: []string{"all"}}},
			want:   []string{"FieldValueRequired notify[0].to"},
		},
		{
			name:   "a channel name that cannot be a Secret key prefix is invalid",
			routes: []policy.NotifyRoute{{On: []string{"all"}, To: "Slack.Payments"}},
			want:   []string{"FieldValueInvalid notify[0].to"},
		},
		{
			name:   "an event listed twice is a duplicate",
			routes: []policy.NotifyRoute{{On: []string{"stuck", "stuck"}, To: "slack"}},
			want:   []string{"FieldValueDuplicate notify[0].on[1]"},
		},
		{
			name:   "all with other events is redundant",
			routes: []policy.NotifyRoute{{On: []string{"all", "stuck"}, To: "slack"}},
			want:   []string{"FieldValueInvalid notify[0].on"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := policy.ValidateNotify(tt.routes, field.NewPath("notify"))
			assertErrors(t, errs, tt.want)
		})
	}
}

func TestUnknownChannelNamesAreValidationErrors(t *testing.T) {
	routes := []policy.NotifyRoute{
		{On: []string{"rolledBack"}, To: "pagerduty"},
		{On: []string{"all"}, To: "slack"},
		{On: []string{"all"}, To: "teams"},
	}
	errs := policy.ValidateNotifyChannels(routes, []string{"slack", "pagerduty"}, field.NewPath("notify"))
	assertErrors(t, errs, []string{"FieldValueNotFound notify[2].to"})
	if !strings.Contains(errs.ToAggregate().Error(), "configured: pagerduty, slack") {
		t.Errorf("error does not list the configured channels: %v", errs)
	}
	errs = policy.ValidateNotifyChannels(routes, nil, field.NewPath("notify"))
	assertErrors(t, errs, []string{"FieldValueNotFound notify[0].to", "FieldValueNotFound notify[1].to", "FieldValueNotFound notify[2].to"})
}

func assertErrors(t *testing.T, errs field.ErrorList, want []string) {
	t.Helper()
	var got []string
	for _, e := range errs {
		got = append(got, string(e.Type)+" "+e.Field)
	}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("errors = %v (%v), want %v", got, errs, want)
	}
}

func TestNotifyRoutesReadAsTheIssueWritesThem(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		want    []policy.NotifyRoute
		wantErr string
	}{
		{
			name: "an unquoted on with a list and with a single event",
			yaml: "notify:\n- on: [rolledBack, stuck]\n  to: pagerduty\n- {on: all, to: slack}\n",
			want: []policy.NotifyRoute{{On: []string{"rolledBack", "stuck"}, To: "pagerduty"}, {On: []string{"all"}, To: "slack"}},
		},
		{
			name: "a quoted on",
			yaml: "notify:\n- \"on\": stuck\n  to: slack\n",
			want: []policy.NotifyRoute{{On: []string{"stuck"}, To: "slack"}},
		},
		{
			name: "a null route is left empty for validation to report",
			yaml: "notify:\n- null\n",
			want: []policy.NotifyRoute{{}},
		},
		{
			name:    "on written both quoted and unquoted is an error",
			yaml:    "notify:\n- \"on\": all\n  on: stuck\n  to: slack\n",
			wantErr: "on is given twice",
		},
		{
			name:    "an unknown field is an error",
			yaml:    "notify:\n- on: all\n  to: slack\n  channel: x\n",
			wantErr: `unknown field "channel"`,
		},
		{
			name:    "a mapping for on is an error",
			yaml:    "notify:\n- on: {a: b}\n  to: slack\n",
			wantErr: "on: expected an event or a list of events",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc struct {
				Notify []policy.NotifyRoute `json:"notify"`
			}
			err := yaml.UnmarshalStrict([]byte(tt.yaml), &doc)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(doc.Notify)
			want, _ := json.Marshal(tt.want)
			if string(got) != string(want) {
				t.Errorf("routes = %s, want %s", got, want)
			}
		})
	}
}
