package annotations

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Prefix starts every meshcanary annotation.
const Prefix = "meshcanary.io/"

// Opt-in and configuration, written by the user.
const (
	// Enabled opts the Deployment in with "true".
	Enabled = Prefix + "enabled"
	// Canary names the canary Deployment; default "<name>-canary".
	Canary = Prefix + "canary"
	// VirtualService names the VirtualService in the same namespace that
	// splits traffic; default "<name>".
	VirtualService = Prefix + "virtual-service"
	// Route names the HTTP route to manage; default: the only HTTP route
	// that has both subsets.
	Route = Prefix + "route"
	// Subsets names the stable and canary subsets, "stable,canary" by
	// default, stable first.
	Subsets = Prefix + "subsets"
	// Policy names the policy; default "default".
	Policy = Prefix + "policy"
	// Stages overrides the policy's weights, e.g. "1,10,50,100".
	Stages = Prefix + "stages"
	// StageDuration overrides every stage's duration, e.g. "10m".
	StageDuration = Prefix + "stage-duration"
)

// Commands, written by a person with kubectl annotate and removed by the
// controller once acted on.
const (
	// Rollback rolls the release back; the value is the reason.
	Rollback = Prefix + "rollback"
	// Promote with "true" sends all traffic to the canary at once.
	Promote = Prefix + "promote"
	// Pause with "true" holds the release where it is.
	Pause = Prefix + "pause"
	// Approve is reserved for manual gates; only its presence counts.
	Approve = Prefix + "approve"
	// Retry with "true" releases the canary's revision again from the
	// first stage after it was rolled back, aborted or reverted.
	Retry = Prefix + "retry"
)

// State, written only by the controller for people and tools to read.
const (
	// Phase is the phase of the current release.
	Phase = Prefix + "phase"
	// Weight is the canary's current share of traffic in percent.
	Weight = Prefix + "weight"
	// Stage identifies the current stage of the policy.
	Stage = Prefix + "stage"
	// Revision identifies the canary's pod template under release.
	Revision = Prefix + "revision"
	// Message explains the phase in a sentence.
	Message = Prefix + "message"
	// State is a JSON document owned by the controller; its shape is not
	// part of the interface.
	State = Prefix + "state"
	// Analysis is the last analysis in detail (JSON, see pkg/status), for
	// `kubectl meshcanary status` and dashboards' drill-down.
	Analysis = Prefix + "analysis"
	// History lists the last releases (JSON, see pkg/status), newest last.
	History = Prefix + "history"
)

// Defaults for configuration the user leaves out.
const (
	CanarySuffix        = "-canary"
	DefaultStableSubset = "stable"
	DefaultCanarySubset = "canary"
	DefaultPolicy       = "default"
)

// What malformed annotations are reported against. Each names the form
// the user should have written, since that is what they need to fix it.
const (
	expectBool          = `expected "true" or "false"`
	expectDeployment    = "expected the name of a Deployment other than the stable one: "
	expectVS            = "expected the name of a VirtualService in the same namespace: "
	expectRoute         = "expected the name of an HTTP route of the VirtualService: "
	expectSubsets       = `expected two different subset names, stable first, like "stable,canary"`
	expectPolicy        = "expected the name of a policy: "
	expectStages        = "expected comma-separated whole-number weights from 1 to 100 in ascending order"
	expectStageDuration = `expected a duration longer than 0s, like "10m" or "1h"`
	expectReason        = "expected a reason"
	expectApprove       = "expected a non-empty value, such as who approved"
)

// Spec is a Deployment's meshcanary configuration with defaults applied.
type Spec struct {
	// Name is the stable Deployment's name.
	Name           string
	Canary         string
	VirtualService string
	// Route is empty when the VirtualService's only HTTP route with both
	// subsets is meant.
	Route        string
	StableSubset string
	CanarySubset string
	Policy       string
	// Stages overrides the policy's weights; nil when not set.
	Stages []int
	// StageDuration overrides every stage's duration; 0 when not set.
	StageDuration time.Duration
}

// Commands are the one-shot commands found on a Deployment.
type Commands struct {
	// Rollback is the reason given; empty when no rollback was asked for.
	Rollback string
	Promote  bool
	Pause    bool
	// Approve is the value of the approve annotation; empty when absent.
	Approve string
	Retry   bool
}

// Problem is one malformed annotation.
type Problem struct {
	Key      string
	Value    string
	Expected string
}

