package decisions

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// BenchmarkDecisionQuality runs the whole comparison once, whatever b.N
// (run it with -benchtime 1x), and prints the tables; with DECISIONS_OUT
// set it writes them to that file too.
func BenchmarkDecisionQuality(b *testing.B) {
	cfg := DefaultConfig()
	var cells []Cell
	start := time.Now()
	for range b.N {
		if cells == nil {
			cells = Simulate(cfg)
		}
	}
	elapsed := time.Since(start)
	out := summary(cfg, elapsed) + "\n" + Report(cells)
	fmt.Print(out)
	if path := os.Getenv("DECISIONS_OUT"); path != "" {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// summary says what ran: releases, seeds, limit and how long it took.
func summary(cfg Config, elapsed time.Duration) string {
	runs, rules := 0, 0
	for _, sc := range cfg.Scenarios {
		runs += sc.Runs * len(cfg.Levels)
	}
	for _, r := range cfg.Rules {
		rules += len(r.Names())
	}
	var perScenario []string
	for _, sc := range cfg.Scenarios {
		perScenario = append(perScenario, fmt.Sprintf("%s: %d", sc.Name, sc.Runs))
	}
	return fmt.Sprintf("Runs per traffic level (%s rps) and rule: %s. Seeds %d + run index. "+
		"A release not ended after %s of simulated time counts as not ended. "+
		"%d runs, each decided by %d rules, in %s on %d CPUs (GOMAXPROCS).\n",
		levels(cfg.Levels), strings.Join(perScenario, "; "), BaseSeed, cfg.Limit, runs, rules, Elapsed(elapsed), runtime.GOMAXPROCS(0))
}

func levels(ls []float64) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = count(l)
	}
	return strings.Join(parts, ", ")
}
