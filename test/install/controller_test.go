package install

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshcanary/meshcanary/test/harness"
)

// controllerProcess is `meshcanary controller` running as a subprocess,
// standing in for the chart's pods (which are kwok pods that run nothing).
type controllerProcess struct {
	t           testing.TB
	cmd         *exec.Cmd
	args        []string
	logPath     string
	metricsAddr string
	healthAddr  string
	done        chan struct{}
}

// startController runs the controller with the arguments the installed
// chart gives its container, changing only what must differ outside a pod:
// the bind addresses become free loopback ports, --policies points at a copy
// of the chart's ConfigMap, and --kubeconfig authenticates as the chart's
// ServiceAccount (a pod would use its mounted token).
func startController(t testing.TB, dep *appsv1.Deployment, kubeconfig, policiesFile string, metricsPort int) *controllerProcess {
	t.Helper()
	var c *controllerProcess
	for attempt := 1; ; attempt++ {
		c = tryStartController(t, dep, kubeconfig, policiesFile, metricsPort)
		err := c.waitReady(controllerContainer(t, dep))
		if err == nil {
			break
		}
		// A port picked free may be taken before the controller binds it.
		if attempt < 3 && c.exited() && strings.Contains(c.logs(), "address already in use") {
			metricsPort = freePort(t)
			continue
		}
		t.Fatalf("controller not ready: %v\nlog:\n%s", err, c.logs())
	}
	return c
}

func tryStartController(t testing.TB, dep *appsv1.Deployment, kubeconfig, policiesFile string, metricsPort int) *controllerProcess {
	t.Helper()
	args := controllerContainer(t, dep).Args
	if len(args) == 0 || args[0] != "controller" {
		t.Fatalf("the chart's controller container does not run `controller`: %v", args)
	}
	c := &controllerProcess{
		t:           t,
		metricsAddr: "127.0.0.1:" + strconv.Itoa(metricsPort),
		healthAddr:  "127.0.0.1:" + strconv.Itoa(freePort(t)),
		logPath:     filepath.Join(t.TempDir(), "controller.log"),
		done:        make(chan struct{}),
	}
	override := map[string]string{
		"--metrics-bind-address":      c.metricsAddr,
		"--health-probe-bind-address": c.healthAddr,
		"--policies":                  policiesFile,
	}
	for _, a := range args {
		name, _, _ := strings.Cut(a, "=")
		if v, ok := override[name]; ok {
			a = name + "=" + v
			delete(override, name)
		}
		c.args = append(c.args, a)
	}
	if len(override) > 0 {
		t.Fatalf("the chart does not pass %v; the controller would not serve what its probes and Service expect", override)
	}
	c.args = append(c.args, "--kubeconfig="+kubeconfig)

	logFile, err := os.Create(c.logPath)
	harness.Must(t, err)
	c.cmd = exec.Command(controllerBinary(t), c.args...)
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	// Killed with the test binary if that dies without cleanup.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	harness.Must(t, c.cmd.Start())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- controller log (%s) ----\n%s", c.logPath, tail(c.logs(), 80))
		}
	})
	go func() {
		_ = c.cmd.Wait()
		_ = logFile.Close()
		close(c.done)
	}()
	t.Cleanup(c.stop)
	return c
}

func controllerContainer(t testing.TB, dep *appsv1.Deployment) corev1.Container {
	t.Helper()
	for _, c := range dep.Spec.Template.Spec.Containers {
		if c.Name == "controller" {
			return c
		}
	}
	t.Fatalf("Deployment %s has no container named controller", dep.Name)
	return corev1.Container{}
}

func (c *controllerProcess) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// waitReady asks the endpoints the chart's probes ask until they answer,
// which also proves the probes point at something the controller serves.
func (c *controllerProcess) waitReady(ctr corev1.Container) error {
	paths := []string{ctr.LivenessProbe.HTTPGet.Path, ctr.ReadinessProbe.HTTPGet.Path}
	deadline := time.Now().Add(time.Minute)
	for {
		var last error
		ok := true
		for _, p := range paths {
			if err := httpOK("http://" + c.healthAddr + p); err != nil {
				ok, last = false, err
				break
			}
		}
		if ok {
			return nil
		}
		if c.exited() {
			return fmt.Errorf("the controller exited: %w", last)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer from %v within a minute: %w", paths, last)
		}
		<-time.After(100 * time.Millisecond)
	}
}

// stop ends the controller with SIGTERM, as the kubelet would, and kills it
// if it has not exited in time. Idempotent.
func (c *controllerProcess) stop() {
	if c.exited() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (c *controllerProcess) logs() string {
	b, _ := os.ReadFile(c.logPath)
	return string(b)
}

// metrics reads the controller's /metrics.
func (c *controllerProcess) metrics() (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get("http://" + c.metricsAddr + "/metrics") //nolint:noctx // loopback, short-lived
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// metricSum adds up every series of a family whose labels include want;
// absent families are 0, which is how client_golang shows a counter vector
// that was never incremented.
func (c *controllerProcess) metricSum(name string, want map[string]string) (float64, error) {
	fams, err := c.metrics()
	if err != nil {
		return 0, err
	}
	fam, ok := fams[name]
	if !ok {
		return 0, nil
	}
	sum := 0.0
	for _, m := range fam.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if !subsetOrEmpty(want, labels) {
			continue
		}
		switch {
		case m.GetCounter() != nil:
			sum += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			sum += m.GetGauge().GetValue()
		}
	}
	return sum, nil
}

func subsetOrEmpty(sub, of map[string]string) bool {
	for k, v := range sub {
		if of[k] != v {
			return false
		}
	}
	return true
}

func httpOK(u string) error {
	resp, err := http.Get(u) //nolint:noctx // loopback, short-lived
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	harness.Must(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