func (p Problem) Error() string {
	return fmt.Sprintf("annotation %s: %q: %s", p.Key, p.Value, p.Expected)
}

// ParseError lists every malformed annotation of a Deployment, so that the
// controller can report them all in one event rather than one per attempt.
type ParseError struct {
	Problems []Problem
}

func (e *ParseError) Error() string {
	msgs := make([]string, 0, len(e.Problems))
	for _, p := range e.Problems {
		msgs = append(msgs, p.Error())
	}
	return strings.Join(msgs, "; ")
}

// Unwrap exposes each Problem to errors.As.
func (e *ParseError) Unwrap() []error {
	errs := make([]error, 0, len(e.Problems))
	for _, p := range e.Problems {
		errs = append(errs, p)
	}
	return errs
}

// problems collects malformed annotations in the order they are checked,
// which is fixed, so that messages are stable between reconciles.
type problems []Problem

func (ps *problems) add(key, value, expected string) {
	*ps = append(*ps, Problem{Key: key, Value: value, Expected: expected})
}

func (ps problems) has(key string) bool {
	for _, p := range ps {
		if p.Key == key {
			return true
		}
	}
	return false
}

func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return &ParseError{Problems: ps}
}

// IsEnabled reports whether the Deployment opted in. Anything but "true"
// (in any case) leaves it alone; Parse reports values that are neither
// true nor false.
func IsEnabled(ann map[string]string) bool {
	return strings.EqualFold(ann[Enabled], "true")
}

// Parse reads the configuration annotations of the stable Deployment
// deploymentName and fills the defaults. It does not require the
// Deployment to be enabled, so that a misconfiguration can be reported
// before the user turns meshcanary on.
func Parse(deploymentName string, ann map[string]string) (Spec, error) {
	var ps problems
	if v, ok := ann[Enabled]; ok {
		if _, err := parseBool(v); err != nil {
			ps.add(Enabled, v, expectBool)
		}
	}

	spec := Spec{
		Name:           deploymentName,
		Canary:         deploymentName + CanarySuffix,
		VirtualService: deploymentName,
		StableSubset:   DefaultStableSubset,
		CanarySubset:   DefaultCanarySubset,
		Policy:         DefaultPolicy,
	}

	canarySet := false
	if v, ok := ann[Canary]; ok {
		spec.Canary, canarySet = v, true
	}
	// Checked even when defaulted: a long stable name can push
	// "<name>-canary" past what Kubernetes allows.
	if msgs := validation.IsDNS1123Subdomain(spec.Canary); len(msgs) > 0 {
		if canarySet {
			ps.add(Canary, spec.Canary, expectDeployment+strings.Join(msgs, ", "))
		} else {
			ps.add(Canary, "", "expected to be set, because the default "+strconv.Quote(spec.Canary)+
				" derived from the Deployment's name is no valid name: "+strings.Join(msgs, ", "))
		}
	} else if spec.Canary == deploymentName {
		ps.add(Canary, spec.Canary, expectDeployment+"it names the stable Deployment itself")
	}

	if v, ok := ann[VirtualService]; ok {
		spec.VirtualService = v
		if msgs := validation.IsDNS1123Subdomain(v); len(msgs) > 0 {
			ps.add(VirtualService, v, expectVS+strings.Join(msgs, ", "))
		}
	}

	if v, ok := ann[Route]; ok && v != "" {
		spec.Route = v
		if msgs := validation.IsDNS1123Label(v); len(msgs) > 0 {
			ps.add(Route, v, expectRoute+strings.Join(msgs, ", "))
		}
	}

	if v, ok := ann[Subsets]; ok {
		stable, canary, valid := parseSubsets(v)
		if valid {
			spec.StableSubset, spec.CanarySubset = stable, canary
		} else {
			ps.add(Subsets, v, expectSubsets)
		}
	}

	if v, ok := ann[Policy]; ok {
		spec.Policy = v
		if msgs := validation.IsDNS1123Label(v); len(msgs) > 0 {
			ps.add(Policy, v, expectPolicy+strings.Join(msgs, ", "))
		}
	}

	if v, ok := ann[Stages]; ok {
		weights, valid := parseWeights(v)
		if valid {
			spec.Stages = weights
		} else {
			ps.add(Stages, v, expectStages)
		}
	}

	if v, ok := ann[StageDuration]; ok {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d <= 0 {
			ps.add(StageDuration, v, expectStageDuration)
		} else {
			spec.StageDuration = d
		}
	}

	if err := ps.err(); err != nil {
		return Spec{}, err
	}
	return spec, nil
}

