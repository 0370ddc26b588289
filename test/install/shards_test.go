package install

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshcanary/meshcanary/pkg/controller"
	"github.com/meshcanary/meshcanary/pkg/shard"
	"github.com/meshcanary/meshcanary/pkg/stages"
	"github.com/meshcanary/meshcanary/pkg/virtualservice"
	"github.com/meshcanary/meshcanary/test/harness"
	"github.com/meshcanary/meshcanary/test/meshsim"
)

// shardPolicies: three stages of six seconds, so that a replica can be
// killed while every release is mid-way and the spare's takeover (seconds,
// with the test's lease timings) falls inside a release.
const shardPolicies = `
policies:
- name: default
  interval: 2s
  minRequests: 10
  failureLimit: 2
  metricsOutageLimit: 3
  checks:
  - {metric: error-rate, max: "5%", maxIncrease: "2%"}
  - {metric: latency-p95, max: 5s, maxRatio: 3}
  stages:
  - {weight: 10, duration: 6s}
  - {weight: 50, duration: 6s}
  - {weight: 100, duration: 6s}
`

// Lease timings of the end-to-end test: the defaults (15s/10s/2s) scaled
// down so that a takeover takes seconds.
const (
	shardLease = 5 * time.Second
	shardRenew = 3 * time.Second
	shardRetry = 500 * time.Millisecond
)

// TestShardsSplitRolloutsAndASpareTakesOverAKilledReplicasShard installs
// the chart with three shards and four replicas, runs the real binary as
// the four replicas, releases apps spread over every shard, and SIGKILLs
// the replica holding one shard mid-release. The spare must take that
// shard over within the lease duration and a retry, every release must be
// promoted with no stage skipped or repeated, each replica must act only
// on its shard's rollouts, and no two live replicas may ever hold or act
// on the same shard.
func TestShardsSplitRolloutsAndASpareTakesOverAKilledReplicasShard(t *testing.T) {
	t.Parallel()
	scenarioMu.Lock()
	t.Cleanup(scenarioMu.Unlock)
	suite.Env().DumpLogsOnFailure(t)

	appNs := suite.Env().NewNamespace(t)
	inst := installSharded(t, appNs)
	apps := shardedApps(t, appNs, 3, 2)
	startMesh(t, appNs, apps, 150)
	weights := watchWeights(t, appNs)

	fleet := startShardedReplicas(t, inst, 4)
	fleet.watch(t, inst.ns)
	holders := fleet.settled(t, inst.ns, 3)
	rules := alertRules(t, find(t, inst.rendered, "PrometheusRule", ""))
	checkNotLeading(t, rules, false, time.Now(), time.Minute)

	for _, a := range apps {
		a.Release("payment:v2", nil)
	}
	for _, a := range apps {
		a.WaitCanaryWeight(10, time.Minute)
	}
	victimApps := appsOfShard(apps, 0, 3)
	killed, took := killMidRelease(t, fleet, inst.ns, 0, holders, victimApps)

	for _, a := range apps {
		a.WaitPhase(string(stages.Succeeded), 3*time.Minute)
	}
	checkEveryReleaseOnce(t, apps, weights)
	checkWeightsHeldWhileUnowned(t, victimApps, weights, killed, killed.Add(took))
	if took > 3*time.Second {
		checkNotLeading(t, rules, true, killed, 30*time.Second)
	}
	checkNotLeading(t, rules, false, time.Now(), time.Minute)
	fleet.checkEachActsOnItsShardOnly(t, apps, 3)
	checkShutdownHandsOver(t, fleet, inst.ns, 1)
	fleet.stopWatching(t)
}

// shardedInstall is the chart installed with three shards and four
// replicas for apps in one namespace, and what a replica needs to run as
// its ServiceAccount.
type shardedInstall struct {
	ns                   string
	dep                  *appsv1.Deployment
	rendered             []*unstructured.Unstructured // with the PrometheusRule
	kubeconfig, policies string
}

