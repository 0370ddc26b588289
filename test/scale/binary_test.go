package scale

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/meshcanary/meshcanary/test/harness"
)

// controllerProcess is the real meshcanary binary running against the
// suite's control plane.
type controllerProcess struct {
	cmd        *exec.Cmd
	metricsURL string
}

// buildBinary builds cmd/meshcanary once per benchmark run.
func buildBinary(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "meshcanary")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/meshcanary/meshcanary/cmd/meshcanary").CombinedOutput()
	if err != nil {
		tb.Fatalf("building the controller: %v\n%s", err, out)
	}
	return bin
}

// startController runs bin with policies against promURL, watching every
// namespace, and waits until it is ready. It is stopped when tb ends.
func startController(tb testing.TB, bin, policies, promURL string) *controllerProcess {
	tb.Helper()
	dir := tb.TempDir()
	pol := filepath.Join(dir, "policies.yaml")
	harness.Must(tb, os.WriteFile(pol, []byte(policies), 0o600))
	metricsAddr, healthAddr := freeAddr(tb), freeAddr(tb)
	logf, err := os.Create(filepath.Join(dir, "controller.log"))
	harness.Must(tb, err)
	cmd := exec.Command(bin, "controller",
		"--kubeconfig="+suite.Env().Kubeconfig, "--prometheus-url="+promURL, "--policies="+pol,
		"--metrics-bind-address="+metricsAddr, "--health-probe-bind-address="+healthAddr,
		"--log-level=warn", "--progress-deadline=5m")
	// SCALE_ARGS adds controller flags, such as --workers=16, to compare
	// settings on the same scenario.
	cmd.Args = append(cmd.Args, strings.Fields(os.Getenv("SCALE_ARGS"))...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	harness.Must(tb, cmd.Start())
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		_ = logf.Close()
	})
	p := &controllerProcess{cmd: cmd, metricsURL: "http://" + metricsAddr + "/metrics"}
	harness.WaitFor(tb, "the controller to be ready", time.Minute, func() (bool, string) {
		resp, err := http.Get("http://" + healthAddr + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return p
}

func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	harness.Must(tb, err)
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}

// metric sums the samples of a counter or gauge family whose labels
// include match, from the controller's /metrics.
func (p *controllerProcess) metric(tb testing.TB, name string, match map[string]string) float64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.metricsURL, nil)
	harness.Must(tb, err)
	resp, err := http.DefaultClient.Do(req)
	harness.Must(tb, err)
	defer func() { _ = resp.Body.Close() }()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	harness.Must(tb, err)
	total := 0.0
	for _, m := range families[name].GetMetric() {
		if labelsMatch(m.GetLabel(), match) {
			total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return total
}

func labelsMatch[L interface {
	GetName() string
	GetValue() string
}](labels []L, match map[string]string) bool {
	found := 0
	for _, l := range labels {
		if v, ok := match[l.GetName()]; ok && v == l.GetValue() {
			found++
		}
	}
	return found == len(match)
}

// cpuSeconds is the process's user and system CPU time so far.
func (p *controllerProcess) cpuSeconds(tb testing.TB) float64 {
	tb.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	harness.Must(tb, err)
	// Fields after the command name, which is in parentheses and may
	// hold spaces: utime and stime are the 12th and 13th of them.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	const ticks = 100 // USER_HZ on Linux
	return (utime + stime) / ticks
}

// peakRSS is the process's peak resident set size in MB (VmHWM).
func (p *controllerProcess) peakRSS(tb testing.TB) float64 {
	tb.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	harness.Must(tb, err)
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// histogram summarises a histogram family of the controller's /metrics
// (all its series together): the mean and the upper bounds of the buckets
// holding the median and the 99th percentile.
func (p *controllerProcess) histogram(tb testing.TB, name string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.metricsURL, nil)
	harness.Must(tb, err)
	resp, err := http.DefaultClient.Do(req)
	harness.Must(tb, err)
	defer func() { _ = resp.Body.Close() }()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	harness.Must(tb, err)
	var count, sum float64
	cum := map[float64]float64{}
	for _, m := range families[name].GetMetric() {
		h := m.GetHistogram()
		count, sum = count+float64(h.GetSampleCount()), sum+h.GetSampleSum()
		for _, b := range h.GetBucket() {
			cum[b.GetUpperBound()] += float64(b.GetCumulativeCount())
		}
	}
	if count == 0 {
		return name + ": none"
	}
	bounds := slices.Sorted(maps.Keys(cum))
	at := func(q float64) string {
		for _, ub := range bounds {
			if cum[ub] >= q*count {
				return fmt.Sprint(ub)
			}
		}
		return "+Inf"
	}
	return fmt.Sprintf("%s: %.0f, mean %.3g, p50 ≤ %s, p99 ≤ %s", name, count, sum/count, at(0.5), at(0.99))
}
