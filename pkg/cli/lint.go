package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/policy"
	"github.com/meshcanary/meshcanary/pkg/virtualservice"
)

// Severities of lint findings. Only errors count as problems (exit code
// 1); warnings point at things that work but are likely mistakes.
const (
	severityError   = "error"
	severityWarning = "warning"
)

// finding is one thing lint reports, against the object and field a user
// has to edit.
type finding struct {
	Severity string `json:"severity"`
	// Object is e.g. "Deployment shop/payment-service" or the policy file.
	Object  string `json:"object"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// lintDoc is what `lint -o json|yaml` prints.
type lintDoc struct {
	// Checked lists what was linted.
	Checked  []string  `json:"checked"`
	Findings []finding `json:"findings"`
	Errors   int       `json:"errors"`
	Warnings int       `json:"warnings"`
	// Notes say what could not be checked and why.
	Notes []string `json:"notes,omitempty"`
}

func (d *lintDoc) add(f ...finding) {
	for _, x := range f {
		d.Findings = append(d.Findings, x)
		if x.Severity == severityError {
			d.Errors++
		} else {
			d.Warnings++
		}
	}
}

type lintOptions struct {
	*common
	output   string
	policies string
}

func newLintCommand(c *common) *cobra.Command {
	o := &lintOptions{common: c}
	cmd := &cobra.Command{
		Use:   "lint [--policies FILE] [DEPLOYMENT]",
		Short: "Check a policy file, and a Deployment's annotations, VirtualService and DestinationRule",
		Long: `Check what the controller would check, and report every problem at once with
the object and field to fix:

  - with --policies, the policy file (every field, as the controller parses it);
  - with a DEPLOYMENT, its meshcanary annotations, its canary Deployment, the
    VirtualService route meshcanary manages, the DestinationRule subsets and
    the pod labels they select, read from the cluster. With --policies too,
    the policy the Deployment names must be in the file.

The exit code is 1 when there are errors, 0 when there are none (warnings
alone do not fail). --policies alone needs no cluster.`,
		Example: `  meshcanary lint payment-service
  meshcanary lint --policies policies.yaml
  meshcanary lint --policies policies.yaml payment-service -o json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef(cmd, "expected at most one Deployment name, got %d arguments", len(args))
			}
			if len(args) == 1 {
				_, err := deploymentArg(cmd, args[0])
				return err
			}
			return nil
		},
		ValidArgsFunction: completeAnyDeployment(c),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(cmd, o.output); err != nil {
				return err
			}
			if len(args) == 0 && o.policies == "" {
				return usagef(cmd, "nothing to lint: name a Deployment, pass --policies FILE, or both")
			}
			name := ""
			if len(args) == 1 {
				name, _ = deploymentArg(cmd, args[0])
			}
			return o.run(cmd.Context(), name)
		},
	}
	addOutputFlag(cmd, &o.output)
	cmd.Flags().StringVar(&o.policies, "policies", "", "Policy `FILE` to check: the one given to meshcanary controller --policies")
	_ = cmd.MarkFlagFilename("policies", "yaml", "yml")
	return cmd
}

func (o *lintOptions) run(ctx context.Context, name string) error {
	doc := lintDoc{Findings: []finding{}}
	var file *policy.File
	if o.policies != "" {
		doc.Checked = append(doc.Checked, "policy file "+o.policies)
		var found []finding
		file, found = lintPolicyFile(o.policies)
		doc.add(found...)
	}
	if name != "" {
		c, err := o.kube.connect()
		if err != nil {
			return err
		}
		in, err := c.gatherLint(ctx, name)
		if err != nil {
			return err
		}
		in.policies, in.policiesPath = file, o.policies
		doc.Checked = append(doc.Checked, "Deployment "+in.stable.Namespace+"/"+in.stable.Name)
		found, notes := lintObjects(in)
		doc.add(found...)
		doc.Notes = append(doc.Notes, notes...)
	}
	if o.output != outputHuman {
		if err := printDoc(o.streams.Out, o.output, doc); err != nil {
			return err
		}
	} else if err := renderLint(o.streams.Out, doc); err != nil {
		return err
	}
	if doc.Errors > 0 {
		return problemsError{n: doc.Errors}
	}
	return nil
}

