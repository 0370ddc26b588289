package status

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/apis/meshcanary/v1alpha1"
	"github.com/meshcanary/meshcanary/pkg/metrics"
	"github.com/meshcanary/meshcanary/pkg/stages"
)

// Analysis is the last analysis of a rollout, in detail.
type Analysis struct {
	At             time.Time `json:"at"`
	WindowSeconds  float64   `json:"windowSeconds"`
	Verdict        string    `json:"verdict"`
	Message        string    `json:"message"`
	CanaryRequests float64   `json:"canaryRequests"`
	StableRequests float64   `json:"stableRequests"`
	Checks         []Check   `json:"checks,omitempty"`
	// Forecast is what the remaining stages can expect at the analysed
	// request rate.
	Forecast []Forecast `json:"forecast,omitempty"`
}

// Forecast is one stage's expected evidence at the current request rate.
type Forecast struct {
	Stage           int     `json:"stage"`
	Weight          int     `json:"weight"`
	DurationSeconds float64 `json:"durationSeconds"`
	CanaryRequests  float64 `json:"canaryRequests"`
	// NeedsSeconds is how long the stage needs for minRequests canary
	// requests, when longer than its duration.
	NeedsSeconds float64 `json:"needsSeconds,omitempty"`
	// Detectable is the smallest canary error rate the stage can catch
	// within its duration; nil when it can catch none or there is no
	// error-rate check.
	Detectable *float64 `json:"detectable,omitempty"`
}

// Evidence is the counts behind a check and their anytime-valid 95%
// intervals (see pkg/metrics).
type Evidence struct {
	Counted     string  `json:"counted"`
	CanaryCount float64 `json:"canaryCount"`
	CanaryTotal float64 `json:"canaryTotal"`
	StableCount float64 `json:"stableCount"`
	StableTotal float64 `json:"stableTotal"`
	CanaryLow   float64 `json:"canaryLow"`
	CanaryHigh  float64 `json:"canaryHigh"`
	StableLow   float64 `json:"stableLow"`
	StableHigh  float64 `json:"stableHigh"`
	// Limit is the share the canary's interval was held against.
	Limit *float64 `json:"limit,omitempty"`
}

// Check is one check's values against its bound. Values are in base units
// (ratios, seconds, requests per second); nil means no data.
type Check struct {
	Metric    string    `json:"metric"`
	Canary    *float64  `json:"canary,omitempty"`
	Stable    *float64  `json:"stable,omitempty"`
	Bound     string    `json:"bound,omitempty"`
	Threshold string    `json:"threshold,omitempty"`
	Verdict   string    `json:"verdict"`
	Message   string    `json:"message,omitempty"`
	Evidence  *Evidence `json:"evidence,omitempty"`
}

// FromResult converts an analysis result for publishing.
func FromResult(r metrics.Result, at time.Time) Analysis {
	a := Analysis{
		At:             at.UTC(),
		WindowSeconds:  r.Window.Seconds(),
		Verdict:        string(r.Verdict),
		Message:        r.Message,
		CanaryRequests: r.CanaryRequests,
		StableRequests: r.StableRequests,
	}
	for _, c := range r.Checks {
		a.Checks = append(a.Checks, Check{
			Metric: c.Metric, Canary: finite(c.Canary), Stable: finite(c.Stable),
			Bound: c.Bound, Threshold: c.Threshold, Verdict: string(c.Verdict), Message: c.Message,
			Evidence: evidence(c.Evidence),
		})
	}
	for _, f := range r.Forecast {
		a.Forecast = append(a.Forecast, Forecast{
			Stage: f.Stage, Weight: f.Weight, DurationSeconds: f.Duration.Seconds(),
			CanaryRequests: f.CanaryRequests, NeedsSeconds: f.Needs.Seconds(), Detectable: finite(f.Detectable),
		})
	}
	return a
}

func evidence(e *metrics.Evidence) *Evidence {
	if e == nil {
		return nil
	}
	return &Evidence{
		Counted: e.Counted, CanaryCount: e.CanaryCount, CanaryTotal: e.CanaryTotal,
		StableCount: e.StableCount, StableTotal: e.StableTotal,
		CanaryLow: e.Canary.Lo, CanaryHigh: e.Canary.Hi, StableLow: e.Stable.Lo, StableHigh: e.Stable.Hi,
		Limit: finite(e.Limit),
	}
}

