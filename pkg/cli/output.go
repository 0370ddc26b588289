package cli

import (
	"encoding/json"
	"fmt"
	"github.com/meshcanary/meshcanary/pkg/metrics"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/yaml"
)

// Output formats for -o. The empty format is the human one.
const (
	outputHuman = ""
	outputJSON  = "json"
	outputYAML  = "yaml"
)

func addOutputFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVarP(p, "output", "o", "", "Output format: json or yaml (default: readable text)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{outputJSON, outputYAML}, cobra.ShellCompDirectiveNoFileComp))
}

// checkOutput validates -o before anything is read from the cluster, so a
// typo costs nothing.
func checkOutput(cmd *cobra.Command, format string) error {
	switch format {
	case outputHuman, outputJSON, outputYAML:
		return nil
	}
	return usagef(cmd, "--output %q: expected json or yaml", format)
}

// printDoc writes v as one JSON or YAML document.
func printDoc(w io.Writer, format string, v any) error {
	switch format {
	case outputJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("writing JSON: %w", err)
		}
		return nil
	case outputYAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("writing YAML: %w", err)
		}
		_, err = w.Write(b)
		return err
	}
	return fmt.Errorf("unknown output format %q", format)
}

// printer writes text and keeps the first write error, so that rendering
// reads as a sequence of lines and the error is returned once: a closed
// pipe (`meshcanary list | head -1`) must end the command, not go unseen.
type printer struct {
	w   io.Writer
	err error
}

func newPrinter(w io.Writer) *printer { return &printer{w: w} }

func (p *printer) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func (p *printer) println(args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintln(p.w, args...)
	}
}

// warn writes one warning line and returns the write's error.
func (p *printer) warn(msg string) error {
	p.println("Warning: " + msg)
	return p.err
}

func (p *printer) write(b []byte) {
	if p.err == nil {
		_, p.err = p.w.Write(b)
	}
}

// table is a kubectl-like table: columns padded by three spaces. Its rows
// go to the printer's writer when flushed.
type table struct {
	p  *printer
	tw *tabwriter.Writer
}

func (p *printer) table() *table {
	return &table{p: p, tw: tabwriter.NewWriter(p.w, 0, 8, 3, ' ', 0)}
}

// row writes one row.
func (t *table) row(cells ...string) {
	for i, c := range cells {
		// A tab or newline inside a cell would break the table's columns.
		cells[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(c)
	}
	if t.p.err == nil {
		_, t.p.err = fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
	}
}

// flush aligns and writes the rows.
func (t *table) flush() {
	if err := t.tw.Flush(); t.p.err == nil {
		t.p.err = err
	}
}

// orNone shows an empty value as kubectl does.
func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// roundDuration rounds to whole seconds, which is as precise as stage
// clocks are worth reading.
func roundDuration(d time.Duration) string {
	return d.Round(time.Second).String()
}

// age is how long ago t was, as kubectl's AGE column shows it.
func age(t, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t))
}

// ago is age with "ago", for a column of past events.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return age(t, now) + " ago"
}

// percent formats a traffic weight.
func percent(w int) string { return strconv.Itoa(w) + "%" }

// Metric names whose values are shares or rates; as in pkg/metrics.
const (
	metricErrorRate   = "error-rate"
	metricSuccessRate = "success-rate"
	metricRequestRate = "request-rate"
)

// formatMetric prints a check's value the way the controller writes it in
// its messages: shares as percentages, latencies as durations, request
// rates per second, anything else as a plain number. The rules copy
// pkg/metrics' unexported formatting so that the table and the message
// next to it agree.
func formatMetric(metric string, v *float64) string {
	if v == nil || math.IsNaN(*v) {
		return "no data"
	}
	x := *v
	switch {
	case metric == metricErrorRate || metric == metricSuccessRate:
		return metrics.FormatPercent(x)
	case metric == metricRequestRate:
		return metrics.FormatPlain(x) + "/s"
	case strings.HasPrefix(metric, "latency-p"):
		return metrics.FormatSeconds(x)
	}
	return metrics.FormatPlain(x)
}

// formatCount prints a request count rounded down, as the controller does
// for the fractional counts Prometheus' increase() extrapolates.
func formatCount(n float64) string {
	return strconv.FormatFloat(math.Floor(n), 'f', 0, 64)
}
