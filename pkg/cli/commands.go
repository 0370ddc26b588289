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

func newRetryCommand(c *common) *cobra.Command {
	o := &actionOptions{common: c, act: action{
		name: "retry", annotation: annotations.Retry, waitable: true,
		waitsFor: "a new release of the canary's revision to be Progressing",
		value:    func(*actionOptions, *cluster) *string { return strPtr("true") },
	}}
	return o.command(&cobra.Command{
		Use:   "retry DEPLOYMENT",
		Short: "Release the canary's revision again, from stage 1, after a rollback",
		Long: `Ask the controller to release the canary's revision again from the first
stage, by writing meshcanary.io/retry=true: after its release was rolled back
or aborted, or after stable was reverted under it (kubectl rollout undo), a
revision is not released again on its own until the canary changes.

Refused while a release is in flight: the controller would ignore it.

With --wait the command returns once a new release of the canary's revision
is Progressing.`,
		Example: `  meshcanary retry payment-service
  meshcanary retry payment-service --wait`,
	})
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
	var warnings []string
	// A command must go through even when the CanaryRelease cannot be
	// read (a rollback above all): the precheck then goes by the summary
	// on the Deployment, and says so.
	cr, crErr := c.release(ctx, before)
	if crErr != nil {
		warnings = append(warnings, crErr.Error())
	}
	prior, _ := status.ReadWith(before, cr)
	w, refused := precheck(o.act, prior, before)
	if refused {
		return &refusedError{msg: w}
	}
	if w != "" {
		warnings = append(warnings, w)
	}
	doc.Warnings = warnings
	if o.output == outputHuman {
		e := newPrinter(o.streams.ErrOut)
		for _, w := range warnings {
			if err := e.warn(w); err != nil {
				return err
			}
		}
	}

	after, err := c.annotate(ctx, before, o.act.annotation, value)
	if err != nil {
		return err
	}
	r := rollout{d: after, cr: cr}
	out := newPrinter(o.streams.Out)
	if o.output == outputHuman {
		if value == nil {
			out.printf("deployment.apps/%s: removed %s\n", after.Name, o.act.annotation)
		} else {
			out.printf("deployment.apps/%s annotated: %s=%q\n", after.Name, o.act.annotation, *value)
		}
	}
	if o.wait {
		r, err = o.waitForResult(ctx, c, prior, after)
		if err != nil {
			return err
		}
		doc.Waited = true
	}
	doc.Status = c.status(ctx, r, time.Now())
	if o.output != outputHuman {
		return printDoc(o.streams.Out, o.output, doc)
	}
	if o.wait {
		out.println(resultLine(o.act, doc.Status))
	}
	return out.err
}

// precheck warns when the controller will ignore the command: it acts on
// most commands only while a release is in flight. The annotation is
// written all the same, because a release that starts in the same
// reconcile (the canary was just changed) does take it. refuse is true for
// a command that must not be written at all: retry while a release is in
// flight, which the controller would drop unread.
func precheck(act action, v status.View, d *appsv1.Deployment) (msg string, refuse bool) {
	phase := stages.Phase(v.Phase)
	switch act.name {
	case "rollback", "promote", "pause":
		if act.name == "rollback" && stages.Queued(v.State) {
			return "", false // cancels the queued release before it starts
		}
		if !phase.Active() {
			return fmt.Sprintf("no release of deployment %q is in flight (phase %s): the controller ignores %s unless a release starts first",
				d.Name, orNone(v.Phase), act.annotation), false
		}
	case "resume":
		if _, pending := d.Annotations[annotations.Pause]; !pending && phase != stages.Paused {
			return fmt.Sprintf("deployment %q is not paused (phase %s)", d.Name, orNone(v.Phase)), false
		}
	case "retry":
		if phase.Active() {
			return fmt.Sprintf("a release of deployment %q is in flight (phase %s, revision %s): %s is for after a release was rolled back, aborted or reverted; the controller ignores it now",
				d.Name, v.Phase, orNone(v.Revision), act.annotation), true
		}
		if !retryable(v) {
			last := "none"
			if n := len(v.History); n > 0 {
				last = orNone(v.History[n-1].Result)
			}
			return fmt.Sprintf("the last release of deployment %q was not rolled back, aborted or reverted (phase %s, last result %s): the controller ignores %s unless the canary's revision differs from stable's",
				d.Name, orNone(v.Phase), last, act.annotation), false
		}
	}
	return "", false
}