func installSharded(t *testing.T, appNs string) shardedInstall {
	t.Helper()
	ctx := context.Background()
	k, _ := suite.Clients(t)
	ns := restrictedNamespace(t)
	const release = "sharded"
	values := writeFile(t, "values.yaml", fmt.Sprintf(`
watchNamespace: %s
prometheus: {url: %q}
shards: 3
replicaCount: 4
`, appNs, suite.Env().PrometheusURL)+shardPolicies)
	rendered := render(t, release, ns, values, writeFile(t, "rule.yaml", "prometheusRule: {enabled: true}\n"))
	installChart(t, release, ns, values)
	dep, err := k.AppsV1().Deployments(ns).Get(ctx, release+"-meshcanary", metav1.GetOptions{})
	harness.Must(t, err)
	if flags := flagMap(controllerContainer(t, dep).Args); flags["--shards"] != "3" || flags["--leader-elect"] != "true" {
		t.Fatalf("the chart passes --shards=%q --leader-elect=%q, want 3 and true", flags["--shards"], flags["--leader-elect"])
	}
	sa := dep.Spec.Template.Spec.ServiceAccountName
	t.Run("the ServiceAccount may hold the shard Leases and no other", func(t *testing.T) {
		checkAccess(t, ns, sa, []access{
			{"create a shard Lease", "create", "coordination.k8s.io", "leases", ns, "", true},
			{"renew shard 0's Lease", "update", "coordination.k8s.io", "leases", ns, "meshcanary-shard-0", true},
			{"renew shard 2's Lease", "update", "coordination.k8s.io", "leases", ns, "meshcanary-shard-2", true},
			{"take a fourth shard's Lease", "update", "coordination.k8s.io", "leases", ns, "meshcanary-shard-3", false},
			{"take the single leader's Lease, unused with shards", "update", "coordination.k8s.io", "leases", ns, "meshcanary-controller", false},
		})
	})
	kubeconfig, _, err := suite.Env().ServiceAccountKubeconfig(ctx, ns, sa)
	harness.Must(t, err)
	return shardedInstall{ns: ns, dep: dep, rendered: rendered, kubeconfig: kubeconfig,
		policies: policiesFromConfigMap(t, ns, release+"-meshcanary-policies")}
}

// killMidRelease SIGKILLs the holder of shard i while some of its releases
// are mid-way and waits for the spare to take the shard over; it returns
// when the replica was killed and how long the takeover took.
func killMidRelease(t *testing.T, fleet *replicaFleet, ns string, i int, holders map[int]*controllerProcess, apps []*harness.App) (time.Time, time.Duration) {
	t.Helper()
	midway := 0
	for _, a := range apps {
		if _, c := a.Weights(); c > 0 && c < 100 {
			midway++
		}
	}
	if midway == 0 {
		t.Fatal("no release of the victim's shard is mid-way at the kill: the test would prove nothing")
	}
	spare := fleet.spare(holders)
	killed := fleet.kill(t, holders[i])
	took := fleet.waitTakeover(t, ns, i, spare, killed)
	t.Logf("SIGKILLed the holder of shard %d with %d of its releases mid-way; the spare held its Lease %s later (lease duration %s, retry period %s)",
		i, midway, took.Round(time.Millisecond), shardLease, shardRetry)
	if took > shardLease+2*shardRetry+10*time.Second {
		t.Errorf("the spare took %s to take the shard over, want about the lease duration %s plus a retry period", took, shardLease)
	}
	return killed, took
}

// checkShutdownHandsOver: a replica that shuts down (a rolling update, a
// drain) gives its Lease back, so a new spare takes its shard within a
// retry period, not a lease duration.
func checkShutdownHandsOver(t *testing.T, fleet *replicaFleet, ns string, i int) {
	t.Helper()
	newSpare := fleet.add(t)
	leaving := fleet.settled(t, ns, 3)[i]
	stopped := time.Now()
	leaving.stop()
	handover := fleet.waitTakeover(t, ns, i, newSpare, stopped)
	t.Logf("SIGTERMed the holder of shard %d; a new spare held its Lease %s later", i, handover.Round(time.Millisecond))
	if handover >= shardLease {
		t.Errorf("the new spare took %s to take the shard of a replica that shut down, want less than the lease duration %s: the Lease was not given back", handover, shardLease)
	}
}

