package testenv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Options configures Start.
type Options struct {
	// ScrapeConfigs is YAML for Prometheus' `scrape_configs:` list (the items), e.g.
	// "- job_name: test\n  static_configs:\n  - targets: ['127.0.0.1:1234']\n". May be empty.
	ScrapeConfigs string
	Logf          func(format string, args ...any) // progress lines; nil = silent
}

// Env is a running stack. Its exported fields are set by Start and must not
// be changed.
type Env struct {
	Config        *rest.Config // admin
	Kubeconfig    string       // path of an admin kubeconfig file
	PrometheusURL string       // http://127.0.0.1:<port>
	Dir           string       // temp dir with logs/ and data

	APIServerURL    string        // https://127.0.0.1:<port>
	EtcdURL         string        // http://127.0.0.1:<port>
	StartupDuration time.Duration // how long Start took

	opts    Options
	bins    binaries
	began   time.Time
	spawner *spawner
	http    *http.Client // readiness probes; skips TLS verification like the kubeconfig
	token   string       // admin bearer token
	kube    kubernetes.Interface
	dyn     dynamic.Interface

	mu    sync.Mutex
	procs []*process // every process ever started, for Stop
	logs  map[string]string

	promMu     sync.Mutex // serialises SetScrapeConfigs
	promConfig string     // path of prometheus.yml
	promGen    int        // generation of the config last written

	stopOnce sync.Once
	stopErr  error
}

const (
	// stepTimeout bounds each readiness wait when the caller's context has no
	// deadline; generous because `go test ./...` starts one stack per package
	// on two cores at the same time.
	stepTimeout  = 2 * time.Minute
	stopGrace    = 3 * time.Second
	pollInterval = 50 * time.Millisecond
)

