package annotations

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestKeysAreThePublicInterface(t *testing.T) {
	// Users and scripts write these exact strings; a change here is a
	// breaking change of meshcanary's interface.
	want := map[string]string{
		Enabled: "meshcanary.io/enabled", Canary: "meshcanary.io/canary",
		VirtualService: "meshcanary.io/virtual-service", Route: "meshcanary.io/route",
		Subsets: "meshcanary.io/subsets", Policy: "meshcanary.io/policy",
		Stages: "meshcanary.io/stages", StageDuration: "meshcanary.io/stage-duration",
		Rollback: "meshcanary.io/rollback", Promote: "meshcanary.io/promote",
		Pause: "meshcanary.io/pause", Approve: "meshcanary.io/approve", Retry: "meshcanary.io/retry",
		Phase: "meshcanary.io/phase", Weight: "meshcanary.io/weight", Stage: "meshcanary.io/stage",
		Revision: "meshcanary.io/revision", Message: "meshcanary.io/message", State: "meshcanary.io/state",
	}
	for got, want := range want {
		if got != want {
			t.Errorf("key %q; want %q", got, want)
		}
	}
	if len(want) != 19 {
		t.Errorf("two constants share a value: %d distinct keys; want 19", len(want))
	}
	if got := CommandKeys(); !reflect.DeepEqual(got, []string{Rollback, Promote, Pause, Approve, Retry}) {
		t.Errorf("CommandKeys() = %v", got)
	}
	keys := CommandKeys()
	keys[0] = "changed"
	if CommandKeys()[0] != Rollback {
		t.Error("CommandKeys must return a fresh slice each time")
	}
}