// lintPolicyFile parses a policy file as the controller does and turns
// every problem into a finding with its field path. The file is returned
// when it is valid.
func lintPolicyFile(path string) (*policy.File, []finding) {
	f, err := policy.LoadFile(path)
	if err == nil {
		return f, nil
	}
	msg := strings.TrimPrefix(err.Error(), path+": ")
	var ve *policy.ValidationError
	if !errors.As(err, &ve) {
		return nil, []finding{{Severity: severityError, Object: path, Message: msg}}
	}
	var out []finding
	for _, fe := range ve.Errors {
		out = append(out, finding{Severity: severityError, Object: path, Field: fe.Field, Message: fe.ErrorBody()})
	}
	// Parse joins a decoding error to the validation errors when the
	// document could not be read whole; it has no field path of its own.
	if rest := strings.TrimSpace(strings.TrimPrefix(msg, ve.Error())); rest != "" {
		out = append(out, finding{Severity: severityError, Object: path, Message: rest})
	}
	return nil, out
}

// lintInput is everything lint reads from the cluster about a Deployment.
type lintInput struct {
	stable *appsv1.Deployment
	// canary, vs are nil when they do not exist.
	canary *appsv1.Deployment
	vs     *unstructured.Unstructured
	drs    []unstructured.Unstructured
	// policies is the parsed --policies file, nil when not given or
	// invalid.
	policies     *policy.File
	policiesPath string
}

// gatherLint reads the objects a Deployment's annotations name.
func (c *cluster) gatherLint(ctx context.Context, name string) (lintInput, error) {
	stable, err := c.deployment(ctx, name)
	if err != nil {
		return lintInput{}, err
	}
	in := lintInput{stable: stable}
	spec := lenientSpec(stable)
	in.canary, err = c.optionalDeployment(ctx, spec.Canary)
	if err != nil {
		return lintInput{}, err
	}
	if in.vs, err = c.virtualService(ctx, spec.VirtualService); err != nil {
		return lintInput{}, err
	}
	if in.drs, err = c.list(ctx, drGVR()); err != nil {
		return lintInput{}, err
	}
	return in, nil
}

// optionalDeployment is a Deployment, or nil when it does not exist.
func (c *cluster) optionalDeployment(ctx context.Context, name string) (*appsv1.Deployment, error) {
	d, err := c.deployment(ctx, name)
	if isNotFound(err) {
		return nil, nil
	}
	return d, err
}

// lenientSpec parses the configuration annotations, falling back to the
// default for each malformed one, so that one typo does not hide every
// other problem.
func lenientSpec(d *appsv1.Deployment) annotations.Spec {
	ann := maps.Clone(d.Annotations)
	// Each round drops the malformed keys; a round can only reveal no new
	// ones, so there are at most as many rounds as keys.
	for range annotations.ConfigKeys() {
		spec, err := annotations.Parse(d.Name, ann)
		if err == nil {
			return spec
		}
		var pe *annotations.ParseError
		if !errors.As(err, &pe) {
			break
		}
		for _, p := range pe.Problems {
			if _, ok := ann[p.Key]; !ok {
				// A defaulted value is at fault (a name too long for
				// "<name>-canary"); nothing left to drop.
				return defaultSpec(d.Name)
			}
			delete(ann, p.Key)
		}
	}
	return defaultSpec(d.Name)
}

// defaultSpec is the configuration of a Deployment without annotations.
func defaultSpec(name string) annotations.Spec {
	return annotations.Spec{
		Name: name, Canary: name + annotations.CanarySuffix, VirtualService: name,
		StableSubset: annotations.DefaultStableSubset, CanarySubset: annotations.DefaultCanarySubset,
		Policy: annotations.DefaultPolicy,
	}
}

func annotationField(key string) string {
	return "metadata.annotations[" + key + "]"
}

func objectName(kind, ns, name string) string {
	return kind + " " + ns + "/" + name
}

