package main

import (
	"context"
	"errors"
	"fmt"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/utils/clock"

	"github.com/meshcanary/meshcanary/pkg/apis/meshcanary/v1alpha1"
	"github.com/meshcanary/meshcanary/pkg/controller"
	"github.com/meshcanary/meshcanary/pkg/gates"
	"github.com/meshcanary/meshcanary/pkg/metrics"
	"github.com/meshcanary/meshcanary/pkg/notify"
	"github.com/meshcanary/meshcanary/pkg/policy"
	"github.com/meshcanary/meshcanary/pkg/shard"
)

// controllerOptions are the flags of `meshcanary controller`.
type controllerOptions struct {
	Kubeconfig         string
	PrometheusURL      string
	Policies           string
	Namespace          string
	LeaderElect        bool
	LeaderElectionID   string
	LeaderElectionNS   string
	MetricsBindAddress string
	HealthBindAddress  string
	LogLevel           string
	LogFormat          string
	Workers            int
	AnalysisWorkers    int
	ProgressDeadline   time.Duration
	PrometheusTimeout  time.Duration
	// NotificationsSecret is namespace/name of the channels' Secret.
	NotificationsSecret string
	HistoryLimit        int
	// KubeAPIQPS and KubeAPIBurst are the client-side rate limit of every
	// request but Events (see clientConfigs).
	KubeAPIQPS   float32
	KubeAPIBurst int
	// Shards splits the rollouts among replicas, each holding one shard
	// Lease (pkg/shard); 1 is one leader for everything.
	Shards int
	// LeaseDuration, RenewDeadline and RetryPeriod time leader election,
	// of the leader Lease and the shard Leases alike.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// PprofBindAddress serves net/http/pprof; empty serves nothing.
	PprofBindAddress string
	// MaxConcurrentReleases caps the releases in flight at once; 0 is
	// no cap.
	MaxConcurrentReleases int
}

// Default client-side rate limit, sized for 2,000 rollouts with releases in
// flight on one replica. A release costs about 25 writes over its stages
// (canary scale, weights and state at each stage, the analysis recorded
// each interval, promotion, scale-down); reconciles read from the informer
// caches. Spread over a 20-minute release, 2,000 releases are ~40 writes/s,
// but releases started together reach their stage boundaries together:
// 2,000 first stages (scale, weight, state: ~4 writes each) are ~8,000
// writes at once, which 300/s with a burst of 600 clear in under 30s,
// within one analysis interval (1m by default), so no stage starts an
// interval late. The API server stays protected by API Priority and
// Fairness, which queues a client that asks for more than its share.
// client-go's default (5/s) or the former fixed 50/s would take minutes,
// delaying every weight change and the Events behind them.
const (
	defaultKubeAPIQPS   = 300
	defaultKubeAPIBurst = 600
)