// shardedApps creates apps in ns, perShard of them owned by each of the
// shards. The namespace's name is random, so the names are picked by their
// key's shard, not fixed.
func shardedApps(t *testing.T, ns string, shards, perShard int) []*harness.App {
	t.Helper()
	count := make([]int, shards)
	var apps []*harness.App
	for i := 0; len(apps) < shards*perShard; i++ {
		name := fmt.Sprintf("svc-%d", i)
		s := shard.Of(ns+"/"+name, shards)
		if count[s] == perShard {
			continue
		}
		count[s]++
		apps = append(apps, suite.NewAppWith(t, name, 2, harness.AppOptions{Namespace: ns}))
	}
	return apps
}

func appsOfShard(apps []*harness.App, i, shards int) []*harness.App {
	var out []*harness.App
	for _, a := range apps {
		if shard.Of(a.NS()+"/"+a.Name(), shards) == i {
			out = append(out, a)
		}
	}
	return out
}

// startMesh runs one simulated mesh for every app of the namespace, scraped
// as one job: harness.App.Mesh would make a job per app, named after the
// namespace they share.
func startMesh(t *testing.T, ns string, apps []*harness.App, rps float64) {
	t.Helper()
	k, d := suite.Clients(t)
	var services []meshsim.Service
	for _, a := range apps {
		services = append(services, meshsim.Service{Namespace: ns, Host: a.Name(), RPS: rps})
	}
	sim, err := meshsim.New(meshsim.Config{Kube: k, Dynamic: d, Services: services,
		MaxDuration: 15 * time.Minute, MaxRequests: 50_000_000, Seed: 1, Registry: prometheus.NewRegistry()})
	harness.Must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sim.Run(ctx) }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	harness.Must(t, err)
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { cancel(); <-done; _ = srv.Close() })
	suite.AddScrapeTarget(t, ns, ln.Addr().String())
	select {
	case <-sim.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("simulated mesh not ready within 30s")
	}
}

// weightLog records every canary weight each VirtualService of a namespace
// carried, from a watch: polling could miss a short-lived weight.
type weightLog struct {
	mu    sync.Mutex
	byApp map[string][]weightEntry
}

type weightEntry struct {
	canary int
	at     time.Time
}

func watchWeights(t *testing.T, ns string) *weightLog {
	t.Helper()
	_, d := suite.Clients(t)
	l := &weightLog{byApp: map[string][]weightEntry{}}
	record := func(u *unstructured.Unstructured) {
		m, err := virtualservice.Find(u.Object, virtualservice.Target{Route: "primary", StableSubset: "stable", CanarySubset: "canary", Namespace: ns})
		if err != nil {
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		e := l.byApp[u.GetName()]
		if len(e) == 0 || e[len(e)-1].canary != m.CanaryWeight {
			l.byApp[u.GetName()] = append(e, weightEntry{canary: m.CanaryWeight, at: time.Now()})
		}
	}
	vss := d.Resource(controller.VirtualServiceGVR()).Namespace(ns)
	list, err := vss.List(context.Background(), metav1.ListOptions{})
	harness.Must(t, err)
	for i := range list.Items {
		record(&list.Items[i])
	}
	w, err := vss.Watch(context.Background(), metav1.ListOptions{ResourceVersion: list.GetResourceVersion()})
	harness.Must(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if u, ok := ev.Object.(*unstructured.Unstructured); ok {
				record(u)
			}
		}
	}()
	t.Cleanup(func() { w.Stop(); <-done })
	return l
}

