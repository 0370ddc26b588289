package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/meshcanary/meshcanary/pkg/metrics"
	"github.com/meshcanary/meshcanary/pkg/stages"
	"github.com/meshcanary/meshcanary/pkg/status"
)

// historyShown is how many releases `status` lists; `history` lists all.
const historyShown = 5

type statusOptions struct {
	*common
	output    string
	watch     bool
	waitStart time.Duration
}

func newStatusCommand(c *common) *cobra.Command {
	o := &statusOptions{common: c}
	cmd := &cobra.Command{
		Use:   "status DEPLOYMENT",
		Short: "Show a rollout: phase, stage, weights, last analysis and recent releases",
		Long: `Show what the controller publishes about an opted-in Deployment: its phase,
the stage and how long it has run, the stable/canary weights of the managed
VirtualService route, the last analysis (canary vs stable against each
threshold), pending commands and the last releases.

With -w the status is redrawn live, on every change of the Deployment or its
CanaryRelease, until no release is in flight any more (the phase is no longer
Progressing, Paused or Promoting). The exit code then tells how the release
ended: 0 when it succeeded, 1 when it was rolled back or the configuration is
invalid. When no release is in flight to begin with, -w prints the status
once and exits the same way, unless --wait-start gives a release time to
start (for scripts that have just changed the canary).`,
		Example: `  meshcanary status payment-service
  meshcanary status payment-service -w
  kubectl set image deploy/payment-service-canary app=payment:v2 && meshcanary status payment-service -w --wait-start 2m
  meshcanary status payment-service -o json`,
		Args:              oneDeployment,
		ValidArgsFunction: completeDeployments(c),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(cmd, o.output); err != nil {
				return err
			}
			if o.waitStart != 0 && !o.watch {
				return usagef(cmd, "--wait-start needs -w")
			}
			name, _ := deploymentArg(cmd, args[0])
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return o.run(ctx, name)
		},
	}
	addOutputFlag(cmd, &o.output)
	cmd.Flags().BoolVarP(&o.watch, "watch", "w", false, "Redraw on every change until no release is in flight")
	cmd.Flags().DurationVar(&o.waitStart, "wait-start", 0, "With -w, when no release is in flight, wait this long for one to start and follow it (for scripts that have just changed the canary)")
	return cmd
}

func (o *statusOptions) run(ctx context.Context, name string) error {
	c, err := o.kube.connect()
	if err != nil {
		return err
	}
	d, err := c.optedIn(ctx, name)
	if err != nil {
		return err
	}
	if o.watch {
		return o.follow(ctx, c, d)
	}
	r, err := c.rolloutOf(ctx, d)
	if err != nil {
		return err
	}
	doc := c.status(ctx, r, time.Now())
	if o.output != outputHuman {
		return printDoc(o.streams.Out, o.output, doc)
	}
	return renderStatus(o.streams.Out, doc, time.Now())
}

// frameWriter draws successive states of a rollout. On a terminal each
// frame replaces the last and is redrawn every second so that the stage
// clock moves; elsewhere (a pipe, a file, a log) frames are appended, and
// only when something other than the clock changed.
type frameWriter struct {
	w        io.Writer
	output   string
	terminal bool
	title    string
	frames   int
	lastKey  string
}

// clearScreen moves the cursor home and clears the screen, as watch(1).
const clearScreen = "\x1b[H\x1b[2J"

func (f *frameWriter) draw(doc statusDoc, now time.Time, changed bool) error {
	key := frameKey(doc)
	if !f.terminal || f.output != outputHuman {
		if f.frames > 0 && key == f.lastKey {
			return nil
		}
	} else if !changed && f.frames > 0 && key == f.lastKey && !doc.Active {
		return nil
	}
	f.lastKey = key
	f.frames++
	p := newPrinter(f.w)
	switch {
	case f.output == outputYAML:
		if f.frames > 1 {
			p.println("---")
		}
		if p.err != nil {
			return p.err
		}
		return printDoc(f.w, f.output, doc)
	case f.output == outputJSON:
		return printDoc(f.w, f.output, doc)
	case f.terminal:
		p.printf("%s%s   %s\n\n", clearScreen, f.title, now.Format(time.TimeOnly))
	case f.frames > 1:
		p.println()
	}
	statusTo(p, doc, now)
	return p.err
}