// parseSubsets reads "stable,canary". Both must be DNS labels because
// Istio names DestinationRule subsets that way, and they must differ or
// every weight would land on one subset.
func parseSubsets(v string) (stable, canary string, ok bool) {
	parts := strings.Split(v, ",")
	if len(parts) != 2 {
		return "", "", false
	}
	stable, canary = strings.TrimSpace(parts[0]), strings.TrimSpace(parts[1])
	if len(validation.IsDNS1123Label(stable)) > 0 || len(validation.IsDNS1123Label(canary)) > 0 || stable == canary {
		return "", "", false
	}
	return stable, canary, true
}

// parseWeights reads "1,10,50,100": digits only (no signs, no spaces
// inside a number), each from 1 to 100, strictly ascending, because
// stages only ever move traffic towards the canary.
func parseWeights(v string) ([]int, bool) {
	var weights []int
	for part := range strings.SplitSeq(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" || len(part) > 3 || strings.Trim(part, "0123456789") != "" {
			return nil, false
		}
		w, err := strconv.Atoi(part)
		if err != nil || w < 1 || w > 100 {
			return nil, false
		}
		if len(weights) > 0 && w <= weights[len(weights)-1] {
			return nil, false
		}
		weights = append(weights, w)
	}
	return weights, true
}

// parseBool accepts only true and false, in any case: kubectl users type
// "True" as often as "true", but "yes" or "1" are more likely mistakes
// than intent.
func parseBool(v string) (bool, error) {
	switch {
	case strings.EqualFold(v, "true"):
		return true, nil
	case strings.EqualFold(v, "false"):
		return false, nil
	}
	return false, fmt.Errorf("%q is neither true nor false", v)
}

// ParseCommands reads the command annotations. Every malformed command is
// reported, and none is taken: acting on some commands of a Deployment
// while refusing others would be hard to reason about.
func ParseCommands(ann map[string]string) (Commands, error) {
	var ps problems
	var c Commands
	if v, ok := ann[Rollback]; ok {
		if strings.TrimSpace(v) == "" {
			ps.add(Rollback, v, expectReason)
		} else {
			c.Rollback = v
		}
	}
	if v, ok := ann[Promote]; ok {
		b, err := parseBool(v)
		if err != nil {
			ps.add(Promote, v, expectBool)
		}
		c.Promote = b
	}
	if v, ok := ann[Pause]; ok {
		b, err := parseBool(v)
		if err != nil {
			ps.add(Pause, v, expectBool)
		}
		c.Pause = b
	}
	if v, ok := ann[Retry]; ok {
		b, err := parseBool(v)
		if err != nil {
			ps.add(Retry, v, expectBool)
		}
		c.Retry = b
	}
	if v, ok := ann[Approve]; ok {
		// The value is all that tells "approved" from absent, so an empty
		// one cannot be accepted.
		if v == "" {
			ps.add(Approve, v, expectApprove)
		}
		c.Approve = v
	}
	// The well-formed commands stand even when another is malformed: a typo
	// in one command must never block a rollback given with it.
	if ps.has(Approve) {
		c.Approve = ""
	}
	return c, ps.err()
}

// CommandKeys lists the command annotations, which the controller removes
// once it has acted on them. It returns a new slice each time.
func CommandKeys() []string {
	return []string{Rollback, Promote, Pause, Approve, Retry}
}

// ConfigKeys lists the configuration annotations Parse reads.
func ConfigKeys() []string {
	return []string{Enabled, Canary, VirtualService, Route, Subsets, Policy, Stages, StageDuration}
}

// StateKeys lists the annotations the controller writes.
func StateKeys() []string {
	return []string{Phase, Weight, Stage, Revision, Message, State, Analysis, History}
}

// UnknownKeys lists, sorted, the annotations under Prefix that meshcanary
// does not know. They are not errors, since a newer meshcanary may know
// them, but a misspelt command silently doing nothing deserves a warning.
func UnknownKeys(ann map[string]string) []string {
	known := slices.Concat(ConfigKeys(), CommandKeys(), StateKeys())
	var unknown []string
	for k := range ann {
		if strings.HasPrefix(k, Prefix) && !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	return unknown
}