func (o *controllerOptions) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "path to a kubeconfig; empty uses the in-cluster configuration")
	fs.StringVar(&o.PrometheusURL, "prometheus-url", "http://prometheus.istio-system:9090", "base URL of the Prometheus that holds Istio's telemetry")
	fs.StringVar(&o.Policies, "policies", "", "path to the policies YAML file (reloaded when it changes); empty uses only the built-in default policy")
	fs.StringVar(&o.Namespace, "namespace", "", "watch only this namespace; empty watches all namespaces")
	fs.BoolVar(&o.LeaderElect, "leader-elect", false, "elect a leader with a Lease so only one replica acts")
	fs.StringVar(&o.LeaderElectionID, "leader-election-id", "meshcanary-controller", "name of the leader election Lease")
	fs.StringVar(&o.LeaderElectionNS, "leader-election-namespace", "", "namespace of the Lease; defaults to the pod's namespace, then --namespace, then default")
	fs.IntVar(&o.Shards, "shards", 1, "split the rollouts among this many replicas: each replica holds at most one of the Leases meshcanary-shard-0 … meshcanary-shard-<N-1> in the leader-election namespace and acts only on the rollouts whose namespace/name hashes to its shard; a replica without one is a spare that takes over the first Lease to free up. Run at least N replicas, best N+1. Above 1, leader election is implied (--leader-elect is not needed) and --leader-election-id is unused")
	fs.DurationVar(&o.LeaseDuration, "leader-election-lease-duration", 15*time.Second, "whole seconds a Lease stays taken after its holder's last renewal: how long a killed replica's rollouts wait for another to take over")
	fs.DurationVar(&o.RenewDeadline, "leader-election-renew-deadline", 10*time.Second, "how long a leader keeps trying to renew its Lease before it stops acting and exits; below the lease duration")
	fs.DurationVar(&o.RetryPeriod, "leader-election-retry-period", 2*time.Second, "how often a replica tries to take or renew a Lease")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", ":8080", "address serving /metrics")
	fs.StringVar(&o.HealthBindAddress, "health-probe-bind-address", ":8081", "address serving /healthz and /readyz")
	fs.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.LogFormat, "log-format", "json", "json or console")
	fs.IntVar(&o.Workers, "workers", 2, "rollouts reconciled in parallel")
	fs.IntVar(&o.AnalysisWorkers, "analysis-workers", 4, "analyses (Prometheus queries) run in parallel, off the reconcile path")
	fs.DurationVar(&o.ProgressDeadline, "progress-deadline", 10*time.Minute, "how long a canary may take to become available for a stage before the release is rolled back")
	fs.DurationVar(&o.PrometheusTimeout, "prometheus-timeout", 10*time.Second, "timeout of one Prometheus query")
	fs.StringVar(&o.NotificationsSecret, "notifications-secret", "", "namespace/name of the Secret holding notification channels (Slack, PagerDuty, webhooks); empty sends none")
	fs.IntVar(&o.HistoryLimit, "history-limit", 10, "finished releases kept per Deployment in its CanaryRelease's status.history")
	fs.Float32Var(&o.KubeAPIQPS, "kube-api-qps", defaultKubeAPIQPS, "requests per second to the Kubernetes API (client-side limit shared by every request but Events, which get half of it on a client of their own)")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", defaultKubeAPIBurst, "requests the client may send at once above --kube-api-qps (Events get half of it)")
	fs.IntVar(&o.MaxConcurrentReleases, "max-concurrent-releases", 0, "releases in flight at once on this replica; a release detected beyond it waits, queued with its traffic on stable, until one ends; 0 is no limit")
	fs.StringVar(&o.PprofBindAddress, "pprof-bind-address", "", "address serving Go's profiles under /debug/pprof/, such as 127.0.0.1:6060; empty serves none")
}

func (o *controllerOptions) validate() error {
	var errs []error
	if o.LogFormat != "json" && o.LogFormat != "console" {
		errs = append(errs, fmt.Errorf("--log-format: %q: expected json or console", o.LogFormat))
	}
	if _, err := zerolog.ParseLevel(o.LogLevel); err != nil || o.LogLevel == "" {
		errs = append(errs, fmt.Errorf("--log-level: %q: expected debug, info, warn or error", o.LogLevel))
	}
	if o.PrometheusURL == "" {
		errs = append(errs, errors.New("--prometheus-url: expected a URL"))
	}
	if o.NotificationsSecret != "" && len(strings.SplitN(o.NotificationsSecret, "/", 2)) != 2 {
		errs = append(errs, fmt.Errorf("--notifications-secret: %q: expected namespace/name", o.NotificationsSecret))
	}
	if o.Workers < 1 {
		errs = append(errs, fmt.Errorf("--workers: %d: expected at least 1", o.Workers))
	}
	if o.AnalysisWorkers < 1 {
		errs = append(errs, fmt.Errorf("--analysis-workers: %d: expected at least 1", o.AnalysisWorkers))
	}
	if o.KubeAPIQPS < 1 {
		errs = append(errs, fmt.Errorf("--kube-api-qps: %g: expected at least 1", o.KubeAPIQPS))
	}
	if o.KubeAPIBurst < 1 {
		errs = append(errs, fmt.Errorf("--kube-api-burst: %d: expected at least 1", o.KubeAPIBurst))
	}
	if o.Shards < 1 {
		errs = append(errs, fmt.Errorf("--shards: %d: expected at least 1", o.Shards))
	}
	errs = append(errs, o.validateElection()...)
	if o.MaxConcurrentReleases < 0 {
		errs = append(errs, fmt.Errorf("--max-concurrent-releases: %d: expected 0 (no limit) or more", o.MaxConcurrentReleases))
	}
	return errors.Join(errs...)
}