// retryable reports whether the last release ended in a way retry is for:
// rolled back, aborted, or reverted (stable changed under it).
func retryable(v status.View) bool {
	if stages.Phase(v.Phase) == stages.RolledBack {
		return true
	}
	if n := len(v.History); n > 0 {
		switch stages.Result(v.History[n-1].Result) {
		case stages.ResultAborted, stages.ResultReverted, stages.ResultRolledBack, stages.ResultManualRollback:
			return true
		}
	}
	return false
}

// refusedError is a command the precheck refused to write because the
// controller would drop it unread: exit code 1, nothing changed.
type refusedError struct{ msg string }

func (e *refusedError) Error() string { return e.msg + "; nothing was written" }

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
// The CanaryRelease is read again on every change of the Deployment: the
// controller records a decision there before it acts on it and mirrors the
// summary (and removes the commands it consumed) on the Deployment last,
// so a read after the Deployment changed is at least as new, which a
// second watch, whose events arrive independently, would not promise.
func (o *actionOptions) waitForResult(ctx context.Context, c *cluster, prior status.View, d *appsv1.Deployment) (rollout, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	var r rollout
	last := ""
	check := func(d *appsv1.Deployment) (bool, error) {
		cr, err := c.release(ctx, d)
		if err != nil {
			return false, fmt.Errorf("waiting for the result of %s: %w", o.act.annotation, err)
		}
		r = rollout{d: d, cr: cr}
		done, why, err := o.result(ctx, c, prior, r)
		last = why
		return done, err
	}
	if done, err := check(d); done || err != nil {
		return r, err
	}
	rw, err := watchtools.NewRetryWatcherWithContext(ctx, d.ResourceVersion, deploymentWatcher{kube: c.kube, namespace: d.Namespace, name: d.Name})
	if err != nil {
		return rollout{}, fmt.Errorf("watching deployment %q: %w", d.Name, err)
	}
	defer rw.Stop()
	recheck := time.NewTicker(vsRecheck)
	defer recheck.Stop()
	for {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return rollout{}, fmt.Errorf("timed out after %s waiting for %s of deployment %q; last seen: %s", o.timeout, o.act.waitsFor, d.Name, last)
			}
			return rollout{}, fmt.Errorf("stopped waiting: %w", ctx.Err())
		case <-recheck.C:
			// Only the VirtualService can have changed; the Deployment's
			// own changes arrive through the watch.
			if o.act.name != "rollback" {
				continue
			}
		case ev, ok := <-rw.ResultChan():
			changed, err := r.applyDeployment(ev, ok)
			if err != nil {
				return rollout{}, err
			}
			if !changed {
				continue
			}
		}
		if done, err := check(r.d); done || err != nil {
			return r, err
		}
	}
}

// result tells whether the command's effect is visible on r, and if not,
// what is seen instead; it fails when the controller consumed the command
// without acting on it. An effect counts once the controller has finished
// acting on it (r.mirrored): the CanaryRelease records a decision before
// the weights, the scale and the Deployment's summary follow.
func (o *actionOptions) result(ctx context.Context, c *cluster, prior status.View, r rollout) (bool, string, error) {
	done, seen, err := o.effect(ctx, c, prior, r)
	if done && !r.mirrored() {
		return false, seen + ", the controller is still acting on it", nil
	}
	return done, seen, err
}

func (o *actionOptions) effect(ctx context.Context, c *cluster, prior status.View, r rollout) (bool, string, error) {
	d := r.d
	v, _ := r.view()
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
		rt := m.route
		seen += fmt.Sprintf(", VirtualService %s: stable %d%%, canary %d%%", m.vs, rt.StableWeight, rt.CanaryWeight)
		return rt.CanaryWeight == 0 && rt.StableWeight == 100-rt.ForeignWeight, seen, nil
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
	case "retry":
		if v.Revision != "" {
			seen += ", revision " + v.Revision
		}
		// Every release stamps a new start time; the retry starts one.
		started := !v.State.Started.IsZero() && v.State.Started.After(prior.State.Started)
		switch {
		case started:
			return true, seen, nil
		case pending:
			return false, seen, nil
		}
		return false, seen, fmt.Errorf("the controller did not act on %s: no new release of deployment %q started (phase %s): the canary runs stable's template, or a release was in flight; its CommandIgnored event says which",
			o.act.annotation, d.Name, orNone(v.Phase))
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
	case "retry":
		return fmt.Sprintf("retrying: phase %s, revision %s, stage %s", doc.Phase, orNone(doc.Revision), orNone(doc.Stage))
	}
	return fmt.Sprintf("phase %s, stage %s, stable %s / canary %s", orNone(doc.Phase), orNone(doc.Stage), percent(w.Stable), percent(w.Canary))
}