func (l *weightLog) of(app string) []weightEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.byApp[app])
}

func canaryWeights(entries []weightEntry) []int {
	var out []int
	for _, e := range entries {
		out = append(out, e.canary)
	}
	return out
}

// checkEveryReleaseOnce: each release walked 10 → 50 → 100% and back to
// stable once, with one record in its history and one Event of each kind
// per stage: a stage skipped, repeated or promoted twice across the
// takeover shows in one of them.
func checkEveryReleaseOnce(t *testing.T, apps []*harness.App, weights *weightLog) {
	t.Helper()
	want := []int{0, 10, 50, 100, 0}
	for _, a := range apps {
		a.WaitFor("the weight log to see "+a.Name()+" back on stable", 10*time.Second, func() (bool, string) {
			seq := canaryWeights(weights.of(a.Name()))
			return len(seq) >= len(want) && seq[len(seq)-1] == 0, fmt.Sprint(seq)
		})
		if seq := canaryWeights(weights.of(a.Name())); !slices.Equal(seq, want) {
			t.Errorf("%s: canary weights %v, want %v: a stage was skipped or repeated", a.Name(), seq, want)
		}
		h := a.View().History
		if len(h) != 1 || h[0].Result != string(stages.ResultPromoted) || h[0].StagesReached != "3/3" {
			t.Errorf("%s: history %+v, want one release promoted after 3/3 stages", a.Name(), h)
		}
		wantEvents := map[string]int32{stages.ReasonRolloutStarted: 1, stages.ReasonStageStarted: 3, stages.ReasonPromoted: 1}
		var got map[string]int32
		a.WaitFor(a.Name()+"'s Events", 30*time.Second, func() (bool, string) {
			got = map[string]int32{}
			for _, e := range a.Events() {
				got[e.Reason] += max(e.Count, 1)
			}
			return got[stages.ReasonPromoted] >= 1 && got[stages.ReasonStageStarted] >= 3, fmt.Sprint(got)
		})
		for reason, n := range wantEvents {
			if got[reason] != n {
				t.Errorf("%s: %d %s Events, want %d (all: %v)", a.Name(), got[reason], reason, n, got)
			}
		}
	}
}

// checkWeightsHeldWhileUnowned: while nobody held the killed replica's
// shard, its releases kept the weights they had.
func checkWeightsHeldWhileUnowned(t *testing.T, apps []*harness.App, weights *weightLog, from, to time.Time) {
	t.Helper()
	for _, a := range apps {
		for _, e := range weights.of(a.Name()) {
			if e.at.After(from) && e.at.Before(to) {
				t.Errorf("%s: canary weight changed to %d%% at %s, while its shard had no holder (%s–%s)",
					a.Name(), e.canary, e.at.Format(time.StampMilli), from.Format(time.StampMilli), to.Format(time.StampMilli))
			}
		}
	}
}

// checkNotLeading evaluates the chart's MeshcanaryNotLeading expression
// against what Prometheus scraped of the replicas. Quiet means it returns
// nothing now while the number of leaders it compares is there at all;
// fired means it returned data at some moment since start.
func checkNotLeading(t *testing.T, rules []alertRule, fired bool, start time.Time, timeout time.Duration) {
	t.Helper()
	var expr string
	for _, r := range rules {
		if r.name == "MeshcanaryNotLeading" {
			expr = r.expr
		}
	}
	if !strings.Contains(expr, "!= 3") {
		t.Fatalf("MeshcanaryNotLeading does not expect 3 leaders with 3 shards: %s", expr)
	}
	api := promAPI(t)
	what := "MeshcanaryNotLeading to be quiet with a leader per shard"
	if fired {
		what = "MeshcanaryNotLeading to have seen the shard without a leader"
	}
	harness.WaitFor(t, what, timeout, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if fired {
			got, s, err := evaluate(ctx, api, expr, false, start)
			return err == nil && got, fmt.Sprint(s, err)
		}
		firing, s, err := evaluate(ctx, api, expr, true, start)
		leaders, s2, err2 := evaluate(ctx, api, strings.Replace(expr, "!= 3", "== 3", 1), true, start)
		return err == nil && err2 == nil && !firing && leaders, fmt.Sprint(s, err, " / ", s2, err2)
	})
}