// lintObjects checks what the controller checks before it touches traffic
// (see pkg/controller's resolve), against objects read from the cluster.
func lintObjects(in lintInput) (found []finding, notes []string) {
	d := in.stable
	ns := d.Namespace
	self := objectName("Deployment", ns, d.Name)
	add := func(sev, obj, field, format string, args ...any) {
		found = append(found, finding{Severity: sev, Object: obj, Field: field, Message: fmt.Sprintf(format, args...)})
	}

	if !annotations.IsEnabled(d.Annotations) {
		add(severityWarning, self, annotationField(annotations.Enabled), "not opted in: annotate it with %s=true", annotations.Enabled)
	}
	var pe *annotations.ParseError
	if _, err := annotations.Parse(d.Name, d.Annotations); errors.As(err, &pe) {
		for _, p := range pe.Problems {
			add(severityError, self, annotationField(p.Key), "%q: %s", p.Value, p.Expected)
		}
	}
	if _, err := annotations.ParseCommands(d.Annotations); errors.As(err, &pe) {
		for _, p := range pe.Problems {
			add(severityError, self, annotationField(p.Key), "%q: %s", p.Value, p.Expected)
		}
	}
	for _, k := range annotations.UnknownKeys(d.Annotations) {
		add(severityWarning, self, annotationField(k), "unknown meshcanary annotation, ignored (misspelt?); known: %s",
			strings.Join(annotations.ConfigKeys(), ", "))
	}
	spec := lenientSpec(d)

	switch {
	case in.policies != nil:
		if !slices.ContainsFunc(in.policies.Policies, func(p policy.Policy) bool { return p.Name == spec.Policy }) && spec.Policy != policy.DefaultPolicyName {
			var names []string
			for _, p := range in.policies.Policies {
				names = append(names, p.Name)
			}
			add(severityError, self, annotationField(annotations.Policy), "policy %q is not in %s (it has: %s)", spec.Policy, in.policiesPath, orNone(strings.Join(names, ", ")))
		}
	case in.policiesPath == "":
		notes = append(notes, fmt.Sprintf("policy %q not checked: pass --policies with the controller's policy file", spec.Policy))
	}

	if in.canary == nil {
		add(severityError, objectName("Deployment", ns, spec.Canary), "", "not found: the canary Deployment (annotation %s, default <name>-canary); `meshcanary init %s` prints one", annotations.Canary, d.Name)
	}
	if in.vs == nil {
		add(severityError, objectName("VirtualService", ns, spec.VirtualService), "", "not found (annotation %s, default the Deployment's name); `meshcanary init %s` prints one", annotations.VirtualService, d.Name)
		return found, notes
	}
	m, err := virtualservice.Find(in.vs.Object, virtualservice.Target{Route: spec.Route, StableSubset: spec.StableSubset, CanarySubset: spec.CanarySubset, Namespace: ns})
	if err != nil {
		var fe *virtualservice.FitError
		if errors.As(err, &fe) {
			msg := "expected " + fe.Expected
			if fe.Found != "" {
				msg += ", found " + fe.Found
			}
			if fe.Hint != "" {
				msg += "; " + fe.Hint
			}
			found = append(found, finding{Severity: severityError, Object: fe.Object, Field: fe.Field, Message: msg})
		} else {
			add(severityError, objectName("VirtualService", ns, spec.VirtualService), "", "%v", err)
		}
		return found, notes
	}

	stableLabels, canaryLabels, drFindings := lintSubsets(in.drs, ns, m.Host, spec)
	found = append(found, drFindings...)
	if stableLabels == nil {
		return found, notes
	}
	found = append(found, podsMatch(d, stableLabels, spec.StableSubset)...)
	if in.canary != nil {
		found = append(found, podsMatch(in.canary, canaryLabels, spec.CanarySubset)...)
		if sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err == nil && !sel.Empty() &&
			sel.Matches(labels.Set(in.canary.Spec.Template.Labels)) {
			add(severityWarning, self, "spec.selector", "%q also selects the canary's pods; add the subset label to it (`meshcanary init %s` prints the steps)", sel.String(), d.Name)
		}
	}
	return found, notes
}