// validateElection checks the timings as client-go would, at start-up
// instead of when the first Lease is tried, and that the lease duration is
// whole seconds: the Lease records it in seconds, and a holder that counted
// on the fraction would act past the moment the others take over.
func (o *controllerOptions) validateElection() []error {
	var errs []error
	if o.LeaseDuration < time.Second || o.LeaseDuration%time.Second != 0 {
		errs = append(errs, fmt.Errorf("--leader-election-lease-duration: %s: expected whole seconds, at least 1s", o.LeaseDuration))
	}
	if o.RenewDeadline <= 0 || o.RenewDeadline >= o.LeaseDuration {
		errs = append(errs, fmt.Errorf("--leader-election-renew-deadline: %s: expected more than 0 and less than the lease duration %s", o.RenewDeadline, o.LeaseDuration))
	}
	// client-go's own bound: a renewal must fit a jittered retry.
	if o.RetryPeriod <= 0 || float64(o.RenewDeadline) <= leaderelection.JitterFactor*float64(o.RetryPeriod) {
		errs = append(errs, fmt.Errorf("--leader-election-retry-period: %s: expected more than 0 and less than the renew deadline %s / %.1f", o.RetryPeriod, o.RenewDeadline, leaderelection.JitterFactor))
	}
	return errs
}

func newControllerCommand() *cobra.Command {
	o := &controllerOptions{}
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the rollout controller",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runController(ctx, o)
		},
	}
	o.BindFlags(cmd.Flags())
	return cmd
}

func newLogger(o *controllerOptions) zerolog.Logger {
	level, _ := zerolog.ParseLevel(o.LogLevel)
	var w = zerolog.New(os.Stderr)
	if o.LogFormat == "console" {
		w = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly})
	}
	return w.Level(level).With().Timestamp().Str("component", "meshcanary").Logger()
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	if err != nil {
		return nil, fmt.Errorf("loading Kubernetes client configuration: %w", err)
	}
	cfg.UserAgent = "meshcanary-controller"
	return cfg, nil
}

// clientConfigs splits the API budget three ways, each a copy of base with
// a rate limiter of its own:
//   - traffic: Deployments, VirtualServices (weights), informers. The typed
//     and the dynamic client share one limiter, so --kube-api-qps is what
//     the controller sends, not twice that.
//   - events: half the budget. Events wait for their own tokens instead of
//     queueing behind weight changes, and a burst of them never delays a
//     rollback. A decision that emits Events also records its state,
//     mostly with a weight or a scale: about one Event per two writes, so
//     half keeps up with what the traffic budget lets the workers decide,
//     and the recorder's queue (1,000) absorbs the bursts.
//   - election: the leader Lease, at client-go's default (5/s): a renewal
//     that waited behind a busy traffic budget past the renew deadline
//     would cost the lease and restart the process.
func clientConfigs(base *rest.Config, o *controllerOptions) (traffic, events, election *rest.Config) {
	traffic = rest.CopyConfig(base)
	traffic.QPS, traffic.Burst = o.KubeAPIQPS, o.KubeAPIBurst
	traffic.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(o.KubeAPIQPS, o.KubeAPIBurst)

	events = rest.CopyConfig(base)
	events.QPS, events.Burst = max(o.KubeAPIQPS/2, 1), max(o.KubeAPIBurst/2, 1)
	events.RateLimiter = nil
	events.UserAgent = base.UserAgent + "-events"

	election = rest.CopyConfig(base)
	election.QPS, election.Burst, election.RateLimiter = 0, 0, nil
	election.UserAgent = base.UserAgent + "-leader-election"
	return traffic, events, election
}

// pprofHandler serves Go's profiles on a mux of its own. Importing
// net/http/pprof also registers them on http.DefaultServeMux, which the
// controller never serves; nothing else exposes them.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