// replicaFleet is the controller replicas of one install, run as processes,
// with a watcher that checks, every poll, that no live replica holds two
// shard Leases and no two live replicas act on one shard.
type replicaFleet struct {
	procs []*controllerProcess
	host  string
	// What add needs to start one more replica.
	dep                  *appsv1.Deployment
	kubeconfig, policies string
	job                  harness.ScrapeJob

	mu         sync.Mutex
	violations []string
	polls      int
	// doubleSince is when a replica was first seen holding two Leases.
	doubleSince map[string]time.Time
	stop, done  chan struct{}
}

// startShardedReplicas runs n replicas with the chart's arguments and the
// test's lease timings, each scraped by Prometheus as the chart's
// ServiceMonitor would have it (one job named after the metrics Service).
func startShardedReplicas(t *testing.T, inst shardedInstall, n int) *replicaFleet {
	t.Helper()
	dep, rendered, kubeconfig, policies := inst.dep.DeepCopy(), inst.rendered, inst.kubeconfig, inst.policies
	for i := range dep.Spec.Template.Spec.Containers {
		if c := &dep.Spec.Template.Spec.Containers[i]; c.Name == "controller" {
			c.Args = append(c.Args, "--leader-election-lease-duration="+shardLease.String(),
				"--leader-election-renew-deadline="+shardRenew.String(), "--leader-election-retry-period="+shardRetry.String())
		}
	}
	svc := find(t, rendered, "Service", "")
	host, err := os.Hostname()
	harness.Must(t, err)
	f := &replicaFleet{host: host, doubleSince: map[string]time.Time{}, dep: dep, kubeconfig: kubeconfig, policies: policies, job: harness.ScrapeJob{
		HonorLabels: true,
		// A target label job replaces the job name: one job, a target per replica.
		Labels: map[string]string{"job": svc.GetName(), "namespace": dep.Namespace},
	}}
	ports := make([]int, n)
	var jobs []harness.ScrapeJob
	for i := range ports {
		ports[i] = freePort(t)
		jobs = append(jobs, f.scrapeJob(i, ports[i]))
	}
	suite.AddScrapeJobs(t, jobs...)
	for _, port := range ports {
		f.procs = append(f.procs, startController(t, dep, kubeconfig, policies, port))
	}
	return f
}

// scrapeJob is replica i's target in the one job of the metrics Service.
func (f *replicaFleet) scrapeJob(i, port int) harness.ScrapeJob {
	j := f.job
	j.Job, j.Target = fmt.Sprintf("%s-%d", j.Labels["job"], i), fmt.Sprintf("127.0.0.1:%d", port)
	j.Labels = map[string]string{"pod": fmt.Sprintf("%s-%d", f.dep.Name, i)}
	for k, v := range f.job.Labels {
		j.Labels[k] = v
	}
	return j
}

// add starts one more replica: a spare while every shard is held.
func (f *replicaFleet) add(t *testing.T) *controllerProcess {
	t.Helper()
	port := freePort(t)
	suite.AddScrapeJobs(t, f.scrapeJob(len(f.procs), port))
	c := startController(t, f.dep, f.kubeconfig, f.policies, port)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.procs = append(f.procs, c)
	return c
}

// id is the identity the replica elects under, <hostname>_<pid>.
func (f *replicaFleet) id(c *controllerProcess) string {
	return fmt.Sprintf("%s_%d", f.host, c.cmd.Process.Pid)
}

// replicas is every replica started, killed and stopped ones included.
func (f *replicaFleet) replicas() []*controllerProcess {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.procs)
}

func (f *replicaFleet) byID(id string) *controllerProcess {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byIDLocked(id)
}

