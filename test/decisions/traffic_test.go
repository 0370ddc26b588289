package decisions

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/meshcanary/meshcanary/pkg/metrics"
)

func TestPoisson(t *testing.T) {
	for _, tt := range []struct {
		name   string
		lambda float64
	}{
		{"a rare arrival keeps its mean", 0.02},
		{"a few arrivals a second keep their mean and variance", 2},
		{"two hundred arrivals a second keep their mean and variance", 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			const n = 200000
			var sum, sq float64
			for range n {
				k := float64(poisson(r, tt.lambda))
				sum += k
				sq += k * k
			}
			mean := sum / n
			variance := sq/n - mean*mean
			// Five standard errors of the mean; the variance within 5%.
			if se := math.Sqrt(tt.lambda / n); math.Abs(mean-tt.lambda) > 5*se {
				t.Errorf("mean %g, want %g ± %g", mean, tt.lambda, 5*se)
			}
			if math.Abs(variance/tt.lambda-1) > 0.05 {
				t.Errorf("variance %g, want %g", variance, tt.lambda)
			}
		})
	}
}

func TestStreamShares(t *testing.T) {
	slow := Profile{ErrorRate: 0.10, MedianMs: 150, Sigma: 0.5}
	s := NewStream(7, 200, healthy(), slow)
	s.Advance(3000, 25)
	c, st := s.Window(canary, 0, 3000), s.Window(stable, 0, 3000)
	total := c.Requests + st.Requests
	within := func(name string, got, want, n float64) {
		t.Helper()
		if se := math.Sqrt(want * (1 - want) / n); math.Abs(got-want) > 5*se {
			t.Errorf("%s: %g, want %g ± %g", name, got, want, 5*se)
		}
	}
	if math.Abs(total/3000-200) > 5*math.Sqrt(200.0/3000) {
		t.Errorf("%g requests a second, want 200", total/3000)
	}
	within("canary share of requests at weight 25", c.Requests/total, 0.25, total)
	within("canary error share", c.Errors/c.Requests, 0.10, c.Requests)
	within("stable error share", st.Errors/st.Requests, 0.001, st.Requests)
	cdf := latencyCDF(slow)
	below := 0.0
	for i := range 8 { // up to 250 ms
		below += c.Buckets[i]
	}
	within("canary share at most 250 ms", below/c.Requests, cdf[7], c.Requests)
}

func TestStreamsWithOneSeedServeTheSameRequests(t *testing.T) {
	a := NewStream(11, 50, healthy(), healthy())
	b := NewStream(11, 50, healthy(), healthy())
	a.Advance(600, 10)
	b.Advance(600, 50)
	for k := 1; k <= 600; k++ {
		ta := a.Window(canary, k-1, k).Requests + a.Window(stable, k-1, k).Requests
		tb := b.Window(canary, k-1, k).Requests + b.Window(stable, k-1, k).Requests
		if ta != tb {
			t.Fatalf("second %d: %g requests at weight 10, %g at weight 50", k-1, ta, tb)
		}
		if a.Window(canary, k-1, k).Requests > b.Window(canary, k-1, k).Requests {
			t.Fatalf("second %d: more canary requests at weight 10 than at 50", k-1)
		}
	}
}

func TestHistogramQuantile(t *testing.T) {
	tests := []struct {
		name string
		c    Counts
		q    float64
		want float64
	}{
		{"no requests has no quantile", Counts{}, 0.5, math.NaN()},
		{"the rank is interpolated inside its bucket", counts(100, 0, 40), 0.5, 0.0375},
		{"a rank in the +Inf bucket is the highest finite bound", counts(10, 0, math.Inf(1)), 0.99, 3600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := metrics.Quantile(histogram(tt.c), tt.q)
			if !(math.Abs(got-tt.want) < 1e-9) && !(math.IsNaN(got) && math.IsNaN(tt.want)) {
				t.Errorf("quantile %g = %g, want %g", tt.q, got, tt.want)
			}
		})
	}
}

func TestIntervals(t *testing.T) {
	t.Run("Wilson's interval of 0 in 10 reaches 27.75%", func(t *testing.T) {
		lo, hi := Wilson(0, 10)
		if lo != 0 || math.Abs(hi-0.2775) > 1e-4 {
			t.Errorf("Wilson(0, 10) = [%g, %g]", lo, hi)
		}
	})
	t.Run("Wilson's interval of 50 in 100 is 40.4%–59.6%", func(t *testing.T) {
		lo, hi := Wilson(50, 100)
		if math.Abs(lo-0.4038) > 1e-4 || math.Abs(hi-0.5962) > 1e-4 {
			t.Errorf("Wilson(50, 100) = [%g, %g]", lo, hi)
		}
	})
	t.Run("the median of ten values lies between the 2nd and the 9th", func(t *testing.T) {
		q := QuantileCI([]float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, 0.5)
		if q.Estimate != 5 || q.Lo != 2 || q.Hi != 9 || q.LoOpen || q.HiOpen {
			t.Errorf("got %+v", q)
		}
	})
	t.Run("the 99th percentile of fifty values has no upper bound", func(t *testing.T) {
		xs := make([]float64, 50)
		for i := range xs {
			xs[i] = float64(i)
		}
		if q := QuantileCI(xs, 0.99); !q.HiOpen || q.LoOpen {
			t.Errorf("got %+v", q)
		}
	})
}