// frameKey identifies what a frame shows apart from the clock.
func frameKey(doc statusDoc) string {
	doc.Clock = nil
	var b strings.Builder
	_ = printDoc(&b, outputJSON, doc)
	return b.String()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// follow redraws the status on every change of the Deployment or its
// CanaryRelease (a watch on each, resumed where it left off if the
// connection drops) until the release ends.
func (o *statusOptions) follow(ctx context.Context, c *cluster, d *appsv1.Deployment) error {
	fw := &frameWriter{
		w:        o.streams.Out,
		output:   o.output,
		terminal: isTerminal(o.streams.Out),
		title:    fmt.Sprintf("deployment/%s in %s: watching, Ctrl-C to stop", d.Name, d.Namespace),
	}
	cr, releasesRV, err := c.releaseForWatch(ctx, d)
	if err != nil {
		return err
	}
	r := rollout{d: d, cr: cr}
	// The weights are read again on every change (the controller writes
	// the VirtualService before it mirrors the summary on the Deployment),
	// and reused for the redraws in between.
	w, vsWarning := c.weights(ctx, r)
	doc := assemble(r, w, vsWarning, time.Now())
	if err := fw.draw(doc, time.Now(), true); err != nil {
		return err
	}
	waiting := false
	var startDeadline <-chan time.Time
	if !doc.Active {
		if o.waitStart <= 0 || doc.Phase == string(stages.Invalid) {
			return releaseResult(doc)
		}
		waiting = true
		timer := time.NewTimer(o.waitStart)
		defer timer.Stop()
		startDeadline = timer.C
	}

	rw, err := c.watchRollout(ctx, d, releasesRV)
	if err != nil {
		return err
	}
	defer rw.stop()
	var tick <-chan time.Time
	if fw.terminal && o.output == outputHuman {
		// Only the stage clock changes between events; a second is as
		// precise as it is shown.
		t := time.NewTicker(time.Second)
		defer t.Stop()
		tick = t.C
	}
	for {
		var changed bool
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped watching: %w", ctx.Err())
		case <-startDeadline:
			return fmt.Errorf("no release of deployment %q started within %s (phase %s)", d.Name, o.waitStart, orNone(doc.Phase))
		case <-tick:
			if err := fw.draw(assemble(r, w, vsWarning, time.Now()), time.Now(), false); err != nil {
				return err
			}
			continue
		case ev, ok := <-rw.deployments:
			changed, err = r.applyDeployment(ev, ok)
		case ev, ok := <-rw.releases:
			changed, err = r.applyRelease(ev, ok)
		}
		if err != nil {
			return err
		}
		if !changed {
			continue
		}
		w, vsWarning = c.weights(ctx, r)
		doc = assemble(r, w, vsWarning, time.Now())
		if err := fw.draw(doc, time.Now(), true); err != nil {
			return err
		}
		if waiting {
			switch {
			case doc.Active:
				waiting = false
				startDeadline = nil
			case doc.Phase == string(stages.Invalid) && r.mirrored():
				return releaseResult(doc)
			}
			continue
		}
		// The CanaryRelease says first that a release ended; the watch
		// ends once the controller has also acted on it (weights written,
		// summary mirrored), so that the last frame shows the final split.
		if !doc.Active && r.mirrored() {
			return releaseResult(doc)
		}
	}
}

// releaseResult turns the phase a watch ended on into the command's
// result, so that scripts can tell a promoted release from a rolled back
// one by the exit code.
func releaseResult(doc statusDoc) error {
	switch stages.Phase(doc.Phase) {
	case stages.RolledBack:
		return fmt.Errorf("release of deployment %q was rolled back: %s", doc.Name, doc.Message)
	case stages.Invalid:
		return fmt.Errorf("deployment %q: configuration invalid: %s", doc.Name, doc.Message)
	}
	return nil
}