func (f *replicaFleet) byIDLocked(id string) *controllerProcess {
	for _, c := range f.procs {
		if f.id(c) == id {
			return c
		}
	}
	return nil
}

// shardLeases maps each shard Lease of ns to its holder.
func shardLeases(t testing.TB, ns string) (map[int]string, error) {
	k, _ := suite.Clients(t)
	l, err := k.CoordinationV1().Leases(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := map[int]string{}
	for _, lease := range l.Items {
		s, ok := strings.CutPrefix(lease.Name, shard.LeasePrefix)
		i, err := strconv.Atoi(s)
		if !ok || err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			continue
		}
		out[i] = *lease.Spec.HolderIdentity
	}
	return out, nil
}

// actingShards is what a replica reports acting on: the shards whose
// meshcanary_shard series is 1, and meshcanary_leader.
func actingShards(c *controllerProcess) (shards []int, leader float64, err error) {
	fams, err := c.metrics()
	if err != nil {
		return nil, 0, err
	}
	for _, m := range fams["meshcanary_shard"].GetMetric() {
		for _, l := range m.GetLabel() {
			if i, err := strconv.Atoi(l.GetValue()); l.GetName() == "shard" && err == nil && m.GetGauge().GetValue() == 1 {
				shards = append(shards, i)
			}
		}
	}
	for _, m := range fams["meshcanary_leader"].GetMetric() {
		leader = m.GetGauge().GetValue()
	}
	return shards, leader, nil
}