// Start brings up the whole stack and returns once every component is ready.
// On error, everything started so far has been stopped.
func Start(ctx context.Context, opts Options) (_ *Env, err error) {
	began := time.Now()
	bins, err := findBinaries()
	if err != nil {
		return nil, err
	}
	removed := sweepStaleDirs()
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("testenv: creating temp dir: %w", err)
	}
	e := &Env{
		Dir:     dir,
		opts:    opts,
		bins:    bins,
		began:   began,
		spawner: newSpawner(),
		logs:    map[string]string{},
		http: &http.Client{
			Timeout:   5 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // the apiserver's self-signed cert on loopback
		},
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("testenv: %w", err)
			if stopErr := e.Stop(); stopErr != nil {
				err = errors.Join(err, stopErr)
			}
		}
	}()
	if os.Getenv("KEEP_TESTENV") != "1" {
		if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*stepTimeout)
		defer cancel()
	}
	e.logf("starting in %s", dir)
	if len(removed) > 0 {
		e.logf("removed %d directories left by crashed runs", len(removed))
	}

	// The API server's credentials and etcd do not depend on each other, and
	// the RSA key takes a noticeable share of a second.
	credsErr := make(chan error, 1)
	go func() { credsErr <- e.writeCredentials() }()
	etcdErr := e.startEtcd(ctx)
	if err := errors.Join(etcdErr, <-credsErr); err != nil {
		return nil, err
	}
	if err := e.startAPIServer(ctx); err != nil {
		return nil, err
	}
	if err := e.setupClients(); err != nil {
		return nil, err
	}

	// Everything else only needs the API server (or nothing at all).
	steps := []func(context.Context) error{
		e.startControllerManager,
		e.startScheduler,
		e.startKwok,
		e.applyCRDs,
		e.startPrometheus,
	}
	errs := make([]error, len(steps))
	var wg sync.WaitGroup
	for i, step := range steps {
		wg.Go(func() { errs[i] = step(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	e.StartupDuration = time.Since(began)
	e.logf("stack ready in %s (kubeconfig %s, prometheus %s)", e.StartupDuration.Round(time.Millisecond), e.Kubeconfig, e.PrometheusURL)
	return e, nil
}

// Stop kills every process the environment started and removes Dir unless
// KEEP_TESTENV=1. It is idempotent and safe to call concurrently.
func (e *Env) Stop() error {
	e.stopOnce.Do(func() {
		e.mu.Lock()
		procs := append([]*process(nil), e.procs...)
		e.mu.Unlock()
		// etcd goes last: it drains its clients' streams before exiting, so
		// while the API server lives it would sit out the whole grace period.
		var clients, storage []*process
		for _, p := range procs {
			if p.name == "etcd" {
				storage = append(storage, p)
			} else {
				clients = append(clients, p)
			}
		}
		var errs []error
		for _, tier := range [][]*process{clients, storage} {
			killed, err := terminate(tier, stopGrace)
			errs = append(errs, err)
			if len(killed) > 0 {
				e.logf("killed %v: still running %s after SIGTERM", killed, stopGrace)
			}
		}
		e.stopErr = errors.Join(errs...)
		e.spawner.close()
		if t, ok := e.http.Transport.(*http.Transport); ok {
			t.CloseIdleConnections()
		}
		if os.Getenv("KEEP_TESTENV") == "1" {
			// Without an owner the directory is never swept.
			_ = os.Remove(filepath.Join(e.Dir, ownerFile))
			e.logf("stopped; KEEP_TESTENV=1 keeps %s", e.Dir)
			return
		}
		if err := os.RemoveAll(e.Dir); err != nil {
			e.stopErr = errors.Join(e.stopErr, fmt.Errorf("removing %s: %w", e.Dir, err))
		}
		e.logf("stopped")
	})
	if e.stopErr != nil {
		return fmt.Errorf("testenv: stop: %w", e.stopErr)
	}
	return nil
}

// Logs maps each component to the path of its log file.
func (e *Env) Logs() map[string]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := make(map[string]string, len(e.logs))
	for k, v := range e.logs {
		m[k] = v
	}
	return m
}

func (e *Env) logf(format string, args ...any) {
	if e.opts.Logf == nil {
		return
	}
	e.opts.Logf("testenv [%5.2fs] "+format, append([]any{time.Since(e.began).Seconds()}, args...)...)
}

// start spawns a component and records it for Stop and Logs.
func (e *Env) start(name, bin string, args []string) (*process, error) {
	logPath := filepath.Join(e.Dir, "logs", name+".log")
	p, err := spawn(e.spawner, name, bin, args, logPath)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.logs[name] = logPath
	e.mu.Unlock()
	return p, nil
}

// startListening starts a component on nports fresh ports and waits for ready.
// A component that lost the race for one of its ports is started again on
// new ones, because freePorts cannot hold a port across exec.
func (e *Env) startListening(ctx context.Context, name, bin string, nports int,
	args func(ports []int) []string, ready func(ctx context.Context, p *process, ports []int) error,
) ([]int, *process, error) {
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(nports)
		if err != nil {
			return nil, nil, err
		}
		p, err := e.start(name, bin, args(ports))
		if err != nil {
			return nil, nil, err
		}
		err = ready(ctx, p, ports)
		if err == nil {
			return ports, p, nil
		}
		if attempt < 3 && p.exited() && strings.Contains(p.tail(20), "address already in use") {
			e.logf("%s lost a port race, retrying on new ports", name)
			continue
		}
		return nil, nil, err
	}
}

// poll calls check until it succeeds, p (if any) exits, or ctx or stepTimeout
// ends. Errors carry the last check error and the log tail of p.
func (e *Env) poll(ctx context.Context, p *process, what string, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	var exited <-chan struct{}
	if p != nil {
		exited = p.done
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		last := check(ctx)
		if last == nil {
			e.logf("%s", what)
			return nil
		}
		select {
		case <-exited:
			return p.exitError("before " + what)
		case <-ctx.Done():
			err := fmt.Errorf("waiting for %s: %w (last check: %w)", what, ctx.Err(), last)
			if p != nil {
				err = fmt.Errorf("%w; last lines of %s:\n%s", err, p.logPath, p.tail(40))
			}
			return err
		case <-tick.C:
		}
	}
}

// getOK succeeds when url answers 200, optionally with the admin token.
func (e *Env) getOK(ctx context.Context, url string, auth bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

const (
	dirPrefix = "meshcanary-testenv-"
	// ownerFile holds the pid of the process that owns an environment's
	// directory, so that a later Start can tell a crashed run's leftovers.
	ownerFile = "owner.pid"
)

// sweepStaleDirs removes the directories of environments whose owner died
// without Stop (a panic, a `go test` timeout, SIGKILL): Pdeathsig ends their
// processes, but their etcd and Prometheus data, over 100 MB each, would
// otherwise pile up in the temp dir. It returns what it removed.
func sweepStaleDirs() []string {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	var removed []string
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue // kept on purpose, or being set up right now
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue // alive, or not ours to judge
		}
		if os.RemoveAll(d) == nil {
			removed = append(removed, d)
		}
	}
	return removed
}
