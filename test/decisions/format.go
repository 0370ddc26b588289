package decisions

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// share prints k of n as a percentage with its Wilson interval and counts:
// "0.15% [0.05–0.44] (3/2000)".
func share(k, n int) string {
	if n == 0 {
		return "— (0 runs)"
	}
	lo, hi := Wilson(k, n)
	p := float64(k) / float64(n)
	return fmt.Sprintf("%s%% [%s–%s] (%d/%d)", pct(p), pct(lo), pct(hi), k, n)
}

// pct prints a fraction as a percentage with up to two decimals.
func pct(f float64) string {
	return strconv.FormatFloat(math.Round(f*10000)/100, 'f', -1, 64)
}

// seconds prints a duration given in seconds, to the second.
func seconds(s float64) string {
	return (time.Duration(math.Round(s)) * time.Second).String()
}

// count prints a request count.
func count(x float64) string {
	return strconv.FormatFloat(x, 'f', -1, 64)
}

// quantile prints a sample quantile with its interval and the number of
// values behind it: "1m40s [1m30s–1m50s] (n=200)".
func quantile(xs []float64, q float64, unit func(float64) string) string {
	r := QuantileCI(xs, q)
	if !r.Available {
		return "— (n=0)"
	}
	lo, hi := "−∞", "+∞"
	if !r.LoOpen {
		lo = unit(r.Lo)
	}
	if !r.HiOpen {
		hi = unit(r.Hi)
	}
	return fmt.Sprintf("%s [%s–%s] (n=%d)", unit(r.Estimate), lo, hi, r.N)
}
