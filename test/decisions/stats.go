package decisions

import (
	"math"
	"slices"
)

// z95 is the two-sided 95% normal quantile.
const z95 = 1.959963984540054

// Wilson is the two-sided 95% Wilson score interval of k successes in n
// trials; [0, 1] without trials.
func Wilson(k, n int) (lo, hi float64) {
	if n <= 0 {
		return 0, 1
	}
	nf := float64(n)
	p := float64(k) / nf
	z2 := z95 * z95
	denom := 1 + z2/nf
	center := (p + z2/(2*nf)) / denom
	half := z95 / denom * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf))
	return math.Max(0, center-half), math.Min(1, center+half)
}

// Quantile is a sample quantile with a distribution-free 95% interval.
type Quantile struct {
	N         int
	Estimate  float64
	Lo, Hi    float64
	LoOpen    bool // no order statistic is low enough: the interval is unbounded below
	HiOpen    bool // nor high enough: unbounded above
	Available bool
}

// QuantileCI is the q-quantile of xs (the order statistic x₍⌈nq⌉₎) and the
// order-statistic interval [x₍j₎, x₍k₎] with P(j ≤ B < k) ≥ 95% for
// B ~ Binomial(n, q), j as large and k as small as that allows: it covers
// the true quantile with at least 95% probability whatever the
// distribution.
func QuantileCI(xs []float64, q float64) Quantile {
	n := len(xs)
	if n == 0 {
		return Quantile{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	out := Quantile{N: n, Available: true}
	out.Estimate = s[max(int(math.Ceil(float64(n)*q)), 1)-1]
	cdf := binomialCDF(n, q)
	// j: largest with P(B < j) = cdf[j-1] ≤ 2.5%; k: smallest with
	// P(B ≥ k) = 1 − cdf[k-1] ≤ 2.5%.
	j := 0
	for j < n && cdf[j] <= 0.025 {
		j++
	}
	k := n + 1
	for i := n; i >= 1; i-- {
		if 1-cdf[i-1] <= 0.025 {
			k = i
		}
	}
	out.LoOpen, out.HiOpen = j < 1, k > n
	if !out.LoOpen {
		out.Lo = s[j-1]
	}
	if !out.HiOpen {
		out.Hi = s[k-1]
	}
	return out
}

// binomialCDF is P(B ≤ i) for i = 0..n, B ~ Binomial(n, p), from the
// probabilities in log space.
func binomialCDF(n int, p float64) []float64 {
	out := make([]float64, n+1)
	lnN, _ := math.Lgamma(float64(n + 1))
	acc := 0.0
	for i := 0; i <= n; i++ {
		lnI, _ := math.Lgamma(float64(i + 1))
		lnR, _ := math.Lgamma(float64(n - i + 1))
		acc += math.Exp(lnN - lnI - lnR + float64(i)*math.Log(p) + float64(n-i)*math.Log1p(-p))
		out[i] = math.Min(acc, 1)
	}
	return out
}
