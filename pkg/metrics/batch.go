package metrics

import (
	"context"
	"errors"
	"time"
)

// Answer is AnalyzeAll's reply to one request: what Analyze would have
// returned for it alone.
type Answer struct {
	Result Result
	Err    error
}

// AnalyzeAll answers several requests with one query per builtin family
// (requests, 5xx, latency buckets) for all of them, so that Prometheus
// sees a handful of queries per batch whatever the number of rollouts in
// it. Each request keeps its own window and end: its part of the query is
// pinned to its At with PromQL's @ modifier, and the parts are joined with
// `or`, which cannot mix them up because they select different workloads.
// Custom metrics are the policy's own PromQL and stay one query per
// rollout and version. A failed family query fails every request that
// needed it, as it would have failed each of them alone.
func (a *Analyzer) AnalyzeAll(ctx context.Context, reqs []Request) []Answer {
	if len(reqs) == 1 {
		res, err := a.Analyze(ctx, reqs[0])
		return []Answer{{Result: res, Err: err}}
	}
	mains := make([]Request, len(reqs))
	var observes []Request
	var observed []int // index in reqs of each observe
	for i, req := range reqs {
		main, observe, separate := splitObserve(req)
		mains[i] = main
		if separate {
			observes = append(observes, observe)
			observed = append(observed, i)
		}
	}
	s := a.sampleAll(ctx, mains)
	o := a.sampleAll(ctx, observes)
	out := make([]Answer, len(reqs))
	for i, req := range reqs {
		if s[i].err != nil {
			out[i].Err = s[i].err
			continue
		}
		_, observe, _ := splitObserve(req)
		out[i].Result = finish(mains[i], observe, s[i].s, s[i].s)
	}
	for j, i := range observed {
		if out[i].Err != nil {
			continue
		}
		if o[j].err != nil {
			out[i] = Answer{Err: o[j].err}
			continue
		}
		_, observe, _ := splitObserve(reqs[i])
		out[i].Result = finish(mains[i], observe, s[i].s, o[j].s)
	}
	return out
}

// sampled is one request's samples, or why there are none.
type sampled struct {
	s   Samples
	err error
}

// member is one request's builtin query in a batched family query.
type member struct {
	req int
	q   plannedQuery
}

// sampleAll reads the samples of reqs, in rounds of requests that share no
// workload: two parts of an `or` for the same workload (a rollout whose
// canary is another's stable, say) would keep only one of their windows.
func (a *Analyzer) sampleAll(ctx context.Context, reqs []Request) []sampled {
	out := make([]sampled, len(reqs))
	for i, req := range reqs {
		out[i].s = newSamples(req)
		if req.Namespace == "" || req.Stable == "" || req.Canary == "" {
			out[i].err = &QueryError{Metric: requestsMetric, Err: errors.New("request needs a namespace and both versions' workloads")}
		}
	}
	for _, round := range rounds(reqs, out) {
		a.sampleRound(ctx, reqs, round, out)
	}
	for i, req := range reqs {
		if out[i].err == nil {
			quantiles(req, &out[i].s)
		}
	}
	return out
}

// rounds groups the requests still without an error so that no round
// holds two requests of the same workload.
func rounds(reqs []Request, out []sampled) [][]int {
	var groups [][]int
	var taken []map[string]bool
	for i, req := range reqs {
		if out[i].err != nil {
			continue
		}
		keys := []string{req.Namespace + "/" + req.Stable, req.Namespace + "/" + req.Canary}
		r := 0
		for ; r < len(groups); r++ {
			if !taken[r][keys[0]] && !taken[r][keys[1]] {
				break
			}
		}
		if r == len(groups) {
			groups, taken = append(groups, nil), append(taken, map[string]bool{})
		}
		groups[r] = append(groups[r], i)
		taken[r][keys[0]], taken[r][keys[1]] = true, true
	}
	return groups
}

// sampleRound sends one query per builtin family for the round's requests
// and each custom query on its own.
func (a *Analyzer) sampleRound(ctx context.Context, reqs []Request, round []int, out []sampled) {
	families := map[queryKind][]member{}
	var customs []member
	for _, i := range round {
		for _, q := range plan(reqs[i], true) {
			switch {
			case q.err != nil:
				out[i].err = q.err
			case q.kind == kindCustom:
				customs = append(customs, member{req: i, q: q})
			default:
				families[q.kind] = append(families[q.kind], member{req: i, q: q})
			}
		}
	}
	for _, kind := range []queryKind{kindRequests, kindErrors, kindLatency} {
		if ms := families[kind]; len(ms) > 0 {
			a.queryFamily(ctx, reqs, ms, out)
		}
	}
	for _, m := range customs {
		if out[m.req].err != nil {
			continue
		}
		v, warnings, err := a.query(ctx, m.q, reqs[m.req].At)
		if err == nil {
			err = read(reqs[m.req], m.q, v, &out[m.req].s)
		}
		out[m.req].err = err
		out[m.req].s.Warnings = append(out[m.req].s.Warnings, warnings...)
	}
}

// queryFamily answers one family's members with one query, evaluated at
// the latest of their ends (each part is pinned to its own).
func (a *Analyzer) queryFamily(ctx context.Context, reqs []Request, ms []member, out []sampled) {
	parts := make([]string, 0, len(ms))
	var at time.Time
	for _, m := range ms {
		if out[m.req].err != nil {
			continue
		}
		parts = append(parts, m.q.promql)
		if t := reqs[m.req].At; t.After(at) {
			at = t
		}
	}
	if len(parts) == 0 {
		return
	}
	joined := plannedQuery{kind: ms[0].q.kind, metric: ms[0].q.metric, promql: joinOr(parts)}
	v, warnings, err := a.query(ctx, joined, at)
	for _, m := range ms {
		if out[m.req].err != nil {
			continue
		}
		if err != nil {
			out[m.req].err = ownQueryError(err, m.q)
			continue
		}
		if rerr := read(reqs[m.req], m.q, v, &out[m.req].s); rerr != nil {
			out[m.req].err = rerr
			continue
		}
		out[m.req].s.Warnings = append(out[m.req].s.Warnings, warnings...)
	}
}

// ownQueryError names the member's own part of a failed family query: the
// whole query can be hundreds of kilobytes, useless in an Event.
func ownQueryError(err error, q plannedQuery) error {
	var qe *QueryError
	if errors.As(err, &qe) {
		cp := *qe
		cp.Metric, cp.Query = q.metric, q.promql
		return &cp
	}
	return &QueryError{Metric: q.metric, Query: q.promql, Err: err}
}

// joinOr joins parts with `or` as a balanced tree: a chain thousands deep
// would make Prometheus merge ever longer vectors at every level.
func joinOr(parts []string) string {
	if len(parts) == 1 {
		return parts[0]
	}
	mid := len(parts) / 2
	return "(" + joinOr(parts[:mid]) + ") or (" + joinOr(parts[mid:]) + ")"
}
