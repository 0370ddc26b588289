package metrics

import (
	"math"
	"slices"
	"testing"
)

// istioBucketsMs are the bounds of Istio's default request duration
// buckets, in milliseconds as istio_request_duration_milliseconds_bucket
// labels them.
var istioBucketsMs = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000, math.Inf(1)}

// istioCounts counts latencies (ms) into Istio's default buckets: count i is
// the number of requests that took at most istioBucketsMs[i].
func istioCounts(latenciesMs []float64) []float64 {
	counts := make([]float64, len(istioBucketsMs))
	for _, ms := range latenciesMs {
		for i, le := range istioBucketsMs {
			if ms <= le {
				counts[i]++
			}
		}
	}
	return counts
}

// latencyBuckets is the histogram read makes of requests that took
// latenciesMs: Istio's default buckets with bounds in seconds.
func latencyBuckets(latenciesMs []float64) []Bucket {
	counts := istioCounts(latenciesMs)
	b := make([]Bucket, len(counts))
	for i, c := range counts {
		b[i] = Bucket{UpperBound: istioBucketsMs[i] / 1000, Count: c}
	}
	return b
}

// logNormal is n latencies (ms) at the evenly spaced quantiles (i+½)/n of
// a log-normal distribution with the given median and sigma: a realistic
// sample without the luck of random draws, so that every number a test
// states can be recomputed from the bucket counts.
func logNormal(n int, medianMs, sigma float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		p := (float64(i) + 0.5) / float64(n)
		z := math.Sqrt2 * math.Erfinv(2*p-1)
		out[i] = medianMs * math.Exp(sigma*z)
	}
	return out
}

// repeat is n requests that each took ms.
func repeat(n int, ms float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = ms
	}
	return out
}

// timed is a version that served the concatenated latencies (ms) without
// errors: its histogram as Analyze reads it and, as Analyze computes them
// from that histogram, its point quantiles.
func timed(latenciesMs ...[]float64) Sample {
	all := slices.Concat(latenciesMs...)
	s := served(float64(len(all)), 0)
	s.Latency = latencyBuckets(all)
	h := sortedHistogram(s.Latency)
	for _, m := range []string{MetricLatencyP50, MetricLatencyP95, MetricLatencyP99} {
		q, _ := latencyQuantile(m)
		s.Values[m] = h.quantile(q)
	}
	return s
}

// buckets is a histogram from bound, count pairs (seconds, cumulative).
func buckets(pairs ...float64) []Bucket {
	var b []Bucket
	for i := 0; i+1 < len(pairs); i += 2 {
		b = append(b, Bucket{UpperBound: pairs[i], Count: pairs[i+1]})
	}
	return b
}

