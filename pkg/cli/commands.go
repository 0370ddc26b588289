package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"os/user"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/stages"
	"github.com/meshcanary/meshcanary/pkg/status"
)

// defaultWaitTimeout bounds --wait unless --timeout says otherwise.
const defaultWaitTimeout = 2 * time.Minute

// vsRecheck is how often --wait for a rollback reads the VirtualService
// again while the phase already says RolledBack: the VirtualService's
// changes do not show in the Deployment's watch.
const vsRecheck = time.Second

// action is one of the commands that write a command annotation.
type action struct {
	name       string
	annotation string
	// value computes the annotation's value; nil removes the annotation.
	value func(o *actionOptions, c *cluster) *string
	// waitable is false for commands whose effect cannot be observed.
	waitable bool
	// waitsFor says, for messages, what --wait waits for.
	waitsFor string
}

type actionOptions struct {
	*common
	act     action
	output  string
	reason  string
	by      string
	wait    bool
	timeout time.Duration
}

// actionDoc is what the command annotation commands print with -o.
type actionDoc struct {
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	Command    string `json:"command"`
	Annotation string `json:"annotation"`
	// Value is what was written; absent when the annotation was removed.
	Value *string `json:"value,omitempty"`
	// Removed is true when the command removed the annotation (resume).
	Removed bool `json:"removed,omitempty"`
	// Waited is true when --wait saw the result.
	Waited   bool      `json:"waited"`
	Warnings []string  `json:"warnings,omitempty"`
	Status   statusDoc `json:"status"`
}

func strPtr(s string) *string { return &s }

func newRollbackCommand(c *common) *cobra.Command {
	o := &actionOptions{common: c, act: action{
		name: "rollback", annotation: annotations.Rollback, waitable: true,
		waitsFor: "the managed route to send 100% to stable and the phase to be RolledBack",
		value:    func(o *actionOptions, _ *cluster) *string { return strPtr(o.reason) },
	}}
	cmd := o.command(&cobra.Command{
		Use:   "rollback DEPLOYMENT --reason TEXT",
		Short: "Roll the release in flight back: all traffic to stable",
		Long: `Ask the controller to roll the release in flight back, by writing the
meshcanary.io/rollback annotation with the reason. The controller sends all
traffic to stable, scales the canary down and records the reason.

With --wait the command returns once the VirtualService's managed route sends
100% to stable and the phase is RolledBack.`,
		Example: `  meshcanary rollback payment-service --reason "p99 regression"
  meshcanary rollback payment-service --reason "error budget" --wait --timeout 1m`,
	})
	cmd.Flags().StringVar(&o.reason, "reason", "", "Why the release is rolled back (required; recorded in the history)")
	return cmd
}

func newPromoteCommand(c *common) *cobra.Command {
	o := &actionOptions{common: c, act: action{
		name: "promote", annotation: annotations.Promote, waitable: true,
		waitsFor: "the phase to be Succeeded",
		value:    func(*actionOptions, *cluster) *string { return strPtr("true") },
	}}
	return o.command(&cobra.Command{
		Use:   "promote DEPLOYMENT",
		Short: "Promote the release in flight now, skipping the remaining stages",
		Long: `Ask the controller to promote the release in flight at once, by writing
meshcanary.io/promote=true: stable is updated to the canary's template.

With --wait the command returns once the phase is Succeeded.`,
		Example: `  meshcanary promote payment-service --wait`,
	})
}

func newPauseCommand(c *common) *cobra.Command {
	o := &actionOptions{common: c, act: action{
		name: "pause", annotation: annotations.Pause, waitable: true,
		waitsFor: "the phase to be Paused",
		value:    func(*actionOptions, *cluster) *string { return strPtr("true") },
	}}
	return o.command(&cobra.Command{
		Use:   "pause DEPLOYMENT",
		Short: "Hold the release in flight at its current weight",
		Long: `Ask the controller to hold the release where it is, by writing
meshcanary.io/pause=true. The weight stays, analysis goes on and the stage
clock stops until resume.

With --wait the command returns once the phase is Paused.`,
		Example: `  meshcanary pause payment-service --wait`,
	})
}

func newResumeCommand(c *common) *cobra.Command {
	o := &actionOptions{common: c, act: action{
		name: "resume", annotation: annotations.Pause, waitable: true,
		waitsFor: "the phase to be no longer Paused",
		value:    func(*actionOptions, *cluster) *string { return nil },
	}}
	return o.command(&cobra.Command{
		Use:   "resume DEPLOYMENT",
		Short: "Resume a paused release",
		Long: `Resume a paused release by removing the meshcanary.io/pause annotation; the
stage clock goes on where it stopped.

With --wait the command returns once the phase is no longer Paused.`,
		Example: `  meshcanary resume payment-service --wait`,
	})
}

