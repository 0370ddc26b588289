package decisions

import "time"

// End is how a release ended.
type End int

const (
	// NotEnded: still in flight when the simulation's limit came.
	NotEnded End = iota
	Promoted
	RolledBack
)

// Outcome is one release under one rule.
type Outcome struct {
	End End
	// At is the time from the first canary request to the end, or -1 when
	// the canary never served a request.
	At time.Duration
	// Stage (1-based) and Weight are the stage the release was in when it
	// ended (for a promotion, its last stage).
	Stage, Weight int
	// CanaryRequests and CanaryErrors are what the canary served up to the
	// end: its requests and its 5xx.
	CanaryRequests, CanaryErrors float64

	// The rest is meshcanary's only.

	// Cause names the checks that failed in the verdict that rolled back,
	// joined by "+".
	Cause string
	// Verdicts counts the analyses; Failed the failed ones; AfterFailed the
	// analyses that followed a failed one, FailedAfterFailed those of them
	// that failed too. DecidedAfterFailed and FailedDecidedAfterFailed are
	// the same for the first Pass or Fail after a failed verdict, skipping
	// inconclusive ones.
	Verdicts, Failed, AfterFailed, FailedAfterFailed int
	DecidedAfterFailed, FailedDecidedAfterFailed     int
	// Stuck says a RolloutStuck event was emitted.
	Stuck bool
}

// Rule decides one release on a stream of requests, for at most limit of
// simulated time. A rule may have variants that decide on the same
// traffic (the same weights over time) and differ only in when they end;
// Run returns one Outcome per name.
type Rule interface {
	Names() []string
	// Nominal is how long a healthy release takes when every check
	// passes at once.
	Nominal() time.Duration
	Run(s *Stream, limit time.Duration) []Outcome
}

// since is the time from the stream's first canary request to second end.
func since(s *Stream, end int) time.Duration {
	if s.FirstCanary() < 0 {
		return -1
	}
	return time.Duration(end-s.FirstCanary()) * time.Second
}

// finish fills what every rule reports about a release that ended (or was
// cut) at second end.
func finish(s *Stream, e End, end, stage, weight int) Outcome {
	c := s.Window(canary, 0, end)
	return Outcome{End: e, At: since(s, end), Stage: stage, Weight: weight,
		CanaryRequests: c.Requests, CanaryErrors: c.Errors}
}
