// Command meshsim runs the simulated mesh data plane against a Kubernetes API
// server and serves Istio's metrics for Prometheus to scrape.
//
//	meshsim --kubeconfig kc.yaml --service shop/payment-service=20 [--service ns/host=rps ...]
//	        [--listen 127.0.0.1:0] [--max-duration 30m] [--max-requests N] [--seed N]
//
// Once serving it prints "listening on http://ADDR/metrics" on stdout, then
// generates load until a signal or a bound ends it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/meshcanary/meshcanary/test/meshsim"
)

const (
	defaultMaxDuration = 30 * time.Minute
	// defaultMaxRequests keeps a bound even when nobody sets one: half an
	// hour at about 550 requests per second.
	defaultMaxRequests = 1_000_000
	shutdownGrace      = 5 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "meshsim:", err)
		os.Exit(1)
	}
}

type options struct {
	kubeconfig  string
	listen      string
	services    serviceList
	maxDuration time.Duration
	maxRequests int64
	seed        int64
}

// serviceList is the repeatable --service flag.
type serviceList []meshsim.Service

func (l *serviceList) String() string {
	parts := make([]string, len(*l))
	for i, s := range *l {
		parts[i] = fmt.Sprintf("%s/%s=%g", s.Namespace, s.Host, s.RPS)
	}
	return strings.Join(parts, ",")
}

func (l *serviceList) Set(v string) error {
	svc, err := parseService(v)
	if err != nil {
		return err
	}
	*l = append(*l, svc)
	return nil
}

func parseService(v string) (meshsim.Service, error) {
	target, rate, ok := strings.Cut(v, "=")
	if !ok {
		return meshsim.Service{}, fmt.Errorf("service %q: want ns/host=rps", v)
	}
	ns, host, ok := strings.Cut(target, "/")
	if !ok || ns == "" || host == "" || strings.Contains(host, "/") {
		return meshsim.Service{}, fmt.Errorf("service %q: want ns/host=rps", v)
	}
	rps, err := strconv.ParseFloat(rate, 64)
	if err != nil || !(rps > 0) || rps > 1e6 {
		return meshsim.Service{}, fmt.Errorf("service %q: rps must be a number above 0 and at most 1e6", v)
	}
	return meshsim.Service{Namespace: ns, Host: host, RPS: rps}, nil
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("meshsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the API server to read routing from (required)")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:0", "loopback address to serve /metrics on")
	fs.Var(&o.services, "service", "ns/host=rps to load (repeatable)")
	fs.DurationVar(&o.maxDuration, "max-duration", defaultMaxDuration, "stop generating after this long")
	fs.Int64Var(&o.maxRequests, "max-requests", defaultMaxRequests, "stop generating after this many requests")
	fs.Int64Var(&o.seed, "seed", 1, "seed of the simulated randomness")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.kubeconfig == "":
		return o, errors.New("--kubeconfig is required")
	case len(o.services) == 0:
		return o, errors.New("at least one --service ns/host=rps is required")
	case o.maxDuration <= 0:
		return o, errors.New("--max-duration must be > 0")
	case o.maxRequests <= 0:
		return o, errors.New("--max-requests must be > 0")
	}
	if err := checkLoopback(o.listen); err != nil {
		return o, err
	}
	return o, nil
}

// checkLoopback refuses anything but a loopback address: the metrics are for
// a Prometheus on the same machine, and nothing else should reach them.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--listen %q: only loopback addresses (127.0.0.0/8, ::1, localhost) are allowed", addr)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	rest, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	rest.UserAgent = "meshsim"
	kube, err := kubernetes.NewForConfig(rest)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(rest)
	if err != nil {
		return err
	}
	sim, err := meshsim.New(meshsim.Config{
		Kube:        kube,
		Dynamic:     dyn,
		Services:    o.services,
		MaxDuration: o.maxDuration,
		MaxRequests: o.maxRequests,
		Seed:        o.seed,
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	// "localhost" could in principle resolve elsewhere; check what we got.
	if tcp, ok := ln.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		_ = ln.Close()
		return fmt.Errorf("--listen %q bound %s, which is not loopback", o.listen, ln.Addr())
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", sim.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "listening on http://%s/metrics\n", ln.Addr())

	runErr := sim.Run(ctx)

	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return errors.Join(runErr, err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return errors.Join(runErr, err)
	}
	return runErr
}