// watch polls the Leases and every live replica's metrics until
// stopWatching.
func (f *replicaFleet) watch(t *testing.T, ns string) {
	f.stop, f.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(f.done)
		for {
			f.poll(t, ns)
			select {
			case <-f.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() {
		select {
		case <-f.stop:
		default:
			close(f.stop)
		}
		<-f.done
	})
}

// poll checks, at one moment, what every live replica says it acts on
// against the shard Leases read right after:
//   - no two live replicas act on one shard, and none on two shards;
//   - a replica acts only on a shard whose Lease names it (read after its
//     metrics, so a Lease it held then still names it);
//   - no live replica holds two Leases for longer than two retry periods:
//     a Lease a cancelled request took is given back at once, not left
//     for a lease duration.
//
// A replica shutting down closes its metrics first, and a killed one
// answers nothing: neither is live here.
func (f *replicaFleet) poll(t *testing.T, ns string) {
	now := time.Now()
	var found []string
	report := func(format string, a ...any) {
		found = append(found, now.Format(time.StampMilli)+": "+fmt.Sprintf(format, a...))
	}
	actors := map[int][]*controllerProcess{}
	for _, c := range f.replicas() {
		shards, _, err := actingShards(c)
		if err != nil || c.exited() {
			continue
		}
		if len(shards) > 1 {
			report("replica %s acts on shards %v", f.id(c), shards)
		}
		for _, s := range shards {
			actors[s] = append(actors[s], c)
		}
	}
	leases, err := shardLeases(t, ns)
	if err != nil {
		return
	}
	for s, cs := range actors {
		if len(cs) > 1 {
			report("live replicas %s and %s both act on shard %d", f.id(cs[0]), f.id(cs[1]), s)
		}
		for _, c := range cs {
			if leases[s] != f.id(c) {
				report("replica %s acts on shard %d, whose Lease names %q", f.id(c), s, leases[s])
			}
		}
	}
	held := map[string][]int{}
	for i, id := range leases {
		held[id] = append(held[id], i)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, shards := range held {
		c := f.byIDLocked(id)
		if c == nil || c.exited() || len(shards) < 2 {
			delete(f.doubleSince, id)
			continue
		}
		if _, ok := f.doubleSince[id]; !ok {
			f.doubleSince[id] = now
		}
		if since := now.Sub(f.doubleSince[id]); since > 2*shardRetry {
			report("live replica %s has held the Leases of shards %v for %s", id, shards, since.Round(time.Millisecond))
		}
	}
	f.polls++
	f.violations = append(f.violations, found...)
}

// stopWatching ends the watcher and reports what it saw.
func (f *replicaFleet) stopWatching(t *testing.T) {
	t.Helper()
	close(f.stop)
	<-f.done
	f.mu.Lock()
	defer f.mu.Unlock()
	t.Logf("the Leases and every live replica's shards were checked %d times", f.polls)
	for _, v := range f.violations {
		t.Error(v)
	}
}

// settled waits until each shard's Lease is held by a different replica
// that reports acting on that shard, and returns them by shard.
func (f *replicaFleet) settled(t *testing.T, ns string, shards int) map[int]*controllerProcess {
	t.Helper()
	var holders map[int]*controllerProcess
	harness.WaitFor(t, "every shard to be held and acted on by a replica of its own", time.Minute, func() (bool, string) {
		leases, err := shardLeases(t, ns)
		if err != nil {
			return false, err.Error()
		}
		holders = map[int]*controllerProcess{}
		for i := range shards {
			c := f.byID(leases[i])
			if c == nil {
				return false, fmt.Sprintf("shard %d held by %q", i, leases[i])
			}
			acting, leader, err := actingShards(c)
			if err != nil || !slices.Equal(acting, []int{i}) || leader != 1 {
				return false, fmt.Sprintf("%s holds shard %d, reports acting on %v, leader %v (%v)", leases[i], i, acting, leader, err)
			}
			holders[i] = c
		}
		return len(holders) == shards, fmt.Sprint(leases)
	})
	return holders
}

func (f *replicaFleet) spare(holders map[int]*controllerProcess) *controllerProcess {
	holding := map[*controllerProcess]bool{}
	for _, h := range holders {
		holding[h] = true
	}
	for _, c := range f.replicas() {
		if !holding[c] {
			return c
		}
	}
	return nil
}

// kill SIGKILLs a replica, as a lost node or the OOM killer would: it
// gives nothing back.
func (f *replicaFleet) kill(t *testing.T, c *controllerProcess) time.Time {
	t.Helper()
	at := time.Now()
	harness.Must(t, c.cmd.Process.Kill())
	<-c.done
	return at
}

// waitTakeover waits until the spare holds shard i's Lease and acts on it,
// and returns how long after the kill it took the Lease, by the Lease's
// acquireTime (the replicas share the test's clock).
func (f *replicaFleet) waitTakeover(t *testing.T, ns string, i int, spare *controllerProcess, killed time.Time) time.Duration {
	t.Helper()
	k, _ := suite.Clients(t)
	var took time.Duration
	harness.WaitFor(t, fmt.Sprintf("the spare to take shard %d's Lease", i), 2*time.Minute, func() (bool, string) {
		l, err := k.CoordinationV1().Leases(ns).Get(context.Background(), shard.LeaseName(i), metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if h := l.Spec.HolderIdentity; h == nil || *h != f.id(spare) || l.Spec.AcquireTime == nil {
			return false, fmt.Sprint("held by ", l.Spec.HolderIdentity)
		}
		took = l.Spec.AcquireTime.Sub(killed)
		return true, ""
	})
	harness.WaitFor(t, fmt.Sprintf("the spare to act on shard %d", i), 30*time.Second, func() (bool, string) {
		acting, leader, err := actingShards(spare)
		return err == nil && slices.Equal(acting, []int{i}) && leader == 1, fmt.Sprint(acting, leader, err)
	})
	return took
}

// checkEachActsOnItsShardOnly: every live replica published rollout
// metrics for exactly the apps of the shard it holds (the spare, for the
// killed replica's), and met no RBAC refusal, failed write or lost Lease.
func (f *replicaFleet) checkEachActsOnItsShardOnly(t *testing.T, apps []*harness.App, shards int) {
	t.Helper()
	for _, c := range f.replicas() {
		if c.exited() {
			continue
		}
		acting, _, err := actingShards(c)
		harness.Must(t, err)
		if len(acting) != 1 {
			t.Errorf("%s acts on shards %v at the end, want one", f.id(c), acting)
			continue
		}
		var want []string
		for _, a := range appsOfShard(apps, acting[0], shards) {
			want = append(want, a.Name())
		}
		fams, err := c.metrics()
		harness.Must(t, err)
		var got []string
		for _, m := range fams["meshcanary_rollout_phase"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "deployment" && !slices.Contains(got, l.GetValue()) {
					got = append(got, l.GetValue())
				}
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s holds shard %d and reconciled %v, want exactly that shard's %v", f.id(c), acting[0], got, want)
		}
		if strings.Contains(c.logs(), "lost the shard lease") {
			t.Errorf("%s lost its shard Lease during the test", f.id(c))
		}
		assertNoForbidden(t, c)
	}
}

// TestChartRunsOneReplicaPerShardAndASpare checks what the chart makes of
// the shards value: the flags, the Leases its Role allows, the number of
// leaders its alert expects, and the installs it refuses.
func TestChartRunsOneReplicaPerShardAndASpare(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, values string
		wantShards   string // --shards; "" means not passed
		wantLeases   []string
		wantLeaders  string
		wantErr      string
	}{
		{"one shard by default: the one leader Lease, as before", "", "",
			[]string{"meshcanary-controller"}, "!= 1", ""},
		{"three shards with a spare", "shards: 3\nreplicaCount: 4\n", "3",
			[]string{"meshcanary-shard-0", "meshcanary-shard-1", "meshcanary-shard-2"}, "!= 3", ""},
		{"three shards on three replicas, with no spare", "shards: 3\nreplicaCount: 3\n", "3",
			[]string{"meshcanary-shard-0", "meshcanary-shard-1", "meshcanary-shard-2"}, "!= 3", ""},
		{"three shards on the default two replicas, leaving a shard to nobody", "shards: 3\n", "", nil, "",
			"replicaCount (2) must be at least shards (3)"},
		{"no shard at all", "shards: 0\n", "", nil, "", "/shards"},
		{"shards that are no number", "shards: three\n", "", nil, "", "/shards"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			values := writeFile(t, "values.yaml", c.values+"prometheusRule: {enabled: true}\n")
			if c.wantErr != "" {
				r := helm(t, "template", "mc", chartDir(t), "--namespace", "ops", "--values", values)
				if r.err == nil || !strings.Contains(r.stdout+r.stderr, c.wantErr) {
					t.Fatalf("helm template: want a refusal naming %q, got %s", c.wantErr, r)
				}
				return
			}
			objs := render(t, "mc", "ops", values)
			flags := flagMap(stringSlice(containerNamed(t, find(t, objs, "Deployment", ""), "controller")["args"]))
			if flags["--shards"] != c.wantShards || flags["--leader-elect"] != "true" {
				t.Errorf("--shards=%q --leader-elect=%q, want %q and true", flags["--shards"], flags["--leader-elect"], c.wantShards)
			}
			var leases []string
			for _, r := range find(t, objs, "Role", "mc-meshcanary-own-namespace").Object["rules"].([]any) {
				if rm := r.(map[string]any); slices.Contains(stringSlice(rm["resources"]), "leases") {
					leases = append(leases, stringSlice(rm["resourceNames"])...)
				}
			}
			if !slices.Equal(leases, c.wantLeases) {
				t.Errorf("the Role allows the Leases %v, want %v", leases, c.wantLeases)
			}
			for _, r := range alertRules(t, find(t, objs, "PrometheusRule", "")) {
				if r.name == "MeshcanaryNotLeading" && !strings.Contains(r.expr, c.wantLeaders) {
					t.Errorf("MeshcanaryNotLeading: %s, want it to fire on %s leaders", r.expr, c.wantLeaders)
				}
			}
		})
	}
}