func runController(ctx context.Context, o *controllerOptions) error {
	log := newLogger(o)
	base, err := restConfig(o.Kubeconfig)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := controller.NewMetrics(reg)

	cfg, eventsCfg, electionCfg := clientConfigs(base, o)
	cfg.Wrap(m.CountRequests("traffic"))
	eventsCfg.Wrap(m.CountRequests("events"))
	electionCfg.Wrap(m.CountRequests("election"))
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("creating Kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("creating dynamic client: %w", err)
	}
	if err := checkReleaseCRD(ctx, dyn, o.Namespace); err != nil {
		return err
	}
	eventsKube, err := kubernetes.NewForConfig(eventsCfg)
	if err != nil {
		return fmt.Errorf("creating the Events client: %w", err)
	}
	promClient, err := api.NewClient(api.Config{Address: o.PrometheusURL})
	if err != nil {
		return fmt.Errorf("--prometheus-url %q: %w", o.PrometheusURL, err)
	}

	// Notification channels come first so that every policy load can be
	// checked against them.
	var notifier controller.Notifier
	var channels []string
	if o.NotificationsSecret != "" {
		d, err := notificationDispatcher(ctx, kube, o.NotificationsSecret, reg, log)
		if err != nil {
			return err
		}
		go d.Run(ctx)
		notifier, channels = d, d.Channels()
	}

	store := policy.NewStore()
	var watcher *policy.Watcher
	var ctrl atomic.Pointer[controller.Controller]
	// With --shards above 1, the rollouts this replica owns.
	var own owner
	if o.Policies != "" {
		watcher, err = policy.NewWatcher(o.Policies, store, func(err error) {
			if err != nil {
				m.PolicyReloads.WithLabelValues("invalid").Inc()
				log.Error().Err(err).Str("file", o.Policies).Msg("policies file rejected; keeping the last good policies")
			} else {
				m.PolicyReloads.WithLabelValues("ok").Inc()
				log.Info().Str("file", o.Policies).Strs("policies", store.Names()).Msg("policies reloaded")
				warnUnknownChannels(store, channels, log)
			}
			// Every rollout looks again: a fixed file may resolve an
			// Invalid one, a rejected one explains why a policy is missing.
			if c := ctrl.Load(); c != nil {
				c.EnqueueAll()
			}
		}, log)
		if err != nil {
			return fmt.Errorf("--policies: %w", err)
		}
		warnUnknownChannels(store, channels, log)
	}

	factoryOpts := []informers.SharedInformerOption{}
	if o.Namespace != "" {
		factoryOpts = append(factoryOpts, informers.WithNamespace(o.Namespace))
	}
	// No periodic resync: every wake-up comes from a watch event or from the
	// core's own requeue, so idle rollouts cost nothing.
	factory := informers.NewSharedInformerFactoryWithOptions(kube, 0, factoryOpts...)
	dynFactory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 0, nsOrAll(o.Namespace), nil)

	// The recorder's broadcaster stops with ctx.
	recorder, err := controller.NewEventRecorder(ctx, controller.EventOptions{
		Sink:    &typedcorev1.EventSinkImpl{Interface: eventsKube.CoreV1().Events("")},
		Metrics: m,
		Log:     log,
		Scheme:  scheme.Scheme,
		Source:  corev1.EventSource{Component: "meshcanary"},
	})
	if err != nil {
		return err
	}

	gateRunner := gates.NewRunner(gates.Options{
		Done: func(rollout string) {
			if c := ctrl.Load(); c != nil {
				c.Enqueue(rollout)
			}
		},
		Metrics: reg,
		Log:     log,
	})
	go gateRunner.Run(ctx)

	promAPI := promv1.NewAPI(promClient)
	c, err := controller.New(controller.Config{
		Kube:             kube,
		Dynamic:          dyn,
		Deploys:          factory.Apps().V1().Deployments(),
		VSs:              dynFactory.ForResource(controller.VirtualServiceGVR()).Informer(),
		DRs:              dynFactory.ForResource(controller.DestinationRuleGVR()).Informer(),
		Releases:         dynFactory.ForResource(v1alpha1.GVR()).Informer(),
		Policies:         store,
		Analyzer:         timeoutAnalyzer{a: metrics.NewAnalyzer(promAPI, metrics.Options{OnQuery: m.ObserveQuery}), timeout: o.PrometheusTimeout},
		Recorder:         recorder,
		Clock:            clock.RealClock{},
		Metrics:          m,
		Log:              log,
		Workers:          o.Workers,
		AnalysisWorkers:  o.AnalysisWorkers,
		ProgressDeadline: o.ProgressDeadline,
		HistoryLimit:     o.HistoryLimit,
		Owns:             own.ownsFunc(o.Shards),
		Notifier:         notifier,
		Gates:            gateRunner,
		// A release beyond the cap waits, queued, until one ends.
		MaxConcurrentReleases: o.MaxConcurrentReleases,
	})
	if err != nil {
		return err
	}
	ctrl.Store(c)

	var ready atomic.Bool
	errc := make(chan error, 8)
	serve := func(name, addr string, h http.Handler) {
		srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			errc <- fmt.Errorf("--%s %q: %w", name, addr, err)
			return
		}
		log.Info().Str("address", ln.Addr().String()).Msgf("serving %s", name)
		go func() { <-ctx.Done(); _ = srv.Close() }()
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	mm := http.NewServeMux()
	mm.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	serve("metrics-bind-address", o.MetricsBindAddress, mm)
	hm := http.NewServeMux()
	hm.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	hm.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "informer caches not synced", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	serve("health-probe-bind-address", o.HealthBindAddress, hm)
	if o.PprofBindAddress != "" {
		serve("pprof-bind-address", o.PprofBindAddress, pprofHandler())
	}

	if watcher != nil {
		go func() {
			if err := watcher.Run(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("watching policies: %w", err)
			}
		}()
	}

	factory.Start(ctx.Done())
	dynFactory.Start(ctx.Done())
	go func() {
		factory.WaitForCacheSync(ctx.Done())
		dynFactory.WaitForCacheSync(ctx.Done())
		ready.Store(ctx.Err() == nil)
	}()

	lead := func(ctx context.Context) {
		m.Leader.Set(1)
		if err := c.Run(ctx); err != nil {
			errc <- err
		}
	}
	// Closed once leader election has ended, its Lease given back on a
	// shutdown; nil without leader election.
	var elected chan struct{}
	switch {
	case o.Shards > 1:
		electionKube, err := kubernetes.NewForConfig(electionCfg)
		if err != nil {
			return fmt.Errorf("creating the leader election client: %w", err)
		}
		el, err := shardElector(electionKube, o, log, m, lead, errc)
		if err != nil {
			return err
		}
		own.elector.Store(el)
		elected = make(chan struct{})
		go func() { defer close(elected); el.Run(ctx) }()
	case !o.LeaderElect:
		go lead(ctx)
	default:
		electionKube, err := kubernetes.NewForConfig(electionCfg)
		if err != nil {
			return fmt.Errorf("creating the leader election client: %w", err)
		}
		le, err := leaderElector(electionKube, o, log, m, lead, errc)
		if err != nil {
			return err
		}
		elected = make(chan struct{})
		go func() { defer close(elected); le.Run(ctx) }()
	}

	select {
	case <-ctx.Done():
		log.Info().Msg("shutting down")
		// Exiting before the Lease is given back would make the next
		// leader wait a whole lease duration; giving it back takes at
		// most the renew deadline.
		if elected != nil {
			select {
			case <-elected:
			case <-time.After(o.RenewDeadline + time.Second):
			}
		}
		return nil
	case err := <-errc:
		return err
	}
}

