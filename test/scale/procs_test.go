package scale

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// procCPU is the CPU seconds used so far by this process (the simulated
// mesh, the observer and the Prometheus proxy run in it, as "bench") and by
// each of its children by command name (etcd, kube-apiserver, prometheus,
// meshcanary, ...), so that a lag can be blamed on the process that was
// short of CPU rather than guessed at.
func procCPU() map[string]float64 {
	out := map[string]float64{}
	self := os.Getpid()
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(raw)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		comm := s[open+1 : closing]
		// After the name: state, ppid, ..., utime (12th), stime (13th).
		f := strings.Fields(s[closing+2:])
		if len(f) < 13 {
			continue
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(s[:open]))
		ppid, _ := strconv.Atoi(f[1])
		if pid != self && ppid != self {
			continue
		}
		if pid == self {
			comm = "bench"
		}
		utime, _ := strconv.ParseFloat(f[11], 64)
		stime, _ := strconv.ParseFloat(f[12], 64)
		out[comm] += (utime + stime) / 100 // USER_HZ
	}
	return out
}

// cpuShares formats the CPU each process used between before and after,
// as a share of one core over secs, largest first.
func cpuShares(before, after map[string]float64, secs float64) string {
	type use struct {
		name  string
		share float64
	}
	var uses []use
	for name, v := range after {
		uses = append(uses, use{name, (v - before[name]) / secs})
	}
	sort.Slice(uses, func(i, j int) bool { return uses[i].share > uses[j].share })
	var parts []string
	for _, u := range uses {
		if u.share >= 0.01 {
			parts = append(parts, fmt.Sprintf("%s %.0f%%", u.name, 100*u.share))
		}
	}
	return strings.Join(parts, ", ")
}