// lintSubsets finds the DestinationRule for host and the labels of the two
// subsets, as the controller does.
func lintSubsets(drs []unstructured.Unstructured, ns, host string, spec annotations.Spec) (stable, canary map[string]string, found []finding) {
	var matching []unstructured.Unstructured
	for _, u := range drs {
		h, _, _ := unstructured.NestedString(u.Object, "spec", "host")
		if virtualservice.HostsEqual(h, host, ns) {
			matching = append(matching, u)
		}
	}
	if len(matching) == 0 {
		return nil, nil, []finding{{Severity: severityError, Object: "DestinationRule " + ns + "/*", Field: "spec.host",
			Message: fmt.Sprintf("no DestinationRule has host %q (the managed route's host) with subsets %q and %q; `meshcanary init %s` prints one", host, spec.StableSubset, spec.CanarySubset, spec.Name)}}
	}
	u := matching[0]
	obj := objectName("DestinationRule", ns, u.GetName())
	if len(matching) > 1 {
		var names []string
		for _, m := range matching {
			names = append(names, m.GetName())
		}
		found = append(found, finding{Severity: severityWarning, Object: obj, Field: "spec.host",
			Message: fmt.Sprintf("several DestinationRules have host %q (%s); meshcanary reads %s", host, strings.Join(names, ", "), u.GetName())})
	}
	subsets := drSubsets(u)
	st, okS := subsets[spec.StableSubset]
	ca, okC := subsets[spec.CanarySubset]
	for _, s := range []struct {
		name string
		ok   bool
	}{{spec.StableSubset, okS}, {spec.CanarySubset, okC}} {
		if !s.ok {
			found = append(found, finding{Severity: severityError, Object: obj, Field: "spec.subsets",
				Message: fmt.Sprintf("no subset named %q (annotation %s)", s.name, annotations.Subsets)})
		}
	}
	switch {
	case !okS || !okC:
		return nil, nil, found
	case len(st) == 0 || len(ca) == 0:
		found = append(found, finding{Severity: severityError, Object: obj, Field: "spec.subsets",
			Message: fmt.Sprintf("subsets %q and %q need labels that tell their pods apart", spec.StableSubset, spec.CanarySubset)})
		return nil, nil, found
	case maps.Equal(st, ca):
		found = append(found, finding{Severity: severityError, Object: obj, Field: "spec.subsets",
			Message: fmt.Sprintf("subsets %q and %q select the same labels", spec.StableSubset, spec.CanarySubset)})
		return nil, nil, found
	}
	return st, ca, found
}

// drSubsets maps a DestinationRule's subset names to their labels.
func drSubsets(u unstructured.Unstructured) map[string]map[string]string {
	out := map[string]map[string]string{}
	subs, _, _ := unstructured.NestedSlice(u.Object, "spec", "subsets")
	for _, s := range subs {
		sm, ok := s.(map[string]any)
		if !ok {
			continue
		}
		name, _ := sm["name"].(string)
		lbls := map[string]string{}
		if lm, ok := sm["labels"].(map[string]any); ok {
			for k, v := range lm {
				if vs, ok := v.(string); ok {
					lbls[k] = vs
				}
			}
		}
		out[name] = lbls
	}
	return out
}

// podsMatch checks that a Deployment's pods carry its subset's labels:
// otherwise the weights would send traffic to nobody.
func podsMatch(d *appsv1.Deployment, subset map[string]string, name string) []finding {
	var out []finding
	for _, k := range sortedKeys(subset) {
		if got := d.Spec.Template.Labels[k]; got != subset[k] {
			out = append(out, finding{Severity: severityError, Object: objectName("Deployment", d.Namespace, d.Name),
				Field:   "spec.template.metadata.labels",
				Message: fmt.Sprintf("%s=%q expected by DestinationRule subset %q, found %q", k, subset[k], name, got)})
		}
	}
	return out
}

func renderLint(w io.Writer, doc lintDoc) error {
	p := newPrinter(w)
	if len(doc.Findings) > 0 {
		t := p.table()
		t.row("SEVERITY", "OBJECT", "FIELD", "PROBLEM")
		for _, f := range doc.Findings {
			t.row(f.Severity, f.Object, orNone(f.Field), f.Message)
		}
		t.flush()
		p.println()
	}
	for _, n := range doc.Notes {
		p.println("Note: " + n)
	}
	what := strings.Join(doc.Checked, " and ")
	if doc.Errors == 0 && doc.Warnings == 0 {
		p.printf("No problems found in %s.\n", what)
	} else {
		p.printf("%s, %s in %s.\n", plural(doc.Errors, "error"), plural(doc.Warnings, "warning"), what)
	}
	return p.err
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
