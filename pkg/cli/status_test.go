package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meshcanary/meshcanary/pkg/annotations"
	"github.com/meshcanary/meshcanary/pkg/stages"
	"github.com/meshcanary/meshcanary/pkg/status"
)

func progressing(now time.Time) stages.State {
	return stages.State{
		Phase: stages.Progressing, Revision: "abc123", Stage: 1, Weight: 50,
		StageStart: now.Add(-70 * time.Second), Started: now.Add(-5 * time.Minute),
		Passes: 3, LastVerdict: stages.Pass, Message: "stage 2/3: all 2 checks passed",
	}
}

func lastAnalysis(now time.Time) *status.Analysis {
	return &status.Analysis{
		At: now.Add(-4 * time.Second), WindowSeconds: 2, Verdict: "Pass", Message: "all 2 checks passed",
		CanaryRequests: 120.7, StableRequests: 480,
		Checks: []status.Check{
			{Metric: "error-rate", Canary: float(0.004), Stable: float(0.002), Bound: "maxIncrease", Threshold: "2%", Verdict: "Pass"},
			{Metric: "latency-p95", Canary: float(0.0234), Bound: "maxRatio", Threshold: "2.5", Verdict: "Inconclusive"},
		},
	}
}

func releases(now time.Time, n int) []status.Release {
	var h []status.Release
	for i := range n {
		h = append(h, status.Release{
			Revision: fmt.Sprintf("rev%d", i), Started: now.Add(-time.Duration(n-i) * time.Hour),
			Finished: now.Add(-time.Duration(n-i)*time.Hour + 10*time.Minute), StagesReached: "3/3",
			Result: "promoted", Reason: "all stages passed", DecidedBy: "analysis",
		})
	}
	return h
}

func TestStatusRendersForPeople(t *testing.T) {
	now := epoch()
	w := weightsDoc{Stable: 50, Canary: 50, Source: "VirtualService shop/web"}
	tests := []struct {
		name    string
		ann     func(t *testing.T) map[string]string
		want    []string
		notWant []string
	}{
		{
			name: "a progressing release shows stage, elapsed time, weights, checks and history",
			ann: func(t *testing.T) map[string]string {
				return published(t, progressing(now), lastAnalysis(now), releases(now, 2))
			},
			want: []string{
				"Phase:", "Progressing",
				"2/3, 1m10s elapsed (stage duration comes from the policy)",
				"stable 50%, canary 50%   (VirtualService shop/web)",
				"last Pass; this stage 3 passed",
				"Pass 4s ago, over 2s: canary 120 requests, stable 480 requests",
				"METRIC", "error-rate    0.4%     0.2%      maxIncrease   2%          Pass",
				"latency-p95   23ms     no data   maxRatio      2.5         Inconclusive",
				"Recent releases:", "rev1", "promoted",
			},
		},
		{
			name: "a quiet release shows each check's counts and what every stage can expect",
			ann: func(t *testing.T) map[string]string {
				a := lastAnalysis(now)
				a.Checks[0].Evidence = &status.Evidence{Counted: "5xx", CanaryCount: 5, CanaryTotal: 40, StableCount: 4, StableTotal: 3960,
					CanaryLow: 0.0206, CanaryHigh: 0.3455, StableLow: 0.0001, StableHigh: 0.0043, Limit: float(0.0143)}
				a.Forecast = []status.Forecast{
					{Stage: 2, Weight: 10, DurationSeconds: 300, CanaryRequests: 30, NeedsSeconds: 500, Detectable: float(0.108)},
					{Stage: 3, Weight: 50, DurationSeconds: 300, CanaryRequests: 150},
				}
				return published(t, progressing(now), a, nil)
			},
			want: []string{
				"canary 5/40 5xx (2.06%–34.55%), stable 4/3960 (0.01%–0.43%), limit 1.43%",
				"<point values>",
				"STAGE", "EXPECTED CANARY REQUESTS",
				"2       10%      5m0s       30                         8m20s          10.8%",
				"3       50%      5m0s       150                        its duration   none",
			},
		},
		{
			name: "the stage-duration annotation gives the time left",
			ann: func(t *testing.T) map[string]string {
				a := published(t, progressing(now), nil, nil)
				a[annotations.StageDuration] = "5m"
				return a
			},
			want:    []string{"2/3, 1m10s elapsed, 3m50s left"},
			notWant: []string{"comes from the policy", "METRIC", "Recent releases"},
		},
		{
			name: "a release waiting for a slot says it is queued, and since when",
			ann: func(t *testing.T) map[string]string {
				st := stages.State{Phase: stages.Succeeded, Revision: "rev1", QueuedAt: now.Add(-3 * time.Minute), Held: "waiting for a release slot (--max-concurrent-releases)",
					Message: "release of canary revision rev2 queued: waiting for a release slot: 50 of 50 releases in flight (--max-concurrent-releases)"}
				return published(t, st, nil, nil)
			},
			want: []string{"Queued:", "since 3m ago, waiting for a release slot", "50 of 50 releases in flight (--max-concurrent-releases)"},
		},
		{
			name: "a paused release says the clock is stopped",
			ann: func(t *testing.T) map[string]string {
				st := progressing(now)
				st.Phase, st.PausedAt = stages.Paused, now.Add(-30*time.Second)
				a := published(t, st, nil, nil)
				a[annotations.Pause] = "true"
				return a
			},
			want: []string{"40s elapsed", "paused: the stage clock is stopped", "Pending:", "meshcanary.io/pause=true"},
		},
		{
			name: "a stage whose canary is still scaling has no clock yet",
			ann: func(t *testing.T) map[string]string {
				st := progressing(now)
				st.StageStart = time.Time{}
				return published(t, st, nil, nil)
			},
			want: []string{"waiting for the canary to be scaled and available"},
		},
		{
			name: "a promoting release says stable is being updated",
			ann: func(t *testing.T) map[string]string {
				st := progressing(now)
				st.Phase = stages.Promoting
				return published(t, st, nil, nil)
			},
			want: []string{"promoting: stable is being updated"},
		},
		{
			name: "only the last five releases are listed",
			ann: func(t *testing.T) map[string]string {
				st := progressing(now)
				st.Phase = stages.Succeeded
				return published(t, st, nil, releases(now, 7))
			},
			want:    []string{"rev2", "rev6"},
			notWant: []string{"rev0", "rev1", "elapsed"},
		},
		{
			name: "a Deployment the controller never saw says so",
			ann: func(*testing.T) map[string]string {
				return map[string]string{annotations.Enabled: "true"}
			},
			want: []string{"<none> (not reconciled yet)", "Warning:", "has not reconciled this Deployment yet"},
		},
		{
			name: "an unreadable annotation is a warning, not a failure",
			ann: func(t *testing.T) map[string]string {
				a := published(t, progressing(now), nil, nil)
				a[annotations.History] = "{not json"
				return a
			},
			want: []string{"Warning:", "unreadable annotations", "Progressing"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := deployment("web", tt.ann(t), nil, nil)
			var b bytes.Buffer
			if err := renderStatus(&b, buildStatus(d, nil, w, now), now); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			for _, s := range tt.want {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tt.notWant {
				if strings.Contains(out, s) {
					t.Errorf("output has %q:\n%s", s, out)
				}
			}
		})
	}
}

func TestStatusDocumentForScripts(t *testing.T) {
	now := epoch()
	ann := published(t, progressing(now), lastAnalysis(now), releases(now, 1))
	ann[annotations.StageDuration] = "2m"
	ann[annotations.Rollback] = "p99"
	doc := buildStatus(deployment("web", ann, nil, nil), nil, weightsDoc{Stable: 50, Canary: 50, Source: "x"}, now)
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	clock := got["clock"].(map[string]any)
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"the phase is a string", got["phase"], "Progressing"},
		{"active tells a release is in flight", got["active"], true},
		{"the stage is as published", got["stage"], "2/3"},
		{"weights come from the caller", got["weights"].(map[string]any)["canary"], 50.0},
		{"elapsed is in whole seconds", clock["elapsedSeconds"], 70.0},
		{"remaining follows from the stage duration", clock["remainingSeconds"], 50.0},
		{"pending commands are listed", got["pendingCommands"].(map[string]any)[annotations.Rollback], "p99"},
		{"the last verdict is summarised", got["verdicts"].(map[string]any)["last"], "Pass"},
		{"the analysis keeps its checks", len(got["analysis"].(map[string]any)["checks"].([]any)), 2},
		{"the history is included", len(got["history"].([]any)), 1},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
				t.Errorf("got %v, want %v", c.got, c.want)
			}
		})
	}
}

