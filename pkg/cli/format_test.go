package cli

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestMetricValuesReadAsTheControllerWritesThem(t *testing.T) {
	tests := []struct {
		name   string
		metric string
		value  *float64
		want   string
	}{
		{"an error rate is a percentage", "error-rate", float(0.0123), "1.23%"},
		{"a tiny error rate keeps two significant digits", "error-rate", float(0.000012), "0.0012%"},
		{"a zero error rate is 0%", "error-rate", float(0), "0%"},
		{"a success rate is a percentage", "success-rate", float(0.995), "99.5%"},
		{"a latency is a duration", "latency-p95", float(0.0234), "23ms"},
		{"a long latency keeps hundredths of seconds", "latency-p99", float(2.3456), "2.35s"},
		{"a request rate is per second", "request-rate", float(12.345), "12.35/s"},
		{"a custom metric is a plain number", "queue-depth", float(1234.4), "1234"},
		{"a missing value is no data", "error-rate", nil, "no data"},
		{"NaN is no data", "latency-p95", float(math.NaN()), "no data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := formatMetric(tt.metric, tt.value); got != tt.want {
				t.Errorf("formatMetric(%s) = %q, want %q", tt.metric, got, tt.want)
			}
		})
	}
}

func TestDurationsAreRoundedToSeconds(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		want string
	}{
		{"sub-second parts are rounded away", 65*time.Second + 400*time.Millisecond, "1m5s"},
		{"half a second rounds up", 1500 * time.Millisecond, "2s"},
		{"zero is 0s", 0, "0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := roundDuration(tt.d); got != tt.want {
				t.Errorf("roundDuration(%s) = %q, want %q", tt.d, got, tt.want)
			}
		})
	}
}

func TestAgesReadLikeKubectl(t *testing.T) {
	now := epoch()
	tests := []struct {
		name string
		t    time.Time
		want string
	}{
		{"minutes and seconds", now.Add(-5*time.Minute - 12*time.Second), "5m12s ago"},
		{"hours", now.Add(-3 * time.Hour), "3h ago"},
		{"an unknown time", time.Time{}, "<unknown>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ago(tt.t, now); got != tt.want {
				t.Errorf("ago = %q, want %q", got, tt.want)
			}
		})
	}
}

// failingWriter fails every write, like a pipe whose reader has gone.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestAWriteErrorEndsTheCommand(t *testing.T) {
	now := epoch()
	doc := buildList(nil, releaseSet{})
	doc.Items = append(doc.Items, listItem{Name: "web", Phase: "Idle"})
	if err := renderList(failingWriter{}, doc, false, now); err == nil || !strings.Contains(err.Error(), "broken pipe") {
		t.Errorf("renderList to a broken pipe = %v", err)
	}
	if err := renderLint(failingWriter{}, lintDoc{Checked: []string{"x"}}); err == nil {
		t.Error("renderLint to a broken pipe succeeded")
	}
}
