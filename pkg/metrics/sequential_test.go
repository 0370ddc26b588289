package metrics

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestShareInterval(t *testing.T) {
	tests := []struct {
		name string
		k, n float64
		ok   func(Interval) bool
	}{
		{"no requests tell nothing", 0, 0, func(iv Interval) bool { return iv == Interval{0, 1} }},
		{"no errors in a thousand leave room only below 1%", 0, 1000, func(iv Interval) bool { return iv.Lo == 0 && iv.Hi < 0.01 }},
		{"one error in sixty is not confidently above 1%", 1, 60, func(iv Interval) bool { return iv.Lo < 0.01 }},
		{"five errors in forty are confidently above 1%", 5, 40, func(iv Interval) bool { return iv.Lo > 0.01 && iv.Hi < 0.4 }},
		{"fifty in a thousand is confidently between 2.5% and 8%", 50, 1000, func(iv Interval) bool { return iv.Lo > 0.025 && iv.Hi < 0.08 }},
		{"all of twenty leave room only near one", 20, 20, func(iv Interval) bool { return iv.Hi == 1 && iv.Lo > 0.7 }},
		{"a count extrapolated above n is clamped to n", 20.4, 20, func(iv Interval) bool { return iv == ShareInterval(20, 20) }},
		{"fractional counts are fine", 2.7, 31.2, func(iv Interval) bool { return iv.Lo < 2.7/31.2 && iv.Hi > 2.7/31.2 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if iv := ShareInterval(tt.k, tt.n); !tt.ok(iv) {
				t.Errorf("ShareInterval(%v, %v) = %+v", tt.k, tt.n, iv)
			}
		})
	}
}

// The interval must hold at every look, however many: the chance that a
// stage's sequence of intervals ever excludes the true share stays at
// most Alpha. Checked on seeded Bernoulli sequences looked at after every
// 10 requests, as a stage is looked at every interval.
func TestShareIntervalHoldsAtEveryLook(t *testing.T) {
	for _, p := range []float64{0.001, 0.01, 0.05, 0.3} {
		rng := rand.New(rand.NewPCG(1, uint64(p*1e6)))
		const runs, looks, per = 400, 100, 10
		missed := 0
		for range runs {
			k, n := 0.0, 0.0
			for range looks {
				for range per {
					n++
					if rng.Float64() < p {
						k++
					}
				}
				if iv := ShareInterval(k, n); iv.Lo > p || iv.Hi < p {
					missed++
					break
				}
			}
		}
		if rate := float64(missed) / runs; rate > Alpha {
			t.Errorf("share %v: %d of %d sequences excluded it at some look (%.1f%% > %.0f%%)", p, missed, runs, 100*rate, 100*Alpha)
		}
	}
}

func TestDetectable(t *testing.T) {
	prev := math.Inf(1)
	for _, n := range []float64{3, 10, 30, 100, 300, 1000, 10000} {
		d := Detectable(n, 0.01)
		if d > prev || d <= 0.01 {
			t.Errorf("Detectable(%v, 1%%) = %v after %v: want a share above 1%% that shrinks with n", n, d, prev)
		}
		if !math.IsInf(d, 1) && !Decisive(EvidenceAbove(d*n, n, 0.01)) {
			t.Errorf("Detectable(%v, 1%%) = %v is not detected", n, d)
		}
		prev = d
	}
	if d := Detectable(0, 0.01); !math.IsInf(d, 1) {
		t.Errorf("Detectable without requests = %v, want +Inf", d)
	}
}

// A failed verdict must be rare for a canary exactly at its bound, however
// often the stage is looked at: the evidence reaches 1/Alpha in at most
// Alpha of seeded sequences, looked at every 10 requests; and it must
// come quickly for a canary far beyond it.
func TestEvidenceIsValidAtTheBoundAndQuickBeyondIt(t *testing.T) {
	for _, limit := range []float64{0.01, 0.05, 0.5} {
		for _, dir := range []struct {
			name string
			test func(k, n, limit float64) float64
		}{{"above", EvidenceAbove}, {"below", EvidenceBelow}} {
			rng := rand.New(rand.NewPCG(3, uint64(limit*1e4)))
			const runs, looks, per = 400, 100, 10
			decided := 0
			for range runs {
				k, n := 0.0, 0.0
				for range looks {
					for range per {
						n++
						if rng.Float64() < limit {
							k++
						}
					}
					if Decisive(dir.test(k, n, limit)) {
						decided++
						break
					}
				}
			}
			if rate := float64(decided) / runs; rate > Alpha {
				t.Errorf("share at its limit %v: evidence %s decisive in %d of %d sequences (%.1f%% > %.0f%%)", limit, dir.name, decided, runs, 100*rate, 100*Alpha)
			}
		}
	}
	tests := []struct {
		name       string
		k, n, lim  float64
		above, dec bool
	}{
		{"four errors in forty are decisively above 1.2%", 4, 40, 0.012, true, true},
		{"one error in forty is not", 1, 40, 0.012, true, false},
		{"no errors in five hundred are decisively below 1.2%", 0, 500, 0.012, false, true},
		{"no errors in twenty are not", 0, 20, 0.012, false, false},
		{"one event beyond a limit of zero is decisive", 1, 1000, 0, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := EvidenceBelow(tt.k, tt.n, tt.lim)
			if tt.above {
				e = EvidenceAbove(tt.k, tt.n, tt.lim)
			}
			if Decisive(e) != tt.dec {
				t.Errorf("evidence %v, decisive %v, want %v", e, Decisive(e), tt.dec)
			}
		})
	}
}