func TestHistogramQuantile(t *testing.T) {
	inf := math.Inf(1)
	nan := math.NaN()
	// 50 requests up to 50ms, 40 more up to 100ms, 10 more up to 250ms.
	hundred := buckets(0.05, 50, 0.1, 90, 0.25, 100, inf, 100)
	tests := []struct {
		name    string
		buckets []Bucket
		q       float64
		want    float64
	}{
		{
			// Rank 70 is the 20th of the 40 requests in (50ms, 100ms].
			name:    "a rank inside a bucket is interpolated linearly between its bounds",
			buckets: hundred, q: 0.7, want: 0.075,
		},
		{
			// Rank 20 of the 50 requests in [0, 50ms].
			name:    "the first bucket is interpolated from zero",
			buckets: hundred, q: 0.2, want: 0.02,
		},
		{
			name:    "a rank equal to a bucket's count is that bucket's upper bound",
			buckets: hundred, q: 0.9, want: 0.1,
		},
		{
			name:    "buckets in any order are sorted by bound first",
			buckets: buckets(inf, 100, 0.25, 100, 0.05, 50, 0.1, 90), q: 0.7, want: 0.075,
		},
		{
			// The lead's incident: 17 of 20 requests up to 100ms, 3 in
			// (100ms, 250ms]; rank 19 is the second of those three, so
			// 100 + 150 × 2/3 = 200ms wherever the three really were.
			name:    "twenty requests with three between 100 and 250 ms put p95 at 200 ms",
			buckets: buckets(0.1, 17, 0.25, 20, inf, 20), q: 0.95, want: 0.2,
		},
		{
			// Rank 50 is reached by the 50ms bucket already; the empty
			// (50ms, 100ms] bucket does not hold it.
			name:    "an empty bucket after the rank is not interpolated into",
			buckets: buckets(0.05, 50, 0.1, 50, 0.25, 100, inf, 100), q: 0.5, want: 0.05,
		},
		{
			// Rank 60 is the 10th of the 50 in (100ms, 250ms].
			name:    "a rank past an empty bucket is interpolated in the next one",
			buckets: buckets(0.05, 50, 0.1, 50, 0.25, 100, inf, 100), q: 0.6, want: 0.13,
		},
		{
			name:    "a rank in the +Inf bucket gives the highest finite bound",
			buckets: buckets(0.1, 90, 0.25, 95, inf, 100), q: 0.99, want: 0.25,
		},
		{
			name:    "requests all above the last finite bound give that bound",
			buckets: buckets(0.1, 0, 3600, 0, inf, 7), q: 0.5, want: 3600,
		},
		{
			// increase() extrapolated the 250ms bucket to 58, below the
			// 100ms bucket's 60. Raised to 60 as PromQL does, rank 61 is
			// the first of the 40 in (250ms, 500ms]: 250 + 250/40. Taken
			// as is it would be interpolated from 58: 250 + 250 × 3/42.
			name:    "non-monotonic extrapolated counts are made monotonic",
			buckets: buckets(0.1, 60, 0.25, 58, 0.5, 100, inf, 100), q: 0.61, want: 0.25625,
		},
		{
			// The total is the largest count, 100.4; rank 50.2 is half of
			// the 100ms bucket.
			name:    "a +Inf count extrapolated below the finite ones is raised to them",
			buckets: buckets(0.1, 100.4, inf, 99.8), q: 0.5, want: 0.05,
		},
		{
			name:    "no requests give NaN",
			buckets: buckets(0.1, 0, 0.25, 0, inf, 0), q: 0.5, want: nan,
		},
		{
			name:    "no buckets give NaN",
			buckets: nil, q: 0.95, want: nan,
		},
		{
			name:    "a lone +Inf bucket gives NaN, as in PromQL",
			buckets: buckets(inf, 10), q: 0.5, want: nan,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sortedHistogram(tt.buckets).quantile(tt.q)
			if math.IsNaN(tt.want) {
				if !math.IsNaN(got) {
					t.Errorf("quantile(%v) = %v, want NaN", tt.q, got)
				}
				return
			}
			if math.Abs(got-tt.want) > 1e-12 {
				t.Errorf("quantile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

func TestSortedHistogramLeavesItsInputAlone(t *testing.T) {
	in := buckets(math.Inf(1), 9, 0.1, 10)
	want := slices.Clone(in)
	sortedHistogram(in)
	if !slices.Equal(in, want) {
		t.Errorf("sortedHistogram changed its input to %v", in)
	}
}

func TestHistogramSlowerThan(t *testing.T) {
	inf := math.Inf(1)
	// 110 requests: 10 up to 10ms, 40 more up to 50ms, 40 more up to
	// 100ms, 10 more up to 250ms and 10 slower than 250ms.
	h := buckets(0.01, 10, 0.05, 50, 0.1, 90, 0.25, 100, inf, 110)
	tests := []struct {
		name    string
		buckets []Bucket
		t       float64
		want    float64
	}{
		{
			// Half of the 40 in (50ms, 100ms] are taken as faster.
			name: "inside a bucket its requests are split linearly", buckets: h, t: 0.075,
			want: 110 - (50 + 20),
		},
		{
			name: "on a bound exactly the requests above it are slower", buckets: h, t: 0.1,
			want: 20,
		},
		{
			// Half of the first 10 are taken as faster than 5ms.
			name: "below the first bound the first bucket is split from zero", buckets: h, t: 0.005,
			want: 105,
		},
		{
			name: "every request is slower than zero", buckets: h, t: 0,
			want: 110,
		},
		{
			name: "on the last finite bound only the +Inf bucket is slower", buckets: h, t: 0.25,
			want: 10,
		},
		{
			// Where above 250ms they were is unknown; they all count as
			// slower, which can only make a bound stricter there.
			name: "above the last finite bound the +Inf bucket still counts as slower", buckets: h, t: 60,
			want: 10,
		},
		{
			name: "extrapolated counts make fractional shares", buckets: buckets(0.1, 17.5, 0.25, 20.5, inf, 20.5), t: 0.175,
			want: 20.5 - (17.5 + 1.5),
		},
		{
			name: "an empty histogram has no slow requests", buckets: nil, t: 0.1,
			want: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sortedHistogram(tt.buckets).slowerThan(tt.t); math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("slowerThan(%v) = %v, want %v", tt.t, got, tt.want)
			}
		})
	}
}

// Deciding "pQ > T" as "more than 1−Q of the requests were slower than T"
// is only the same question if slowerThan inverts quantile: both
// interpolate linearly inside the same bucket.
func TestHistogramSlowerThanInvertsQuantile(t *testing.T) {
	h := sortedHistogram(latencyBuckets(logNormal(2000, 40, 0.6)))
	n := h.total()
	for _, q := range []float64{0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99} {
		x := h.quantile(q)
		if got, want := h.slowerThan(x), (1-q)*n; math.Abs(got-want) > 1e-9*n {
			t.Errorf("slowerThan(quantile(%v) = %v) = %v, want %v", q, x, got, want)
		}
	}
}
