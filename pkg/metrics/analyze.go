package metrics

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/meshcanary/meshcanary/pkg/policy"
	"github.com/meshcanary/meshcanary/pkg/stages"
)

// Request is one analysis window of one rollout.
type Request struct {
	Namespace string
	// Stable and Canary are the versions' Deployment names, which Istio
	// reports as destination_workload.
	Stable string
	Canary string
	// Window is what the builtin checks count over: the stage's traffic
	// since its evidence began, so that every verdict of a stage rests on
	// all of it.
	Window time.Duration
	// CustomWindow is what custom metrics are queried over: one interval
	// (or the policy's lookback), as their templates expect. Zero means
	// Window.
	CustomWindow time.Duration
	// CanaryWeight is the canary's weight in percent during the window;
	// see Samples.CanaryWeight.
	CanaryWeight int
	// At is the evaluation timestamp passed to Prometheus, from the caller's
	// clock so that a window is reproducible and testable.
	At          time.Time
	Checks      []policy.Check
	Metrics     map[string]policy.MetricQuery
	MinRequests int
	// Observe names metrics to measure without judging them (rules'
	// conditions); their values come back in Result.Observed.
	Observe []string
}

// planned is every metric the request needs values for: the checks'
// and the observed ones.
func (req Request) planned() []policy.Check {
	all := append([]policy.Check(nil), req.Checks...)
	for _, m := range req.Observe {
		all = append(all, policy.Check{Metric: m})
	}
	return all
}

// Analyzer runs a window's queries against Prometheus and evaluates them.
type Analyzer struct {
	api  promv1.API
	opts Options
}

// Options are an Analyzer's optional hooks.
type Options struct {
	// OnQuery, when set, is told of every query sent, so that the caller
	// can count its load on Prometheus and how long Prometheus takes.
	OnQuery func(QueryStat)
}

// QueryStat is one query sent to Prometheus.
type QueryStat struct {
	// Family is what the query reads: requests, errors or latency (the
	// builtin families, one query answering every rollout of a batch), or
	// custom (a policy's own query, sent per rollout and version).
	Family   string
	Duration time.Duration
	Err      error
}

// NewAnalyzer returns an Analyzer querying api.
func NewAnalyzer(api promv1.API, opts Options) *Analyzer {
	return &Analyzer{api: api, opts: opts}
}

// QueryError is why Analyze could not answer. UserError separates a policy's
// broken custom query, which retrying will not fix and which the user must
// see, from a metrics outage, which the controller tolerates up to
// metricsOutageLimit.
type QueryError struct {
	// Metric is the check's metric, or "requests" for the request count
	// that every window needs.
	Metric string
	// Query is the PromQL sent, or the template when it could not be
	// rendered; empty when there was no query at all (unknown metric).
	Query     string
	UserError bool
	Err       error
}

