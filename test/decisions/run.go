package decisions

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// BaseSeed is the seed of run 0; run i uses BaseSeed+i in every cell.
const BaseSeed = 20260105

// Scenario is what the two versions do in a release.
type Scenario struct {
	Name           string
	Stable, Canary Profile
	Runs           int
	// Healthy scenarios should be promoted; the others rolled back.
	Healthy bool
}

// Scenarios are the comparison's: a healthy canary, three error
// regressions and a latency regression.
func Scenarios(healthyRuns, regressionRuns int) []Scenario {
	h := healthy()
	errs := func(p float64) Profile { x := h; x.ErrorRate = p; return x }
	slow := h
	slow.MedianMs *= 3
	return []Scenario{
		{Name: "healthy", Stable: h, Canary: h, Runs: healthyRuns, Healthy: true},
		{Name: "canary 10% errors", Stable: h, Canary: errs(0.10), Runs: regressionRuns},
		{Name: "canary 5% errors", Stable: h, Canary: errs(0.05), Runs: regressionRuns},
		{Name: "2× stable errors (2% → 4%)", Stable: errs(0.02), Canary: errs(0.04), Runs: regressionRuns},
		{Name: "canary latency ×3", Stable: h, Canary: slow, Runs: regressionRuns},
	}
}

// Config is one whole simulation.
type Config struct {
	Scenarios []Scenario
	// Levels are the total request rates, per second.
	Levels []float64
	Rules  []Rule
	// Limit is the simulated time after which a release counts as not
	// ended.
	Limit   time.Duration
	Workers int
}

// DefaultConfig is `make bench-decisions`: 2,000 healthy releases and 200
// of each regression per traffic level, under meshcanary and the peers.
func DefaultConfig() Config {
	m := NewMeshcanary()
	return Config{
		Scenarios: Scenarios(2000, 200),
		Levels:    []float64{2, 10, 50, 200},
		Rules:     []Rule{m, NewFlagger(), NewArgo(m.Plan.Steps)},
		Limit:     4*m.Nominal() + time.Hour,
		Workers:   runtime.GOMAXPROCS(0),
	}
}

// Cell is every run of one scenario at one traffic level under one rule.
type Cell struct {
	Scenario Scenario
	RPS      float64
	Rule     string
	Nominal  time.Duration
	Outcomes []Outcome
}

// job is one run of one scenario at one level: every rule on the same
// requests.
type job struct {
	scenario, level, run int
}

// Simulate runs every cell; the outcomes depend only on the configuration.
func Simulate(cfg Config) []Cell {
	cells, jobs := layout(cfg)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(cfg.Workers, 1) {
		wg.Go(func() {
			var s *Stream
			for i := next.Add(1) - 1; i < int64(len(jobs)); i = next.Add(1) - 1 {
				s = runJob(cfg, jobs[i], cells, s)
			}
		})
	}
	wg.Wait()
	return cells
}

// layout allocates the cells, ordered scenario, level, rule, and lists the
// jobs.
func layout(cfg Config) ([]Cell, []job) {
	var cells []Cell
	var jobs []job
	for si, sc := range cfg.Scenarios {
		for li, rps := range cfg.Levels {
			for _, r := range cfg.Rules {
				for _, name := range r.Names() {
					cells = append(cells, Cell{Scenario: sc, RPS: rps, Rule: name, Nominal: r.Nominal(), Outcomes: make([]Outcome, sc.Runs)})
				}
			}
			for i := range sc.Runs {
				jobs = append(jobs, job{scenario: si, level: li, run: i})
			}
		}
	}
	return cells, jobs
}

// variants counts the rules' names: the cells of one scenario and level.
func variants(rules []Rule) int {
	n := 0
	for _, r := range rules {
		n += len(r.Names())
	}
	return n
}

// runJob runs every rule on run j's requests, reusing the worker's stream.
func runJob(cfg Config, j job, cells []Cell, s *Stream) *Stream {
	sc, rps := cfg.Scenarios[j.scenario], cfg.Levels[j.level]
	i := (j.scenario*len(cfg.Levels) + j.level) * variants(cfg.Rules)
	for _, r := range cfg.Rules {
		if s == nil {
			s = NewStream(BaseSeed+uint64(j.run), rps, sc.Stable, sc.Canary)
		} else {
			s.Reset(BaseSeed+uint64(j.run), rps, sc.Stable, sc.Canary)
		}
		for _, o := range r.Run(s, cfg.Limit) {
			cells[i].Outcomes[j.run] = o
			i++
		}
	}
	return s
}