func nsOrAll(ns string) string {
	if ns == "" {
		return metav1.NamespaceAll
	}
	return ns
}

// electionIdentity is the namespace of the Leases and the name this
// replica holds them under.
func electionIdentity(o *controllerOptions) (ns, id string, err error) {
	ns = o.LeaderElectionNS
	if ns == "" {
		if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
			ns = strings.TrimSpace(string(b))
		}
	}
	if ns == "" {
		ns = o.Namespace
	}
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	host, err := os.Hostname()
	if err != nil {
		return "", "", fmt.Errorf("leader election identity: %w", err)
	}
	return ns, fmt.Sprintf("%s_%d", host, os.Getpid()), nil
}

func leaderElector(kube kubernetes.Interface, o *controllerOptions, log zerolog.Logger, m *controller.Metrics, lead func(context.Context), errc chan<- error) (*leaderelection.LeaderElector, error) {
	ns, id, err := electionIdentity(o)
	if err != nil {
		return nil, err
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: o.LeaderElectionID, Namespace: ns},
		Client:     kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	return leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   o.LeaseDuration,
		RenewDeadline:   o.RenewDeadline,
		RetryPeriod:     o.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            o.LeaderElectionID,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				log.Info().Str("identity", id).Msg("leading")
				lead(ctx)
			},
			OnStoppedLeading: func() {
				m.Leader.Set(0)
				// Losing the lease mid-reconcile must not leave two actors:
				// exit and let the pod restart as a follower.
				errc <- errors.New("lost leader election lease")
			},
		},
	})
}