func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// Release is one entry of the release history.
type Release struct {
	Revision      string    `json:"revision"`
	Images        []string  `json:"images,omitempty"`
	Started       time.Time `json:"started"`
	Finished      time.Time `json:"finished"`
	StagesReached string    `json:"stagesReached"`
	Result        string    `json:"result"`
	Reason        string    `json:"reason"`
	DecidedBy     string    `json:"decidedBy"`
}

// Images lists a pod template's containers as name=image.
func Images(d *appsv1.Deployment) []string {
	var out []string
	for _, c := range d.Spec.Template.Spec.Containers {
		out = append(out, c.Name+"="+c.Image)
	}
	return out
}

// View is everything published about one opted-in Deployment.
type View struct {
	Namespace string
	Name      string
	Enabled   bool
	Phase     string
	Weight    int
	Stage     string
	Revision  string
	Message   string
	State     stages.State
	Analysis  *Analysis
	History   []Release
	// Commands pending: command annotations written and not yet acted on.
	Commands map[string]string
}

// ReadWith decodes what is published about a rollout: the summary and
// pending commands on the Deployment, and the state, last analysis and
// history from its CanaryRelease, which is the truth wherever the two
// disagree (an undo can rewind the Deployment's annotations). cr may be
// nil: a Deployment not yet seen by the controller, or one written by a
// version that kept everything in annotations.
func ReadWith(d *appsv1.Deployment, cr *v1alpha1.CanaryRelease) (View, error) {
	v, err := Read(d)
	if cr == nil || cr.Status.State == nil {
		return v, err
	}
	v.State, v.Analysis, v.History = stages.State{}, nil, nil
	var errs []string
	if e := json.Unmarshal(cr.Status.State.Raw, &v.State); e != nil {
		errs = append(errs, fmt.Sprintf("status.state: %v", e))
	}
	if a := cr.Status.LastAnalysis; a != nil {
		var an Analysis
		if e := json.Unmarshal(a.Raw, &an); e != nil {
			errs = append(errs, fmt.Sprintf("status.lastAnalysis: %v", e))
		} else {
			v.Analysis = &an
		}
	}
	if b, e := json.Marshal(cr.Status.History); e == nil {
		_ = json.Unmarshal(b, &v.History)
	}
	v.Phase, v.Weight, v.Stage = cr.Status.Phase, int(cr.Status.Weight), cr.Status.StageLabel
	v.Revision, v.Message = cr.Status.Revision, cr.Status.Message
	if len(errs) > 0 {
		return v, fmt.Errorf("canaryrelease %s/%s: unreadable status: %s", cr.Namespace, cr.Name, strings.Join(errs, "; "))
	}
	return v, nil
}

// Read decodes a Deployment's published state from its annotations alone;
// ReadWith adds the CanaryRelease.
func Read(d *appsv1.Deployment) (View, error) {
	a := d.Annotations
	v := View{
		Namespace: d.Namespace,
		Name:      d.Name,
		Enabled:   annotations.IsEnabled(a),
		Phase:     a[annotations.Phase],
		Stage:     a[annotations.Stage],
		Revision:  a[annotations.Revision],
		Message:   a[annotations.Message],
		Commands:  map[string]string{},
	}
	var errs []string
	if w := a[annotations.Weight]; w != "" {
		n, err := strconv.Atoi(w)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %q is not a number", annotations.Weight, w))
		}
		v.Weight = n
	}
	if raw := a[annotations.State]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &v.State); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", annotations.State, err))
		}
	}
	if raw := a[annotations.Analysis]; raw != "" {
		var an Analysis
		if err := json.Unmarshal([]byte(raw), &an); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", annotations.Analysis, err))
		} else {
			v.Analysis = &an
		}
	}
	if raw := a[annotations.History]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &v.History); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", annotations.History, err))
		}
	}
	for _, k := range annotations.CommandKeys() {
		if val, ok := a[k]; ok {
			v.Commands[k] = val
		}
	}
	if len(errs) > 0 {
		return v, fmt.Errorf("deployment %s/%s: unreadable annotations: %s", d.Namespace, d.Name, strings.Join(errs, "; "))
	}
	return v, nil
}

// AppendHistory adds a release and keeps the newest max entries.
func AppendHistory(h []Release, r Release, max int) []Release {
	h = append(h, r)
	if max > 0 && len(h) > max {
		h = h[len(h)-max:]
	}
	return h
}