// renderStatus prints a rollout for people.
func renderStatus(w io.Writer, doc statusDoc, now time.Time) error {
	p := newPrinter(w)
	statusTo(p, doc, now)
	return p.err
}

func statusTo(p *printer, doc statusDoc, now time.Time) {
	t := p.table()
	t.row("Deployment:", doc.Namespace+"/"+doc.Name)
	phase := orNone(doc.Phase)
	if doc.Phase == "" {
		phase += " (not reconciled yet)"
	}
	t.row("Phase:", phase)
	if stages.Queued(doc.State) {
		// The phase is still the last release's: say that a new one waits.
		t.row("Queued:", fmt.Sprintf("since %s, waiting for a release slot (--max-concurrent-releases); it starts, with stable keeping all traffic until then, when one frees",
			ago(doc.State.QueuedAt, now)))
	}
	t.row("Stage:", stageLine(doc))
	weights := fmt.Sprintf("stable %s, canary %s", percent(doc.Weights.Stable), percent(doc.Weights.Canary))
	if doc.Weights.Other > 0 {
		weights += fmt.Sprintf(", other destinations %s", percent(doc.Weights.Other))
	}
	t.row("Weights:", weights+"   ("+doc.Weights.Source+")")
	t.row("Revision:", orNone(doc.Revision))
	t.row("Message:", orNone(doc.Message))
	if len(doc.PendingCommands) > 0 {
		var cmds []string
		for _, k := range sortedKeys(doc.PendingCommands) {
			cmds = append(cmds, k+"="+doc.PendingCommands[k])
		}
		t.row("Pending:", strings.Join(cmds, ", ")+"   (not yet acted on by the controller)")
	}
	if doc.Verdicts.Last != "" {
		t.row("Verdicts:", fmt.Sprintf("last %s; this stage %d passed, %d failed in a row, %d without metrics in a row",
			doc.Verdicts.Last, doc.Verdicts.Passes, doc.Verdicts.Failures, doc.Verdicts.Outages))
	}
	if a := doc.Analysis; a != nil {
		t.row("Analysis:", fmt.Sprintf("%s %s, over %s: canary %s requests, stable %s requests",
			a.Verdict, ago(a.At, now), roundDuration(time.Duration(a.WindowSeconds*float64(time.Second))),
			formatCount(a.CanaryRequests), formatCount(a.StableRequests)))
		if a.Message != "" {
			t.row("", a.Message)
		}
	}
	for _, warning := range doc.Warnings {
		t.row("Warning:", warning)
	}
	t.flush()

	if a := doc.Analysis; a != nil && len(a.Checks) > 0 {
		p.println()
		checksTo(p, a.Checks)
	}
	if a := doc.Analysis; a != nil && len(a.Forecast) > 0 {
		p.println()
		forecastTo(p, a.Forecast)
	}
	if len(doc.History) > 0 {
		p.println()
		p.println("Recent releases:")
		h := doc.History
		if len(h) > historyShown {
			h = h[len(h)-historyShown:]
		}
		historyTo(p, h, now, false)
	}
}

// stageLine is the stage, its clock and what the clock means.
func stageLine(doc statusDoc) string {
	s := orNone(doc.Stage)
	switch stages.Phase(doc.Phase) {
	case stages.Promoting:
		return s + ", promoting: stable is being updated to the canary's template"
	case stages.Progressing, stages.Paused:
	default:
		return s
	}
	c := doc.Clock
	if c == nil {
		return s + ", waiting for the canary to be scaled and available"
	}
	elapsed := time.Duration(c.ElapsedSeconds * float64(time.Second))
	s += ", " + roundDuration(elapsed) + " elapsed"
	if c.RemainingSeconds != nil {
		s += ", " + roundDuration(time.Duration(*c.RemainingSeconds*float64(time.Second))) + " left"
	} else {
		s += " (stage duration comes from the policy)"
	}
	if c.Paused {
		s += ", paused: the stage clock is stopped"
	}
	return s
}

