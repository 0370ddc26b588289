package decisions

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Report is the markdown tables of a simulation's cells.
func Report(cells []Cell) string {
	var b strings.Builder
	healthyTable(&b, cells)
	verdictTable(&b, cells, true)
	regressionTable(&b, cells)
	verdictTable(&b, cells, false)
	return b.String()
}

func row(b *strings.Builder, cols ...string) {
	fmt.Fprintf(b, "| %s |\n", strings.Join(cols, " | "))
}

func header(b *strings.Builder, cols ...string) {
	row(b, cols...)
	seps := make([]string, len(cols))
	for i := range seps {
		seps[i] = "---"
	}
	row(b, seps...)
}

func healthyTable(b *strings.Builder, cells []Cell) {
	b.WriteString("### Healthy releases\n\n")
	header(b, "rps", "rule", "falsely rolled back", "rolled back by", "promoted within plan + 10%",
		"to promotion: median", "to promotion: p99", "RolloutStuck", "not ended")
	for _, c := range cells {
		if !c.Scenario.Healthy {
			continue
		}
		n := len(c.Outcomes)
		var rolled, within, stuck, open int
		var times []float64
		for _, o := range c.Outcomes {
			switch o.End {
			case RolledBack:
				rolled++
			case Promoted:
				times = append(times, o.At.Seconds())
				if o.At >= 0 && o.At <= c.Nominal+c.Nominal/10 {
					within++
				}
			default:
				open++
			}
			if o.Stuck {
				stuck++
			}
		}
		row(b, count(c.RPS), c.Rule, share(rolled, n), causes(c), share(within, n),
			quantile(times, 0.5, seconds), quantile(times, 0.99, seconds), stuckText(c, stuck, n), share(open, n))
	}
	b.WriteString("\n")
}

// causes counts meshcanary's false rollbacks by the checks that failed in
// the verdict that rolled back.
func causes(c Cell) string {
	byCause := map[string]int{}
	for _, o := range c.Outcomes {
		if o.End == RolledBack && o.Cause != "" {
			byCause[o.Cause]++
		}
	}
	if len(byCause) == 0 {
		return "—"
	}
	var parts []string
	for k, v := range byCause {
		parts = append(parts, fmt.Sprintf("%s: %d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func stuckText(c Cell, stuck, n int) string {
	if c.Rule != meshcanaryName {
		return "—"
	}
	return share(stuck, n)
}

// verdictTable is meshcanary's failed verdicts in the healthy releases or
// in the regressions.
func verdictTable(b *strings.Builder, cells []Cell, wantHealthy bool) {
	if wantHealthy {
		b.WriteString("### meshcanary's verdicts in healthy releases\n\n")
	} else {
		b.WriteString("### meshcanary's verdicts in regressions\n\n")
	}
	header(b, "scenario", "rps", "releases", "failed verdicts (of all verdicts)", "releases with a failed verdict",
		"after a failed verdict, the next one fails", "after a failed verdict, the next Pass or Fail is a Fail")
	for _, c := range cells {
		if c.Scenario.Healthy != wantHealthy || c.Rule != meshcanaryName {
			continue
		}
		var verdicts, failed, with, after, again, decided, decidedFail int
		for _, o := range c.Outcomes {
			verdicts += o.Verdicts
			failed += o.Failed
			after += o.AfterFailed
			again += o.FailedAfterFailed
			decided += o.DecidedAfterFailed
			decidedFail += o.FailedDecidedAfterFailed
			if o.Failed > 0 {
				with++
			}
		}
		row(b, c.Scenario.Name, count(c.RPS), fmt.Sprint(len(c.Outcomes)), share(failed, verdicts),
			share(with, len(c.Outcomes)), share(again, after), share(decidedFail, decided))
	}
	b.WriteString("\n")
}

func regressionTable(b *strings.Builder, cells []Cell) {
	b.WriteString("### Regressions\n\n")
	header(b, "scenario", "rps", "rule", "caught (rolled back)", "first canary request to rollback: median",
		"stage at rollback", "canary 5xx before rollback: median", "canary requests before rollback: median",
		"promoted", "not ended")
	for _, c := range cells {
		if c.Scenario.Healthy {
			continue
		}
		n := len(c.Outcomes)
		var caught, promoted, open int
		var at, errs, reqs []float64
		stagesAt := map[int]int{}
		for _, o := range c.Outcomes {
			switch o.End {
			case RolledBack:
				caught++
				at, errs, reqs = append(at, o.At.Seconds()), append(errs, o.CanaryErrors), append(reqs, o.CanaryRequests)
				stagesAt[o.Weight]++
			case Promoted:
				promoted++
			default:
				open++
			}
		}
		row(b, c.Scenario.Name, count(c.RPS), c.Rule, share(caught, n), quantile(at, 0.5, seconds),
			stageText(stagesAt), quantile(errs, 0.5, count), quantile(reqs, 0.5, count),
			share(promoted, n), share(open, n))
	}
	b.WriteString("\n")
}

// stageText prints how many rollbacks happened at each weight.
func stageText(byWeight map[int]int) string {
	if len(byWeight) == 0 {
		return "—"
	}
	ws := make([]int, 0, len(byWeight))
	for w := range byWeight {
		ws = append(ws, w)
	}
	sort.Ints(ws)
	parts := make([]string, len(ws))
	for i, w := range ws {
		parts[i] = fmt.Sprintf("%d%%: %d", w, byWeight[w])
	}
	return strings.Join(parts, ", ")
}

// Elapsed prints a wall-clock duration for the report's header.
func Elapsed(d time.Duration) string { return d.Round(time.Second).String() }