func TestIsEnabled(t *testing.T) {
	tests := []struct {
		name string
		ann  map[string]string
		want bool
	}{
		{name: "true opts in", ann: map[string]string{Enabled: "true"}, want: true},
		{name: "true in capitals opts in", ann: map[string]string{Enabled: "TRUE"}, want: true},
		{name: "false does not opt in", ann: map[string]string{Enabled: "false"}},
		{name: "a Deployment without the annotation is left alone", ann: map[string]string{}},
		{name: "nil annotations are left alone", ann: nil},
		{name: "yes is not true", ann: map[string]string{Enabled: "yes"}},
		{name: "true with spaces is not true", ann: map[string]string{Enabled: " true"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsEnabled(tt.ann); got != tt.want {
				t.Errorf("IsEnabled(%v) = %v; want %v", tt.ann, got, tt.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	defaults := Spec{
		Name: "reviews", Canary: "reviews-canary", VirtualService: "reviews",
		StableSubset: "stable", CanarySubset: "canary", Policy: "default",
	}
	with := func(change func(*Spec)) Spec {
		s := defaults
		change(&s)
		return s
	}
	tests := []struct {
		name string
		ann  map[string]string
		want Spec
	}{
		{name: "a Deployment with no annotations gets every default", ann: nil, want: defaults},
		{name: "an enabled Deployment with nothing else gets every default", ann: map[string]string{Enabled: "true"}, want: defaults},
		{name: "a disabled Deployment still parses", ann: map[string]string{Enabled: "False"}, want: defaults},
		{
			name: "every configuration annotation overrides its default",
			ann: map[string]string{
				Enabled: "true", Canary: "reviews-v2", VirtualService: "reviews-vs", Route: "primary",
				Subsets: "v1,v2", Policy: "payments", Stages: "5,25,100", StageDuration: "15m",
			},
			want: Spec{
				Name: "reviews", Canary: "reviews-v2", VirtualService: "reviews-vs", Route: "primary",
				StableSubset: "v1", CanarySubset: "v2", Policy: "payments",
				Stages: []int{5, 25, 100}, StageDuration: 15 * time.Minute,
			},
		},
		{name: "subsets may have spaces after the comma", ann: map[string]string{Subsets: "blue, green"}, want: with(func(s *Spec) { s.StableSubset, s.CanarySubset = "blue", "green" })},
		{name: "a stages override may have spaces", ann: map[string]string{Stages: " 1, 10 ,100"}, want: with(func(s *Spec) { s.Stages = []int{1, 10, 100} })},
		{name: "a stages override may be a single stage", ann: map[string]string{Stages: "100"}, want: with(func(s *Spec) { s.Stages = []int{100} })},
		{name: "a stages override may end below 100", ann: map[string]string{Stages: "10,50"}, want: with(func(s *Spec) { s.Stages = []int{10, 50} })},
		{name: "an empty route means the only route with both subsets", ann: map[string]string{Route: ""}, want: defaults},
		{name: "a canary name with dots is a valid Deployment name", ann: map[string]string{Canary: "reviews.v2"}, want: with(func(s *Spec) { s.Canary = "reviews.v2" })},
		{name: "annotations of other tools are ignored", ann: map[string]string{"example.com/stages": "x", "meshcanary.io/phase": "Progressing"}, want: defaults},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("reviews", tt.ann)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse = %+v; want %+v", got, tt.want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name string
		ann  map[string]string
		want []Problem
	}{
		{
			name: "a stages override with a word is rejected naming the annotation",
			ann:  map[string]string{Stages: "1,x,100"},
			want: []Problem{{Stages, "1,x,100", expectStages}},
		},
		{
			name: "a stages override that is not ascending is rejected naming the annotation",
			ann:  map[string]string{Stages: "10,5,100"},
			want: []Problem{{Stages, "10,5,100", expectStages}},
		},
		{
			name: "a stages override repeating a weight is rejected",
			ann:  map[string]string{Stages: "10,10"},
			want: []Problem{{Stages, "10,10", expectStages}},
		},
		{
			name: "a stages override above 100 is rejected",
			ann:  map[string]string{Stages: "50,101"},
			want: []Problem{{Stages, "50,101", expectStages}},
		},
		{
			name: "a stages override with zero is rejected",
			ann:  map[string]string{Stages: "0,100"},
			want: []Problem{{Stages, "0,100", expectStages}},
		},
		{
			name: "a stages override with a sign is rejected",
			ann:  map[string]string{Stages: "+1,100"},
			want: []Problem{{Stages, "+1,100", expectStages}},
		},
		{
			name: "a stages override with fractions is rejected",
			ann:  map[string]string{Stages: "2.5,100"},
			want: []Problem{{Stages, "2.5,100", expectStages}},
		},
		{
			name: "a stages override with an empty item is rejected",
			ann:  map[string]string{Stages: "1,,100"},
			want: []Problem{{Stages, "1,,100", expectStages}},
		},
		{
			name: "an empty stages override is rejected",
			ann:  map[string]string{Stages: ""},
			want: []Problem{{Stages, "", expectStages}},
		},
		{
			name: "a stage duration that is not a duration is rejected",
			ann:  map[string]string{StageDuration: "10"},
			want: []Problem{{StageDuration, "10", expectStageDuration}},
		},
		{
			name: "a stage duration of zero is rejected",
			ann:  map[string]string{StageDuration: "0s"},
			want: []Problem{{StageDuration, "0s", expectStageDuration}},
		},
		{
			name: "a negative stage duration is rejected",
			ann:  map[string]string{StageDuration: "-5m"},
			want: []Problem{{StageDuration, "-5m", expectStageDuration}},
		},
		{
			name: "an enabled value other than true or false is rejected",
			ann:  map[string]string{Enabled: "yes"},
			want: []Problem{{Enabled, "yes", expectBool}},
		},
		{
			name: "subsets that are the same name are rejected",
			ann:  map[string]string{Subsets: "v1,v1"},
			want: []Problem{{Subsets, "v1,v1", expectSubsets}},
		},
		{
			name: "a single subset is rejected",
			ann:  map[string]string{Subsets: "canary"},
			want: []Problem{{Subsets, "canary", expectSubsets}},
		},
		{
			name: "three subsets are rejected",
			ann:  map[string]string{Subsets: "a,b,c"},
			want: []Problem{{Subsets, "a,b,c", expectSubsets}},
		},
		{
			name: "a subset that is not a DNS label is rejected",
			ann:  map[string]string{Subsets: "stable,Canary_1"},
			want: []Problem{{Subsets, "stable,Canary_1", expectSubsets}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := Parse("reviews", tt.ann)
			var perr *ParseError
			if !errors.As(err, &perr) {
				t.Fatalf("Parse = %+v, %v; want a *ParseError", spec, err)
			}
			if !reflect.DeepEqual(perr.Problems, tt.want) {
				t.Errorf("problems = %#v; want %#v", perr.Problems, tt.want)
			}
			if !reflect.DeepEqual(spec, Spec{}) {
				t.Errorf("a failed Parse returned %+v; want the zero Spec", spec)
			}
		})
	}
}

func TestParseRejectsInvalidNames(t *testing.T) {
	long := strings.Repeat("a", 250)
	tests := []struct {
		name       string
		deployment string
		ann        map[string]string
		wantKey    string
		wantValue  string
		wantDetail string
	}{
		{name: "a canary name with capitals is rejected", deployment: "reviews", ann: map[string]string{Canary: "Reviews-Canary"}, wantKey: Canary, wantValue: "Reviews-Canary", wantDetail: "RFC 1123 subdomain"},
		{name: "an empty canary name is rejected", deployment: "reviews", ann: map[string]string{Canary: ""}, wantKey: Canary, wantValue: "", wantDetail: "expected the name of a Deployment"},
		{name: "a canary that is the stable Deployment itself is rejected", deployment: "reviews", ann: map[string]string{Canary: "reviews"}, wantKey: Canary, wantValue: "reviews", wantDetail: "names the stable Deployment itself"},
		{name: "a default canary name made too long by its suffix asks for the annotation", deployment: long, ann: nil, wantKey: Canary, wantValue: "", wantDetail: "expected to be set"},
		{name: "a virtual service name with a slash is rejected", deployment: "reviews", ann: map[string]string{VirtualService: "istio/reviews"}, wantKey: VirtualService, wantValue: "istio/reviews", wantDetail: "VirtualService"},
		{name: "a route name with dots is rejected as not a DNS label", deployment: "reviews", ann: map[string]string{Route: "a.b"}, wantKey: Route, wantValue: "a.b", wantDetail: "must not contain dots"},
		{name: "an empty policy name is rejected", deployment: "reviews", ann: map[string]string{Policy: ""}, wantKey: Policy, wantValue: "", wantDetail: "expected the name of a policy"},
		{name: "a policy name with capitals is rejected", deployment: "reviews", ann: map[string]string{Policy: "Payments"}, wantKey: Policy, wantValue: "Payments", wantDetail: "RFC 1123 label"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.deployment, tt.ann)
			var perr *ParseError
			if !errors.As(err, &perr) || len(perr.Problems) != 1 {
				t.Fatalf("Parse error = %v; want a *ParseError with one problem", err)
			}
			p := perr.Problems[0]
			if p.Key != tt.wantKey || p.Value != tt.wantValue || !strings.Contains(p.Expected, tt.wantDetail) {
				t.Errorf("problem = %#v; want key %s, value %q and %q in what was expected", p, tt.wantKey, tt.wantValue, tt.wantDetail)
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	_, err := Parse("reviews", map[string]string{
		Enabled:        "on",
		Canary:         "Reviews",
		VirtualService: "",
		Route:          "Primary",
		Subsets:        "stable",
		Policy:         "no_such",
		Stages:         "1,x,100",
		StageDuration:  "soon",
	})
	var perr *ParseError
	if !errors.As(err, &perr) {
		t.Fatalf("Parse error = %v; want a *ParseError", err)
	}
	var keys []string
	for _, p := range perr.Problems {
		keys = append(keys, p.Key)
	}
	if want := ConfigKeys(); !reflect.DeepEqual(keys, want) {
		t.Errorf("problems for %v; want one for each of %v, in that order", keys, want)
	}
	want := `annotation meshcanary.io/stages: "1,x,100": expected comma-separated whole-number weights from 1 to 100 in ascending order`
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error text lacks %q:\n%s", want, err)
	}
	var p Problem
	if !errors.As(err, &p) {
		t.Error("errors.As must also reach each Problem")
	}
}

func TestParseCommands(t *testing.T) {
	tests := []struct {
		name    string
		ann     map[string]string
		want    Commands
		wantErr []Problem
	}{
		{name: "a Deployment without commands has none", ann: map[string]string{Enabled: "true"}, want: Commands{}},
		{name: "a rollback carries its reason", ann: map[string]string{Rollback: "latency regression in EU"}, want: Commands{Rollback: "latency regression in EU"}},
		{name: "promote true promotes", ann: map[string]string{Promote: "true"}, want: Commands{Promote: true}},
		{name: "promote in capitals promotes", ann: map[string]string{Promote: "True"}, want: Commands{Promote: true}},
		{name: "promote false does not promote", ann: map[string]string{Promote: "false"}, want: Commands{}},
		{name: "pause true pauses", ann: map[string]string{Pause: "TRUE"}, want: Commands{Pause: true}},
		{name: "pause false resumes", ann: map[string]string{Pause: "false"}, want: Commands{}},
		{name: "approve carries any value", ann: map[string]string{Approve: "alice"}, want: Commands{Approve: "alice"}},
		{
			name: "several commands are read together",
			ann:  map[string]string{Rollback: "bad", Promote: "true", Pause: "true", Approve: "yes"},
			want: Commands{Rollback: "bad", Promote: true, Pause: true, Approve: "yes"},
		},
		{name: "a rollback without a reason is rejected", ann: map[string]string{Rollback: ""}, wantErr: []Problem{{Rollback, "", expectReason}}},
		{name: "a rollback whose reason is blank is rejected", ann: map[string]string{Rollback: "  "}, wantErr: []Problem{{Rollback, "  ", expectReason}}},
		{name: "promote with a value other than true or false is rejected naming the key", ann: map[string]string{Promote: "now"}, wantErr: []Problem{{Promote, "now", expectBool}}},
		{name: "pause with a value other than true or false is rejected naming the key", ann: map[string]string{Pause: "1"}, wantErr: []Problem{{Pause, "1", expectBool}}},
		{name: "an empty approval is rejected as indistinguishable from none", ann: map[string]string{Approve: ""}, wantErr: []Problem{{Approve, "", expectApprove}}},
		{
			name:    "every malformed command is reported",
			ann:     map[string]string{Rollback: "", Promote: "yes", Pause: "no"},
			wantErr: []Problem{{Rollback, "", expectReason}, {Promote, "yes", expectBool}, {Pause, "no", expectBool}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCommands(tt.ann)
			if tt.wantErr != nil {
				var perr *ParseError
				if !errors.As(err, &perr) {
					t.Fatalf("ParseCommands = %+v, %v; want a *ParseError", got, err)
				}
				if !reflect.DeepEqual(perr.Problems, tt.wantErr) {
					t.Errorf("problems = %#v; want %#v", perr.Problems, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCommands: %v", err)
			}
			if got != tt.want {
				t.Errorf("ParseCommands = %+v; want %+v", got, tt.want)
			}
		})
	}
}

func TestUnknownKeys(t *testing.T) {
	tests := []struct {
		name string
		ann  map[string]string
		want []string
	}{
		{name: "known keys of every kind are not reported", ann: map[string]string{Enabled: "true", Pause: "true", Phase: "x", State: "{}"}},
		{name: "a misspelt key under the prefix is reported", ann: map[string]string{"meshcanary.io/rollbak": "oops", Enabled: "true"}, want: []string{"meshcanary.io/rollbak"}},
		{name: "keys of other tools are not reported", ann: map[string]string{"example.com/canary": "x"}},
		{name: "several unknown keys are reported sorted", ann: map[string]string{"meshcanary.io/b": "", "meshcanary.io/a": ""}, want: []string{"meshcanary.io/a", "meshcanary.io/b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := UnknownKeys(tt.ann); !slices.Equal(got, tt.want) {
				t.Errorf("UnknownKeys = %v; want %v", got, tt.want)
			}
		})
	}
}

func FuzzParseAnnotations(f *testing.F) {
	f.Add("reviews", "true", "", "", "", "", "", "1,10,50,100", "5m")
	f.Add("reviews", "false", "reviews-v2", "reviews", "primary", "v1,v2", "payments", "10,50", "1h")
	f.Add("a", "yes", "A", "", "a.b", "x", "", "1,x,100", "0s")
	f.Add("reviews", "TRUE", "reviews.canary", "vs", "", "stable, canary", "default", " 5, 100", "-1m")
	f.Fuzz(func(t *testing.T, name, enabled, canary, vs, route, subsets, policy, stages, stageDuration string) {
		ann := map[string]string{Enabled: enabled, Stages: stages, StageDuration: stageDuration}
		// Empty strings stand for absent annotations, so that the fuzzer
		// explores defaults too.
		for key, value := range map[string]string{Canary: canary, VirtualService: vs, Route: route, Subsets: subsets, Policy: policy} {
			if value != "" {
				ann[key] = value
			}
		}
		spec, err := Parse(name, ann)
		if err != nil {
			var perr *ParseError
			if !errors.As(err, &perr) || len(perr.Problems) == 0 {
				t.Fatalf("Parse error %v is not a *ParseError listing problems", err)
			}
			for _, p := range perr.Problems {
				if p.Key == "" || p.Expected == "" || ann[p.Key] != p.Value && p.Value != "" {
					t.Fatalf("problem %#v does not name its annotation and value", p)
				}
			}
			return
		}
		for i, w := range spec.Stages {
			if w < 1 || w > 100 || (i > 0 && w <= spec.Stages[i-1]) {
				t.Fatalf("accepted stages %v from %q", spec.Stages, stages)
			}
		}
		if len(spec.Stages) == 0 && spec.Stages != nil {
			t.Fatalf("accepted an empty stages override from %q", stages)
		}
		if spec.StageDuration <= 0 {
			t.Fatalf("accepted stage duration %v from %q", spec.StageDuration, stageDuration)
		}
		if spec.StableSubset == spec.CanarySubset || spec.Canary == spec.Name || spec.Canary == "" || spec.VirtualService == "" || spec.Policy == "" {
			t.Fatalf("accepted an unusable spec %+v", spec)
		}
	})
}
