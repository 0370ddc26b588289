package decisions

import "math/rand/v2"

// pcgStream is the PCG stream constant; the seed varies per run.
const pcgStream = 0x6d657368636e7279

// Stream is one run's requests, generated second by second as a rule's
// simulated clock advances, and kept as per-version prefix sums so that any
// window's counts are one subtraction.
//
// Every request consumes the same random number whatever the weights, so
// two Streams with the same seed serve the same requests: only the routing
// threshold differs, and a request routed to the canary at one weight is
// routed there at every higher weight too.
type Stream struct {
	rng     *rand.Rand
	rps     float64
	profile [2]served
	// cum[v][k] is what version v served in seconds [0, k).
	cum [2][]Counts
	// firstCanary is the first second in which the canary served a
	// request, -1 until then.
	firstCanary int
}

// NewStream returns the stream of run seed at rps requests per second.
func NewStream(seed uint64, rps float64, stableP, canaryP Profile) *Stream {
	s := &Stream{}
	s.cum[stable] = make([]Counts, 1, 2048)
	s.cum[canary] = make([]Counts, 1, 2048)
	s.Reset(seed, rps, stableP, canaryP)
	return s
}

// Reset makes s the stream NewStream would return, keeping its buffers.
func (s *Stream) Reset(seed uint64, rps float64, stableP, canaryP Profile) {
	s.rps = rps
	s.profile[stable], s.profile[canary] = prepare(stableP), prepare(canaryP)
	s.rng = rand.New(rand.NewPCG(seed, pcgStream))
	s.cum[stable], s.cum[canary] = s.cum[stable][:1], s.cum[canary][:1]
	s.firstCanary = -1
}

// Generated is the number of seconds generated so far.
func (s *Stream) Generated() int { return len(s.cum[stable]) - 1 }

// Advance generates seconds up to (not including) second upTo with the
// canary at weight percent of the requests.
func (s *Stream) Advance(upTo, weight int) {
	for k := s.Generated(); k < upTo; k++ {
		var sec [2]Counts
		s.second(&sec, weight)
		if sec[canary].Requests > 0 && s.firstCanary < 0 {
			s.firstCanary = k
		}
		for v := range sec {
			next := s.cum[v][k]
			next.add(&sec[v])
			s.cum[v] = append(s.cum[v], next)
		}
	}
}

// second draws one second of requests: Poisson arrivals, each routed to
// the canary with probability weight/100, failed with its version's error
// rate and put in its version's latency bucket.
func (s *Stream) second(sec *[2]Counts, weight int) {
	n, below := poisson(s.rng, s.rps), routeBelow(weight)
	for range n {
		x := s.rng.Uint64()
		v := stable
		if x>>(64-routeBits) < below {
			v = canary
		}
		p, c := &s.profile[v], &sec[v]
		c.Requests++
		if (x>>drawBits)&drawMask < p.errBelow {
			c.Errors++
		}
		c.Buckets[p.bucket(x&drawMask)]++
	}
}

// Window is what version v served in seconds [from, to), clamped to the
// seconds generated.
func (s *Stream) Window(v version, from, to int) Counts {
	to = min(max(to, 0), s.Generated())
	from = min(max(from, 0), to)
	return s.cum[v][to].minus(s.cum[v][from])
}

// FirstCanary is the first second with a canary request, or -1.
func (s *Stream) FirstCanary() int { return s.firstCanary }
