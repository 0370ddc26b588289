package testenv

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"testing"
)

// Main is for TestMain: it starts one environment for the test package,
// assigns it to *env, runs the tests, stops the environment and exits with the
// tests' code. SIGINT or SIGTERM stop the environment and exit at once; a
// panic on the calling goroutine stops it before the panic goes on. A panic
// in a test goroutine ends the process without running deferred code, and
// then the kernel kills the components (Pdeathsig).
func Main(m *testing.M, opts Options, env **Env) {
	os.Exit(run(m, opts, env))
}

func run(m *testing.M, opts Options, env **Env) (code int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var (
		mu      sync.Mutex
		started *Env // set once Start has returned, for the signal handler
	)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case s := <-sigs:
			cancel()
			mu.Lock()
			e := started
			mu.Unlock()
			if e == nil {
				return // Start sees the cancellation and cleans up itself
			}
			fmt.Fprintf(os.Stderr, "testenv: %v: stopping the environment\n", s)
			if err := e.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
			if sig, ok := s.(syscall.Signal); ok {
				os.Exit(128 + int(sig))
			}
			os.Exit(1)
		case <-finished:
		}
	}()

	e, err := Start(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mu.Lock()
	started = e
	mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			_ = e.Stop()
			panic(r)
		}
		if err := e.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if code == 0 {
				code = 1
			}
		}
	}()
	if ctx.Err() != nil { // a signal arrived as Start returned
		return 1
	}
	*env = e
	code = m.Run()
	if code != 0 && os.Getenv("KEEP_TESTENV") != "1" {
		fmt.Fprintln(os.Stderr, "testenv: set KEEP_TESTENV=1 to keep the component logs and data after the run")
	}
	return code
}