func newApproveCommand(c *common) *cobra.Command {
	o := &actionOptions{common: c, act: action{
		name: "approve", annotation: annotations.Approve,
		value: func(o *actionOptions, c *cluster) *string { return strPtr(approver(o.by, c)) },
	}}
	cmd := o.command(&cobra.Command{
		Use:   "approve DEPLOYMENT [--by NAME]",
		Short: "Record an approval of the release (meshcanary.io/approve)",
		Long: `Write meshcanary.io/approve with who approved: --by, or else the kubeconfig
user of the current context, or else the local user name. Manual gates read
its presence.`,
		Example: `  meshcanary approve payment-service
  meshcanary approve payment-service --by "alice, change CHG-1234"`,
	})
	cmd.Flags().StringVar(&o.by, "by", "", "Who approves, or any text to record with the approval (default: the kubeconfig user, else the local user)")
	return cmd
}

// approver is the approval's value: what the user said, else who they are
// to the cluster, else who they are locally.
func approver(by string, c *cluster) string {
	if strings.TrimSpace(by) != "" {
		return by
	}
	if c != nil && c.user != "" {
		return c.user
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "meshcanary-cli"
}

// command completes a command annotation command's cobra.Command.
func (o *actionOptions) command(cmd *cobra.Command) *cobra.Command {
	cmd.Args = oneDeployment
	cmd.ValidArgsFunction = completeDeployments(o.common)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(cmd, o.output); err != nil {
			return err
		}
		if o.act.name == "rollback" && strings.TrimSpace(o.reason) == "" {
			return usagef(cmd, "--reason is required: say why, it is recorded in the release history")
		}
		if o.timeout <= 0 {
			return usagef(cmd, "--timeout %s: expected a duration longer than 0s", o.timeout)
		}
		if cmd.Flags().Changed("timeout") && !o.wait {
			return usagef(cmd, "--timeout needs --wait")
		}
		name, _ := deploymentArg(cmd, args[0])
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return o.run(ctx, name)
	}
	addOutputFlag(cmd, &o.output)
	o.timeout = defaultWaitTimeout
	if o.act.waitable {
		cmd.Flags().BoolVar(&o.wait, "wait", false, "Return only once the result is visible: "+o.act.waitsFor)
		cmd.Flags().DurationVar(&o.timeout, "timeout", defaultWaitTimeout, "How long --wait waits")
	}
	return cmd
}

func (o *actionOptions) run(ctx context.Context, name string) error {
	c, err := o.kube.connect()
	if err != nil {
		return err
	}
	before, err := c.optedIn(ctx, name)
	if err != nil {
		return err
	}
	value := o.act.value(o, c)
	doc := actionDoc{
		Namespace: before.Namespace, Name: before.Name, Command: o.act.name,
		Annotation: o.act.annotation, Value: value, Removed: value == nil,
	}
	prior, _ := status.Read(before)
	if w := precheck(o.act, prior, before); w != "" {
		doc.Warnings = append(doc.Warnings, w)
		if o.output == outputHuman {
			if err := newPrinter(o.streams.ErrOut).warn(w); err != nil {
				return err
			}
		}
	}

	after, err := c.annotate(ctx, before, o.act.annotation, value)
	if err != nil {
		return err
	}
	out := newPrinter(o.streams.Out)
	if o.output == outputHuman {
		if value == nil {
			out.printf("deployment.apps/%s: removed %s\n", after.Name, o.act.annotation)
		} else {
			out.printf("deployment.apps/%s annotated: %s=%q\n", after.Name, o.act.annotation, *value)
		}
	}
	if o.wait {
		after, err = o.waitForResult(ctx, c, prior, after)
		if err != nil {
			return err
		}
		doc.Waited = true
	}
	doc.Status = c.status(ctx, after, time.Now())
	if o.output != outputHuman {
		return printDoc(o.streams.Out, o.output, doc)
	}
	if o.wait {
		out.println(resultLine(o.act, doc.Status))
	}
	return out.err
}

// precheck warns when the controller will ignore the command: it acts on
// commands only while a release is in flight. The annotation is written
// all the same, because a release that starts in the same reconcile (the
// canary was just changed) does take it.
func precheck(act action, v status.View, d *appsv1.Deployment) string {
	phase := stages.Phase(v.Phase)
	switch act.name {
	case "rollback", "promote", "pause":
		if !phase.Active() {
			return fmt.Sprintf("no release of deployment %q is in flight (phase %s): the controller ignores %s unless a release starts first",
				d.Name, orNone(v.Phase), act.annotation)
		}
	case "resume":
		if _, pending := d.Annotations[annotations.Pause]; !pending && phase != stages.Paused {
			return fmt.Sprintf("deployment %q is not paused (phase %s)", d.Name, orNone(v.Phase))
		}
	}
	return ""
}

// annotate writes (or, with nil, removes) one annotation with a JSON merge
// patch, which touches that key only and needs no resourceVersion: a
// command must not fail because the controller just published its state.
func (c *cluster) annotate(ctx context.Context, d *appsv1.Deployment, key string, value *string) (*appsv1.Deployment, error) {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]*string{key: value}}})
	if err != nil {
		return nil, fmt.Errorf("encoding patch: %w", err)
	}
	out, err := c.kube.AppsV1().Deployments(d.Namespace).Patch(ctx, d.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "meshcanary-cli"})
	if apierrors.IsNotFound(err) {
		return nil, &notFoundError{name: d.Name, namespace: d.Namespace, err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("annotating deployment %q: %w", d.Name, err)
	}
	return out, nil
}