// shardElector holds one of the --shards Leases and runs lead while it
// does, publishing the shard in meshcanary_shard.
func shardElector(kube kubernetes.Interface, o *controllerOptions, log zerolog.Logger, m *controller.Metrics, lead func(context.Context), errc chan<- error) (*shard.Elector, error) {
	ns, id, err := electionIdentity(o)
	if err != nil {
		return nil, err
	}
	if !o.LeaderElect {
		log.Info().Int("shards", o.Shards).Msg("--shards above 1 elects with shard Leases; --leader-elect is implied")
	}
	return shard.NewElector(shard.Config{
		Client: kube.CoordinationV1(), Namespace: ns, Identity: id, Shards: o.Shards,
		LeaseDuration: o.LeaseDuration, RenewDeadline: o.RenewDeadline, RetryPeriod: o.RetryPeriod,
		Lead: func(ctx context.Context, i int) {
			m.Shard.WithLabelValues(strconv.Itoa(i)).Set(1)
			lead(ctx)
		},
		Lost: func(i int, err error) {
			m.Leader.Set(0)
			m.Shard.WithLabelValues(strconv.Itoa(i)).Set(0)
			// As with the leader Lease: exit, and restart as a spare, so
			// that nothing of the lost shard's work goes on here.
			errc <- fmt.Errorf("lost shard lease %s: %w", shard.LeaseName(i), err)
		},
		Log: log,
	})
}

// owner answers controller.Config.Owns from the shard elector, which is
// built after the controller because it runs the controller when it
// leads. Until it is set this replica owns nothing; it acts on nothing
// before then either.
type owner struct{ elector atomic.Pointer[shard.Elector] }

// ownsFunc is nil, owning every rollout, unless the rollouts are sharded.
func (w *owner) ownsFunc(shards int) func(string) bool {
	if shards < 2 {
		return nil
	}
	return func(key string) bool {
		e := w.elector.Load()
		return e != nil && e.Owns(key)
	}
}

// timeoutAnalyzer bounds each analysis, and each batch of them, so a hung
// Prometheus becomes an outage verdict instead of a stuck worker.
type timeoutAnalyzer struct {
	a       *metrics.Analyzer
	timeout time.Duration
}

func (t timeoutAnalyzer) Analyze(ctx context.Context, req metrics.Request) (metrics.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	return t.a.Analyze(ctx, req)
}

func (t timeoutAnalyzer) AnalyzeAll(ctx context.Context, reqs []metrics.Request) []metrics.Answer {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	return t.a.AnalyzeAll(ctx, reqs)
}

// notificationDispatcher reads the channels from their Secret. Secret
// values never reach logs: errors name keys only.
func notificationDispatcher(ctx context.Context, kube kubernetes.Interface, ref string, reg prometheus.Registerer, log zerolog.Logger) (*notify.Dispatcher, error) {
	ns, name, _ := strings.Cut(ref, "/")
	sec, err := kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("--notifications-secret %s: %w", ref, err)
	}
	channels, err := notify.LoadFromSecret(sec.Data)
	if err != nil {
		return nil, fmt.Errorf("--notifications-secret %s: %w", ref, err)
	}
	d, err := notify.NewDispatcher(channels, notify.Options{Metrics: reg, Log: log})
	if err != nil {
		return nil, fmt.Errorf("notifications: %w", err)
	}
	names := make([]string, 0, len(channels))
	for _, ch := range channels {
		names = append(names, ch.Name())
	}
	log.Info().Strs("channels", names).Msg("notifications enabled")
	return d, nil
}

// warnUnknownChannels reports policies that route notifications to a
// channel the notification Secret does not define: such messages would
// otherwise only be counted as dropped when a rollout event happens.
func warnUnknownChannels(store *policy.Store, channels []string, log zerolog.Logger) {
	for _, name := range store.Names() {
		p, _ := store.Get(name)
		path := field.NewPath("policies").Key(name).Child("notify")
		if errs := policy.ValidateNotifyChannels(p.Notify, channels, path); len(errs) > 0 {
			log.Warn().Str("policy", name).Strs("channels", channels).Msg(errs.ToAggregate().Error())
		}
	}
}

// checkReleaseCRD fails start-up with the fix when the CanaryRelease CRD is
// missing: helm upgrade does not install a chart's crds/, and without it
// the informers would wait for their caches forever, saying nothing.
func checkReleaseCRD(ctx context.Context, dyn dynamic.Interface, namespace string) error {
	_, err := dyn.Resource(v1alpha1.GVR()).Namespace(namespace).List(ctx, metav1.ListOptions{Limit: 1})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("the CanaryRelease CRD (%s.%s) is not installed: kubectl apply -f charts/meshcanary/crds/ (helm upgrade does not install CRDs): %w", v1alpha1.CanaryReleaseResource, v1alpha1.GroupName, err)
	}
	// Any other error (RBAC, a slow API server) is left to the informers,
	// which retry and log.
	return nil
}
