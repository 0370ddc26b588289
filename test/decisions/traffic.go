package decisions

import (
	"math"
	"math/rand/v2"
)

// numBuckets is the number of buckets of Istio's default
// istio_request_duration_milliseconds histogram, +Inf included.
const numBuckets = 20

// istioBucketsMs are the histogram's upper bounds in milliseconds, the last
// one +Inf.
func istioBucketsMs() [numBuckets]float64 {
	return [numBuckets]float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
		30000, 60000, 300000, 600000, 1800000, 3600000, math.Inf(1)}
}

// Version indexes the two versions a stream serves.
type version int

const (
	stable version = iota
	canary
)

// Profile is what one version does to the requests it serves: a share
// answered with a 5xx and a log-normal latency.
type Profile struct {
	ErrorRate float64
	// MedianMs and Sigma describe the log-normal latency.
	MedianMs, Sigma float64
}

// healthy is the baseline both versions share unless a scenario says
// otherwise: 0.1% errors, median 50 ms, sigma 0.5 (p95 ≈ 114 ms, just past
// Istio's 100 ms bucket bound).
func healthy() Profile { return Profile{ErrorRate: 0.001, MedianMs: 50, Sigma: 0.5} }

// Each request draws one 64-bit random number: its top routeBits decide
// its version, the next drawBits whether it fails, the last drawBits its
// latency. Every threshold is exact to 2⁻²⁰ or finer.
const (
	routeBits = 20
	drawBits  = 22
	drawMask  = 1<<drawBits - 1
)

// served is a version's profile prepared for drawing: the 5xx threshold
// and the latency CDF at each bucket bound, on drawBits-bit uniforms.
type served struct {
	errBelow uint64
	cdf      [numBuckets]uint64
}

func prepare(p Profile) served {
	s := served{errBelow: uint64(math.Round(p.ErrorRate * (1 << drawBits)))}
	for i, c := range latencyCDF(p) {
		s.cdf[i] = uint64(math.Round(c * (1 << drawBits)))
	}
	s.cdf[numBuckets-1] = 1 << drawBits
	return s
}

// latencyCDF is the share of a version's requests at or below each bucket
// bound.
func latencyCDF(p Profile) [numBuckets]float64 {
	var cdf [numBuckets]float64
	for i, b := range istioBucketsMs() {
		cdf[i] = 1
		if !math.IsInf(b, 1) {
			z := (math.Log(b) - math.Log(p.MedianMs)) / p.Sigma
			cdf[i] = 0.5 * math.Erfc(-z/math.Sqrt2)
		}
	}
	return cdf
}

// bucket is the histogram bucket of a request whose latency draw is u.
func (s *served) bucket(u uint64) int {
	for i := 0; i < numBuckets-1; i++ {
		if u < s.cdf[i] {
			return i
		}
	}
	return numBuckets - 1
}

// routeBelow is the routing threshold of a weight: a request goes to the
// canary when its top routeBits are below it.
func routeBelow(weight int) uint64 {
	return (uint64(weight)<<routeBits + 99) / 100
}

// Counts is what one version served over some seconds: requests, 5xx, and
// requests per latency bucket (not cumulative).
type Counts struct {
	Requests, Errors float64
	Buckets          [numBuckets]float64
}

func (c Counts) minus(o Counts) Counts {
	c.Requests -= o.Requests
	c.Errors -= o.Errors
	for i := range c.Buckets {
		c.Buckets[i] -= o.Buckets[i]
	}
	return c
}

func (c *Counts) add(o *Counts) {
	c.Requests += o.Requests
	c.Errors += o.Errors
	for i := range c.Buckets {
		c.Buckets[i] += o.Buckets[i]
	}
}

// poisson draws from Poisson(lambda) by inversion; lambda is at most a few
// hundred here, where inversion is exact and cheap enough.
func poisson(r *rand.Rand, lambda float64) int {
	u := r.Float64()
	p := math.Exp(-lambda)
	f, k := p, 0
	for u > f && p > 0 {
		k++
		p *= lambda / float64(k)
		f += p
	}
	return k
}
