package decisions

import "testing"

// counts builds a window's counts with every request in the bucket holding
// latencyMs.
func counts(requests, errors, latencyMs float64) Counts {
	c := Counts{Requests: requests, Errors: errors}
	for i, b := range istioBucketsMs() {
		if latencyMs <= b {
			c.Buckets[i] = requests
			break
		}
	}
	return c
}

func TestFlaggerCheck(t *testing.T) {
	f := NewFlagger()
	tests := []struct {
		name string
		c    Counts
		want Check
	}{
		{"a minute without canary requests runs no check", Counts{}, NotRun},
		{"a minute at 99% success and fast passes", counts(100, 1, 40), Passed},
		{"a minute below 99% success fails", counts(100, 2, 40), Failed},
		{"a minute whose p99 is over 500 ms fails", counts(100, 0, 700), Failed},
		{"a minute whose p99 is inside the 250–500 ms bucket passes", counts(100, 0, 300), Passed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := f.Check(tt.c); got != tt.want {
				t.Errorf("Check = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFlaggerNext(t *testing.T) {
	f := NewFlagger()
	tests := []struct {
		name  string
		st    FlaggerState
		check Check
		want  FlaggerState
	}{
		{"the first iteration starts the traffic without a check", FlaggerState{}, Failed, FlaggerState{Weight: 10}},
		{"a passing check advances one step", FlaggerState{Weight: 10}, Passed, FlaggerState{Weight: 20}},
		{"a passing check at the maximum weight promotes", FlaggerState{Weight: 50}, Passed, FlaggerState{Weight: 50, End: Promoted}},
		{"a failed check counts and holds the weight", FlaggerState{Weight: 30}, Failed, FlaggerState{Weight: 30, FailedChecks: 1}},
		{"a check not run neither advances nor counts", FlaggerState{Weight: 30, FailedChecks: 1}, NotRun, FlaggerState{Weight: 30, FailedChecks: 1}},
		{"failed checks are never reset by passing ones", FlaggerState{Weight: 30, FailedChecks: 1}, Passed, FlaggerState{Weight: 40, FailedChecks: 1}},
		{"the second failed check does not roll back yet", FlaggerState{Weight: 30, FailedChecks: 1}, Failed, FlaggerState{Weight: 30, FailedChecks: 2}},
		{"the iteration after the threshold rolls back without a check", FlaggerState{Weight: 30, FailedChecks: 2}, Passed, FlaggerState{Weight: 30, FailedChecks: 2, End: RolledBack}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := f.Next(tt.st, func() Check { return tt.check }); got != tt.want {
				t.Errorf("Next = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestArgoMeasure(t *testing.T) {
	a := NewArgo(NewMeshcanary().Plan.Steps)
	tests := []struct {
		name string
		c    Counts
		want Check
	}{
		{"a measurement without canary requests is inconclusive", Counts{}, NotRun},
		{"an error rate just under 1% passes", counts(1000, 9, 40), Passed},
		{"an error rate of exactly 1% fails", counts(100, 1, 40), Failed},
		{"one error among three requests fails", counts(3, 1, 40), Failed},
		{"latency is not measured", counts(100, 0, 5000), Passed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := a.Measure(tt.c); got != tt.want {
				t.Errorf("Measure = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestArgoFold(t *testing.T) {
	a := NewArgo(NewMeshcanary().Plan.Steps)
	tests := []struct {
		name string
		seq  []Check
		want [2]End // in total, in a row
	}{
		{"two spread failed measurements end neither counting", []Check{Failed, Passed, Failed}, [2]End{NotEnded, NotEnded}},
		{"a third failed measurement, however spread, fails the analysis as Argo counts", []Check{Failed, Passed, Failed, Passed, Passed, Failed}, [2]End{RolledBack, NotEnded}},
		{"two failed measurements in a row end only the counting in a row", []Check{Passed, Failed, Failed}, [2]End{NotEnded, RolledBack}},
		{"an inconclusive measurement does not break a streak", []Check{Failed, NotRun, Failed}, [2]End{NotEnded, RolledBack}},
		{"a passing measurement breaks a streak", []Check{Failed, Passed, Failed, Passed}, [2]End{NotEnded, NotEnded}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := ArgoState{}
			for _, m := range tt.seq {
				st = a.Fold(st, m)
			}
			if st.Ends != tt.want {
				t.Errorf("after %v: %+v, want ends %v", tt.seq, st, tt.want)
			}
		})
	}
}
