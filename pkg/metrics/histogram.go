package metrics

import (
	"math"
	"sort"
)

// Bucket is one cumulative histogram bucket: Count requests took at most
// UpperBound seconds. The last bucket's bound is +Inf.
type Bucket struct {
	UpperBound float64
	Count      float64
}

// histogram is one version's latency histogram over a window, sorted by
// bound. Latency checks are decided on it rather than on a quantile alone:
// a quantile estimated from a handful of requests, interpolated inside one
// of Istio's coarse buckets (100 ms, 250 ms, 500 ms, ...), moves a lot by
// chance, and comparing two such estimates rolled back healthy canaries
// that saw little traffic.
type histogram []Bucket

func sortedHistogram(b []Bucket) histogram {
	h := append(histogram(nil), b...)
	sort.Slice(h, func(i, j int) bool { return h[i].UpperBound < h[j].UpperBound })
	// increase() extrapolates each bucket on its own, so a cumulative count
	// can come out a little below the one before it; keep it monotonic.
	for i := 1; i < len(h); i++ {
		h[i].Count = math.Max(h[i].Count, h[i-1].Count)
	}
	return h
}

// total is the number of requests the histogram counted.
func (h histogram) total() float64 {
	if len(h) == 0 {
		return 0
	}
	return h[len(h)-1].Count
}

// quantile estimates the q-quantile the way PromQL's histogram_quantile
// does: linear interpolation inside the bucket holding the rank, the lower
// bound of the first bucket taken as 0, and the highest finite bound when
// the rank falls in the +Inf bucket. NaN without data.
func (h histogram) quantile(q float64) float64 {
	n := h.total()
	if len(h) < 2 || !(n > 0) {
		return math.NaN()
	}
	rank := q * n
	i := sort.Search(len(h), func(i int) bool { return h[i].Count >= rank })
	if i >= len(h)-1 && math.IsInf(h[len(h)-1].UpperBound, 1) {
		return h[len(h)-2].UpperBound
	}
	if i >= len(h) {
		i = len(h) - 1
	}
	lower, below := 0.0, 0.0
	if i > 0 {
		lower, below = h[i-1].UpperBound, h[i-1].Count
	}
	inBucket := h[i].Count - below
	if inBucket <= 0 {
		return h[i].UpperBound
	}
	return lower + (h[i].UpperBound-lower)*(rank-below)/inBucket
}

// slowerThan estimates how many requests took longer than t, interpolating
// linearly inside the bucket that holds t, as quantile does.
func (h histogram) slowerThan(t float64) float64 {
	n := h.total()
	lower, below := 0.0, 0.0
	for _, b := range h {
		if t <= b.UpperBound {
			if math.IsInf(b.UpperBound, 1) {
				return n - below // everything above the last finite bound
			}
			width := b.UpperBound - lower
			frac := 1.0
			if width > 0 {
				frac = (t - lower) / width
			}
			atMost := below + frac*(b.Count-below)
			return math.Max(0, n-atMost)
		}
		lower, below = b.UpperBound, b.Count
	}
	return 0
}

// Quantile estimates the q-quantile of cumulative buckets (in any order)
// as PromQL's histogram_quantile does; NaN without data. Simulations feed
// Evaluate the same quantiles Analyze would.
func Quantile(b []Bucket, q float64) float64 { return sortedHistogram(b).quantile(q) }