// waitForResult watches the Deployment until the command's result is
// visible, the controller is seen to ignore the command, or the timeout.
func (o *actionOptions) waitForResult(ctx context.Context, c *cluster, prior status.View, d *appsv1.Deployment) (*appsv1.Deployment, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	last := ""
	check := func(d *appsv1.Deployment) (bool, error) {
		done, why, err := o.result(ctx, c, prior, d)
		last = why
		return done, err
	}
	if done, err := check(d); done || err != nil {
		return d, err
	}
	rw, err := watchtools.NewRetryWatcherWithContext(ctx, d.ResourceVersion, deploymentWatcher{kube: c.kube, namespace: d.Namespace, name: d.Name})
	if err != nil {
		return nil, fmt.Errorf("watching deployment %q: %w", d.Name, err)
	}
	defer rw.Stop()
	recheck := time.NewTicker(vsRecheck)
	defer recheck.Stop()
	for {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("timed out after %s waiting for %s of deployment %q; last seen: %s", o.timeout, o.act.waitsFor, d.Name, last)
			}
			return nil, fmt.Errorf("stopped waiting: %w", ctx.Err())
		case <-recheck.C:
			// Only the VirtualService can have changed; the Deployment's
			// own changes arrive through the watch.
			if o.act.name != "rollback" {
				continue
			}
		case ev, ok := <-rw.ResultChan():
			if !ok {
				return nil, fmt.Errorf("watching deployment %q: the watch ended", d.Name)
			}
			switch ev.Type {
			case watch.Deleted:
				return nil, fmt.Errorf("deployment %q was deleted", d.Name)
			case watch.Error:
				return nil, fmt.Errorf("watching deployment %q: %w", d.Name, apierrors.FromObject(ev.Object))
			case watch.Added, watch.Modified:
				if next, ok := ev.Object.(*appsv1.Deployment); ok {
					d = next
				}
			default:
				continue
			}
		}
		if done, err := check(d); done || err != nil {
			return d, err
		}
	}
}

// result tells whether the command's effect is visible on d, and if not,
// what is seen instead; it fails when the controller consumed the command
// without acting on it.
func (o *actionOptions) result(ctx context.Context, c *cluster, prior status.View, d *appsv1.Deployment) (bool, string, error) {
	v, _ := status.Read(d)
	phase := stages.Phase(v.Phase)
	_, pending := d.Annotations[o.act.annotation]
	seen := "phase " + orNone(v.Phase)
	if pending {
		seen += ", " + o.act.annotation + " not yet acted on"
	}
	ignored := func() error {
		return fmt.Errorf("the controller did not act on %s: no release of deployment %q is in flight (phase %s): %s",
			o.act.annotation, d.Name, orNone(v.Phase), v.Message)
	}
	switch o.act.name {
	case "rollback":
		if pending {
			return false, seen, nil
		}
		// Every rollback stamps a new end time; an unchanged one means the
		// phase is left over from an earlier release.
		if phase != stages.RolledBack || v.State.Finished.Equal(prior.State.Finished) {
			return false, seen, ignored()
		}
		m, err := c.managedRoute(ctx, d)
		if err != nil {
			return false, seen + "; " + err.Error(), nil
		}
		r := m.route
		seen += fmt.Sprintf(", VirtualService %s: stable %d%%, canary %d%%", m.vs, r.StableWeight, r.CanaryWeight)
		return r.CanaryWeight == 0 && r.StableWeight == 100-r.ForeignWeight, seen, nil
	case "promote":
		switch {
		case phase == stages.Succeeded && !v.State.Finished.Equal(prior.State.Finished):
			return true, seen, nil
		case phase == stages.RolledBack && !v.State.Finished.Equal(prior.State.Finished):
			return false, seen, fmt.Errorf("release of deployment %q was rolled back instead: %s", d.Name, v.Message)
		case !pending && !phase.Active():
			return false, seen, ignored()
		}
		return false, seen, nil
	case "pause":
		switch {
		case phase == stages.Paused:
			return true, seen, nil
		case !pending && !phase.Active():
			return false, seen, ignored()
		}
		return false, seen, nil
	case "resume":
		return phase != stages.Paused, seen, nil
	}
	return true, seen, nil
}

// resultLine is the human summary after --wait.
func resultLine(act action, doc statusDoc) string {
	w := doc.Weights
	switch act.name {
	case "rollback":
		return fmt.Sprintf("rolled back: stable serves %s, canary %s (%s); phase %s", percent(w.Stable), percent(w.Canary), w.Source, doc.Phase)
	case "promote":
		return fmt.Sprintf("promoted: phase %s, revision %s", doc.Phase, orNone(doc.Revision))
	}
	return fmt.Sprintf("phase %s, stage %s, stable %s / canary %s", orNone(doc.Phase), orNone(doc.Stage), percent(w.Stable), percent(w.Canary))
}
