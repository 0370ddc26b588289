package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/status"
)

type listOptions struct {
	*common
	output        string
	allNamespaces bool
}

// listDoc is what `list -o json|yaml` prints.
type listDoc struct {
	Items []listItem `json:"items"`
}

// listItem is one opted-in Deployment.
type listItem struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Phase     string `json:"phase"`
	// Weight is the canary weight the controller last published.
	Weight  int    `json:"weight"`
	Stage   string `json:"stage,omitempty"`
	Message string `json:"message,omitempty"`
	// LastResult is how the last finished release ended, e.g. "promoted".
	LastResult   string     `json:"lastResult,omitempty"`
	LastFinished *time.Time `json:"lastFinished,omitempty"`
	Warning      string     `json:"warning,omitempty"`
}

func newListCommand(c *common) *cobra.Command {
	o := &listOptions{common: c}
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List opted-in Deployments with phase, weight, stage and last result",
		Example: `  meshcanary list
  meshcanary list -A
  meshcanary list -n payments -o json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(cmd, o.output); err != nil {
				return err
			}
			return o.run(cmd.Context())
		},
	}
	addOutputFlag(cmd, &o.output)
	cmd.Flags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "List opted-in Deployments of every namespace")
	return cmd
}

func (o *listOptions) run(ctx context.Context) error {
	c, err := o.kube.connect()
	if err != nil {
		return err
	}
	ns := c.namespace
	if o.allNamespaces {
		ns = metav1.NamespaceAll
	}
	// Annotations cannot be selected on server side, so every Deployment
	// is listed and the opted-in ones kept.
	list, err := c.kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing deployments: %w", err)
	}
	// The rollouts' state is in their CanaryReleases: one list for all of
	// them, not a read per Deployment.
	crs, err := c.releases(ctx, ns)
	if err != nil {
		return err
	}
	doc := buildList(list.Items, crs)
	if o.output != outputHuman {
		return printDoc(o.streams.Out, o.output, doc)
	}
	if len(doc.Items) == 0 {
		// As kubectl: the notice goes to stderr, so stdout stays empty.
		e := newPrinter(o.streams.ErrOut)
		if o.allNamespaces {
			e.println("No opted-in Deployments found.")
		} else {
			e.printf("No opted-in Deployments found in namespace %s.\n", ns)
		}
		return e.err
	}
	return renderList(o.streams.Out, doc, o.allNamespaces, time.Now())
}

// buildList keeps the opted-in Deployments, sorted by namespace and name,
// each read with its CanaryRelease from crs.
func buildList(deps []appsv1.Deployment, crs releaseSet) listDoc {
	doc := listDoc{Items: []listItem{}}
	for i := range deps {
		d := &deps[i]
		if !annotations.IsEnabled(d.Annotations) {
			continue
		}
		cr, crErr := crs.of(d)
		v, err := status.ReadWith(d, cr)
		item := listItem{
			Namespace: d.Namespace, Name: d.Name, Phase: v.Phase, Weight: v.Weight, Stage: v.Stage, Message: v.Message,
		}
		var warnings []string
		for _, e := range []error{crErr, err} {
			if e != nil {
				warnings = append(warnings, e.Error())
			}
		}
		item.Warning = strings.Join(warnings, "; ")
		if n := len(v.History); n > 0 {
			last := v.History[n-1]
			item.LastResult = last.Result
			if !last.Finished.IsZero() {
				item.LastFinished = &last.Finished
			}
		} else if r := v.State.Result; r != "" && !v.State.Finished.IsZero() {
			item.LastResult = string(r)
			item.LastFinished = &v.State.Finished
		}
		doc.Items = append(doc.Items, item)
	}
	slices.SortFunc(doc.Items, func(a, b listItem) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return doc
}

func renderList(w io.Writer, doc listDoc, withNamespace bool, now time.Time) error {
	p := newPrinter(w)
	t := p.table()
	header := []string{"NAME", "PHASE", "WEIGHT", "STAGE", "LAST RESULT"}
	if withNamespace {
		header = append([]string{"NAMESPACE"}, header...)
	}
	t.row(header...)
	for _, it := range doc.Items {
		last := "<none>"
		if it.LastResult != "" {
			last = it.LastResult
			if it.LastFinished != nil {
				last += " " + ago(*it.LastFinished, now)
			}
		}
		cells := []string{it.Name, orNone(it.Phase), percent(it.Weight), orNone(it.Stage), last}
		if withNamespace {
			cells = append([]string{it.Namespace}, cells...)
		}
		t.row(cells...)
	}
	t.flush()
	return p.err
}

type historyOptions struct {
	*common
	output string
}

// historyDoc is what `history -o json|yaml` prints.
type historyDoc struct {
	Namespace string           `json:"namespace"`
	Name      string           `json:"name"`
	Releases  []status.Release `json:"releases"`
}

func newHistoryCommand(c *common) *cobra.Command {
	o := &historyOptions{common: c}
	cmd := &cobra.Command{
		Use:   "history DEPLOYMENT",
		Short: "Show the release history of a Deployment, oldest first",
		Example: `  meshcanary history payment-service
  meshcanary history payment-service -o yaml`,
		Args:              oneDeployment,
		ValidArgsFunction: completeDeployments(c),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(cmd, o.output); err != nil {
				return err
			}
			name, _ := deploymentArg(cmd, args[0])
			return o.run(cmd.Context(), name)
		},
	}
	addOutputFlag(cmd, &o.output)
	return cmd
}

func (o *historyOptions) run(ctx context.Context, name string) error {
	c, err := o.kube.connect()
	if err != nil {
		return err
	}
	d, err := c.optedIn(ctx, name)
	if err != nil {
		return err
	}
	r, err := c.rolloutOf(ctx, d)
	if err != nil {
		return err
	}
	v, err := r.view()
	if err != nil && len(v.History) == 0 {
		return err
	}
	doc := historyDoc{Namespace: d.Namespace, Name: d.Name, Releases: v.History}
	if doc.Releases == nil {
		doc.Releases = []status.Release{}
	}
	if o.output != outputHuman {
		return printDoc(o.streams.Out, o.output, doc)
	}
	if len(doc.Releases) == 0 {
		e := newPrinter(o.streams.ErrOut)
		e.printf("No releases recorded yet for deployment %s in namespace %s.\n", d.Name, d.Namespace)
		return e.err
	}
	return renderHistory(o.streams.Out, doc.Releases, time.Now(), true)
}