func TestWatchFrames(t *testing.T) {
	now := epoch()
	doc := func(weight int, clockSeconds float64) statusDoc {
		d := buildStatus(deployment("web", published(t, progressing(now), nil, nil), nil, nil), nil, weightsDoc{Stable: 100 - weight, Canary: weight, Source: "x"}, now)
		d.Clock.ElapsedSeconds = clockSeconds
		return d
	}
	t.Run("off a terminal a frame is printed only when more than the clock changed", func(t *testing.T) {
		var b bytes.Buffer
		fw := &frameWriter{w: &b}
		for _, d := range []statusDoc{doc(10, 1), doc(10, 2), doc(50, 3)} {
			if err := fw.draw(d, now, true); err != nil {
				t.Fatal(err)
			}
		}
		if fw.frames != 2 || strings.Contains(b.String(), clearScreen) {
			t.Errorf("%d frames, want 2 without screen clearing:\n%q", fw.frames, b.String())
		}
	})
	t.Run("on a terminal every redraw clears the screen so the clock moves", func(t *testing.T) {
		var b bytes.Buffer
		fw := &frameWriter{w: &b, terminal: true, title: "watching"}
		for _, d := range []statusDoc{doc(10, 1), doc(10, 2)} {
			if err := fw.draw(d, now, false); err != nil {
				t.Fatal(err)
			}
		}
		if got := strings.Count(b.String(), clearScreen); got != 2 {
			t.Errorf("%d screen clears, want 2", got)
		}
	})
	t.Run("yaml frames are separate documents", func(t *testing.T) {
		var b bytes.Buffer
		fw := &frameWriter{w: &b, output: outputYAML}
		for _, d := range []statusDoc{doc(10, 1), doc(50, 2)} {
			if err := fw.draw(d, now, true); err != nil {
				t.Fatal(err)
			}
		}
		if strings.Count(b.String(), "\n---\n") != 1 {
			t.Errorf("want two documents:\n%s", b.String())
		}
	})
}

func TestReleaseResultDecidesTheExitCode(t *testing.T) {
	tests := []struct {
		phase   stages.Phase
		wantErr bool
	}{
		{stages.Succeeded, false},
		{stages.Idle, false},
		{stages.RolledBack, true},
		{stages.Invalid, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("a watch ending in %s fails: %v", tt.phase, tt.wantErr), func(t *testing.T) {
			err := releaseResult(statusDoc{Name: "web", Phase: string(tt.phase), Message: "why"})
			if (err != nil) != tt.wantErr {
				t.Errorf("releaseResult = %v", err)
			}
		})
	}
}