// checksTo prints the last analysis' checks as a table, with the counts
// each verdict rests on.
func checksTo(p *printer, checks []status.Check) {
	t := p.table()
	t.row("METRIC", "CANARY", "STABLE", "BOUND", "THRESHOLD", "VERDICT", "EVIDENCE")
	for _, c := range checks {
		t.row(c.Metric, formatMetric(c.Metric, c.Canary), formatMetric(c.Metric, c.Stable), orNone(c.Bound), orNone(c.Threshold), c.Verdict, evidenceText(c.Evidence))
	}
	t.flush()
}

// evidenceText is "canary 5/40 5xx (2.1%–34.5%), stable 4/3960 (0.03%–0.3%),
// limit 1.3%": the counts and their 95% anytime-valid intervals.
func evidenceText(e *status.Evidence) string {
	if e == nil {
		return "<point values>"
	}
	s := fmt.Sprintf("canary %s/%s %s (%s–%s), stable %s/%s (%s–%s)",
		formatCount(e.CanaryCount), formatCount(e.CanaryTotal), e.Counted, metrics.FormatPercent(e.CanaryLow), metrics.FormatPercent(e.CanaryHigh),
		formatCount(e.StableCount), formatCount(e.StableTotal), metrics.FormatPercent(e.StableLow), metrics.FormatPercent(e.StableHigh))
	if e.Limit != nil {
		s += ", limit " + metrics.FormatPercent(*e.Limit)
	}
	return s
}

// forecastTo prints what each remaining stage can expect at the current
// request rate, so a release too quiet for its plan says so.
func forecastTo(p *printer, f []status.Forecast) {
	t := p.table()
	t.row("STAGE", "WEIGHT", "DURATION", "EXPECTED CANARY REQUESTS", "NEEDS", "CATCHES ERROR RATES FROM")
	for _, s := range f {
		needs := "its duration"
		if s.NeedsSeconds > 0 {
			needs = roundDuration(time.Duration(s.NeedsSeconds * float64(time.Second)))
		}
		catches := "none"
		if s.Detectable != nil {
			catches = metrics.FormatPercent(*s.Detectable)
		}
		t.row(strconv.Itoa(s.Stage), strconv.Itoa(s.Weight)+"%", roundDuration(time.Duration(s.DurationSeconds*float64(time.Second))),
			formatCount(s.CanaryRequests), needs, catches)
	}
	t.flush()
}

// renderHistory prints releases, oldest first as recorded.
func renderHistory(w io.Writer, releases []status.Release, now time.Time, wide bool) error {
	p := newPrinter(w)
	historyTo(p, releases, now, wide)
	return p.err
}

func historyTo(p *printer, releases []status.Release, now time.Time, wide bool) {
	t := p.table()
	if wide {
		t.row("STARTED", "DURATION", "REVISION", "IMAGES", "STAGES", "RESULT", "DECIDED BY", "REASON")
	} else {
		t.row("FINISHED", "REVISION", "STAGES", "RESULT", "DECIDED BY", "REASON")
	}
	for _, r := range releases {
		if wide {
			took := "<unknown>"
			if !r.Started.IsZero() && !r.Finished.IsZero() {
				took = roundDuration(r.Finished.Sub(r.Started))
			}
			t.row(ago(r.Started, now), took, orNone(r.Revision), orNone(strings.Join(r.Images, ",")),
				orNone(r.StagesReached), orNone(r.Result), orNone(r.DecidedBy), orNone(r.Reason))
			continue
		}
		t.row(ago(r.Finished, now), orNone(r.Revision), orNone(r.StagesReached), orNone(r.Result), orNone(r.DecidedBy), orNone(r.Reason))
	}
	t.flush()
}
