// Command localcluster runs the test stack of internal/testenv (etcd,
// kube-apiserver, controllers, scheduler, a kwok node, Istio's CRDs and
// Prometheus) for people to poke at, until SIGINT or SIGTERM.
//
// It writes <dir>/env.json once the stack is ready, so that
// hack/local-cluster.sh can tell a started stack from a starting one, and
// removes it before stopping.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/meshcanary/meshcanary/internal/testenv"
)

// state is the content of env.json.
type state struct {
	PID           int               `json:"pid"`
	Kubeconfig    string            `json:"kubeconfig"`
	PrometheusURL string            `json:"prometheusURL"`
	APIServerURL  string            `json:"apiServerURL"`
	Dir           string            `json:"dir"`
	Logs          map[string]string `json:"logs"`
	StartedAt     time.Time         `json:"startedAt"`
}

func main() {
	dir := flag.String("dir", filepath.Join(os.TempDir(), "meshcanary-local-cluster"), "state directory: env.json is written here")
	scrapeFile := flag.String("scrape-config", "", "file with Prometheus scrape_configs items (YAML list)")
	flag.Parse()
	if err := run(*dir, *scrapeFile); err != nil {
		log.Fatal(err)
	}
}

func run(dir, scrapeFile string) error {
	logger := log.New(os.Stderr, "", log.LstdFlags|log.Lmicroseconds)
	opts := testenv.Options{Logf: logger.Printf}
	if scrapeFile != "" {
		b, err := os.ReadFile(scrapeFile)
		if err != nil {
			return fmt.Errorf("reading scrape config: %w", err)
		}
		opts.ScrapeConfigs = string(b)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	statePath := filepath.Join(dir, "env.json")
	// A stale file would make the script report a stack that is not up yet.
	if err := os.Remove(statePath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}

	// Signals during start-up cancel Start, which cleans up after itself.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env, err := testenv.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		_ = os.Remove(statePath)
		if err := env.Stop(); err != nil {
			logger.Print(err)
		}
	}()

	st := state{
		PID:           os.Getpid(),
		Kubeconfig:    env.Kubeconfig,
		PrometheusURL: env.PrometheusURL,
		APIServerURL:  env.APIServerURL,
		Dir:           env.Dir,
		Logs:          env.Logs(),
		StartedAt:     time.Now(),
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	// Written whole and renamed, so a reader never sees half of it.
	tmp := statePath + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, statePath); err != nil {
		return err
	}

	fmt.Printf("export KUBECONFIG=%s\n", env.Kubeconfig)
	fmt.Printf("# Prometheus: %s\n", env.PrometheusURL)
	fmt.Printf("# started in %s; stop with Ctrl-C or SIGTERM to pid %d\n", env.StartupDuration.Round(time.Millisecond), os.Getpid())

	<-ctx.Done()
	logger.Print("stopping")
	return nil
}