func (e *QueryError) Error() string {
	var b strings.Builder
	b.WriteString("metric ")
	b.WriteString(e.Metric)
	if e.Query != "" {
		b.WriteString(": query `")
		b.WriteString(e.Query)
		b.WriteString("`")
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *QueryError) Unwrap() error { return e.Err }

// IsUserError reports whether err comes from a user's custom query rather
// than from Prometheus being unavailable.
func IsUserError(err error) bool {
	var qe *QueryError
	return errors.As(err, &qe) && qe.UserError
}

// Analyze queries Prometheus for req's window and evaluates req's checks. An
// error, always a *QueryError, means there is no answer; empty results are
// not errors but missing data, which Evaluate turns into Inconclusive.
// Observed metrics (rules' conditions) are measured over CustomWindow, one
// interval, because a rule asks whether a condition held in each interval.
func (a *Analyzer) Analyze(ctx context.Context, req Request) (Result, error) {
	if req.Namespace == "" || req.Stable == "" || req.Canary == "" {
		return Result{}, &QueryError{
			Metric: requestsMetric,
			Err:    errors.New("request needs a namespace and both versions' workloads"),
		}
	}
	main, observe, separate := splitObserve(req)
	s, err := a.sample(ctx, main)
	if err != nil {
		return Result{}, err
	}
	o := s
	if separate {
		if o, err = a.sample(ctx, observe); err != nil {
			return Result{}, err
		}
	}
	return finish(main, observe, s, o), nil
}

// splitObserve separates a request's observed metrics when they are
// measured over another window than its checks: main judges the checks,
// observe measures the rules' metrics over CustomWindow.
func splitObserve(req Request) (main, observe Request, separate bool) {
	main, observe = req, req
	separate = req.CustomWindow > 0 && req.CustomWindow != req.Window && len(req.Observe) > 0
	if separate {
		main.Observe = nil
		observe.Window, observe.Checks = req.CustomWindow, nil
	}
	return main, observe, separate
}

// finish judges main's samples s and reads observe's metrics from o (s
// again when they share a window).
func finish(main, observe Request, s, o Samples) Result {
	res := Evaluate(s, main.Checks, main.MinRequests)
	if len(observe.Observe) == 0 {
		return res
	}
	res.Observed = map[string]Observed{}
	for _, m := range observe.Observe {
		res.Observed[m] = Observed{
			Canary: value(o.Canary, m, o.Window), Stable: value(o.Stable, m, o.Window),
			CanaryRequests: o.Canary.Requests,
		}
	}
	return res
}

// sample runs the queries req's checks and observed metrics need and
// reads both versions' answers.
func (a *Analyzer) sample(ctx context.Context, req Request) (Samples, error) {
	s := newSamples(req)
	for _, q := range plan(req, false) {
		if q.err != nil {
			return s, q.err
		}
		v, warnings, err := a.query(ctx, q, req.At)
		if err != nil {
			return s, err
		}
		if err := read(req, q, v, &s); err != nil {
			return s, err
		}
		s.Warnings = append(s.Warnings, warnings...)
	}
	quantiles(req, &s)
	return s, nil
}

// newSamples is the empty answer to req: absent request and 5xx series
// mean none were served (see doc.go).
func newSamples(req Request) Samples {
	return Samples{
		Window:       req.Window,
		CanaryWeight: req.CanaryWeight,
		Canary:       Sample{Values: map[string]float64{}},
		Stable:       Sample{Values: map[string]float64{}},
	}
}

// quantiles fills in the latency checks' values from the histograms read.
func quantiles(req Request, s *Samples) {
	for _, smp := range []*Sample{&s.Canary, &s.Stable} {
		h := sortedHistogram(smp.Latency)
		for _, c := range req.planned() {
			if q, ok := latencyQuantile(c.Metric); ok && len(h) > 0 {
				smp.Values[c.Metric] = h.quantile(q)
			}
		}
	}
}

// query sends q's PromQL evaluated at at, and reports it to the observer.
func (a *Analyzer) query(ctx context.Context, q plannedQuery, at time.Time) (model.Value, promv1.Warnings, error) {
	start := time.Now()
	v, warnings, _, err := a.api.Query(ctx, q.promql, at)
	if a.opts.OnQuery != nil {
		a.opts.OnQuery(QueryStat{Family: q.kind.family(), Duration: time.Since(start), Err: err})
	}
	if err != nil {
		return nil, nil, &QueryError{
			Metric:    q.metric,
			Query:     q.promql,
			UserError: q.kind == kindCustom && isQueryFault(err),
			Err:       err,
		}
	}
	return v, warnings, nil
}

// isQueryFault reports whether Prometheus rejected the query itself: bad_data
// is a parse or type error and execution an error evaluating it (e.g.
// many-to-many matching); storage failures come back as server errors.
func isQueryFault(err error) bool {
	var pe *promv1.Error
	return errors.As(err, &pe) && (pe.Type == promv1.ErrBadData || pe.Type == promv1.ErrExec)
}

// read stores the answer v to q in s.
func read(req Request, q plannedQuery, v model.Value, s *Samples) error {
	if q.kind == kindCustom {
		x, err := single(v)
		if err != nil {
			return &QueryError{Metric: q.metric, Query: q.promql, UserError: true, Err: err}
		}
		target := &s.Stable
		if q.canary {
			target = &s.Canary
		}
		target.Values[q.metric] = x
		return nil
	}
	vec, ok := v.(model.Vector)
	if !ok {
		// Our own query answered with another type: Prometheus or a proxy
		// in front of it misbehaves, which is not the user's doing.
		return &QueryError{Metric: q.metric, Query: q.promql, Err: fmt.Errorf("got a %s, want a vector", valueType(v))}
	}
	for _, smp := range vec {
		if string(smp.Metric[namespaceLabel]) != req.Namespace {
			continue
		}
		w := string(smp.Metric[workloadLabel])
		x := float64(smp.Value)
		for _, t := range []struct {
			name string
			s    *Sample
		}{{req.Stable, &s.Stable}, {req.Canary, &s.Canary}} {
			if w != t.name {
				continue
			}
			switch q.kind {
			case kindRequests:
				t.s.Requests = x
			case kindErrors:
				t.s.Errors = x
			case kindLatency:
				le, err := strconv.ParseFloat(string(smp.Metric["le"]), 64)
				if err != nil {
					return &QueryError{Metric: q.metric, Query: q.promql, Err: fmt.Errorf("bucket bound %q: %w", smp.Metric["le"], err)}
				}
				// Istio reports milliseconds; checks think in seconds.
				t.s.Latency = append(t.s.Latency, Bucket{UpperBound: le / 1000, Count: x})
			}
		}
	}
	return nil
}

// single is the one number a custom query must answer with; NaN when it
// answers with nothing.
func single(v model.Value) (float64, error) {
	switch v := v.(type) {
	case *model.Scalar:
		return float64(v.Value), nil
	case model.Vector:
		switch len(v) {
		case 0:
			return math.NaN(), nil
		case 1:
			return float64(v[0].Value), nil
		}
		return 0, fmt.Errorf("returned %d series, want one: aggregate it (e.g. sum) to a single value", len(v))
	}
	return 0, fmt.Errorf("returned a %s, want a scalar or a single-element vector", valueType(v))
}

func valueType(v model.Value) string {
	if v == nil {
		return "nothing"
	}
	return v.Type().String()
}

// Analysis is res as the decision core takes it.
func (r Result) Analysis(at time.Time) stages.Analysis {
	v := stages.Inconclusive
	switch r.Verdict {
	case VerdictPass:
		v = stages.Pass
	case VerdictFail:
		v = stages.Fail
	}
	return stages.Analysis{Verdict: v, Message: r.Message, At: at, AwaitingEvidence: r.AwaitingEvidence, Confident: r.Confident}
}
