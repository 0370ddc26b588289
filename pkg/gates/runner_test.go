package gates

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestRunOutcomes(t *testing.T) {
	long := "line1\nline2\t" + strings.Repeat("x", 300)
	tests := []struct {
		name    string
		respond func(http.ResponseWriter, *http.Request, int)
		retries int
		timeout time.Duration
		// closed: the server is gone before the run, so nothing answers.
		closed       bool
		wantStatus   Status
		wantAttempts int
		wantHits     int
		// wantMessage is the Message after "POST <shown URL> → ".
		wantMessage string
		// wantPrefix compares only the start of the Message (OS-specific
		// error texts).
		wantPrefix bool
	}{
		{
			name: "a 200 passes on the first attempt", respond: script("ok", 200), retries: 2,
			wantStatus: Passed, wantAttempts: 1, wantHits: 1, wantMessage: "200 after 1 attempt",
		},
		{
			name: "a 500 then a 200 passes on the second attempt", respond: script("", 500, 200), retries: 2,
			wantStatus: Passed, wantAttempts: 2, wantHits: 2, wantMessage: "200 after 2 attempts",
		},
		{
			name: "three 500s with two retries fail after three attempts, quoting the answer", respond: script("upstream not ready", 500), retries: 2,
			wantStatus: Failed, wantAttempts: 3, wantHits: 3, wantMessage: "500 after 3 attempts: upstream not ready",
		},
		{
			name: "a 400 fails at once without a retry", respond: script("bad input", 400), retries: 2,
			wantStatus: Failed, wantAttempts: 1, wantHits: 1, wantMessage: "400 after 1 attempt: bad input",
		},
		{
			name: "a 408 and a 429 are retried like server errors", respond: script("", 408, 429, 204), retries: 2,
			wantStatus: Passed, wantAttempts: 3, wantHits: 3, wantMessage: "204 after 3 attempts",
		},
		{
			name: "a redirect is not followed and fails at once",
			respond: func(w http.ResponseWriter, r *http.Request, _ int) {
				http.Redirect(w, r, "/elsewhere?token="+secretToken, http.StatusFound)
			},
			retries:    2,
			wantStatus: Failed, wantAttempts: 1, wantHits: 1, wantMessage: "302 after 1 attempt: redirects are not followed",
		},
		{
			name: "a hanging server fails by timeout on every attempt", respond: hang(nil), retries: 1, timeout: 200 * time.Millisecond,
			wantStatus: Failed, wantAttempts: 2, wantHits: 2, wantMessage: "timeout after 2 attempts: no answer within 200ms",
		},
		{
			name: "a long answer is quoted up to 200 bytes, on one line", respond: script(long, 503),
			wantStatus: Failed, wantAttempts: 1, wantHits: 1, wantMessage: "503 after 1 attempt: line1 line2 " + strings.Repeat("x", 200-12),
		},
		{
			name: "a secret the answer echoes is redacted", respond: script("token "+secretToken+" refused for "+secretUser+":"+secretPass, 403),
			wantStatus: Failed, wantAttempts: 1, wantHits: 1, wantMessage: "403 after 1 attempt: token [redacted] refused for [redacted]",
		},
		{
			name: "a refused connection is retried and then fails", respond: script("", 200), retries: 1, closed: true,
			wantStatus: Failed, wantAttempts: 2, wantHits: 0, wantMessage: "error after 2 attempts: ", wantPrefix: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newGateServer(t, tt.respond)
			reg := prometheus.NewRegistry()
			done := &doneRecorder{}
			r := NewRunner(fastOptions(done, reg))
			startRunner(t, r)
			req := request("payments/payment-service/smoke/3f2a/1", "payment-service", srv.secretURL("/smoke"))
			req.Retries = tt.retries
			if tt.timeout > 0 {
				req.Timeout = tt.timeout
			}
			if tt.closed {
				srv.Close()
			}

			if got := r.Ensure(req); got.Status != Running {
				t.Fatalf("first Ensure = %+v, want Running", got)
			}
			res := finished(t, r, req, done, 1)

			if res.Status != tt.wantStatus || res.Attempts != tt.wantAttempts {
				t.Errorf("result = %s after %d attempts, want %s after %d", res.Status, res.Attempts, tt.wantStatus, tt.wantAttempts)
			}
			want := "POST " + srv.shownURL("/smoke") + " → " + tt.wantMessage
			if tt.wantPrefix && !strings.HasPrefix(res.Message, want) || !tt.wantPrefix && res.Message != want {
				t.Errorf("message\n got %q\nwant %q", res.Message, want)
			}
			for _, secret := range []string{secretUser, secretPass, secretToken} {
				if strings.Contains(res.Message, secret) {
					t.Errorf("message %q shows the secret %q", res.Message, secret)
				}
			}
			if res.Finished.IsZero() {
				t.Error("Finished is zero for a finished run")
			}
			if got := int(srv.hits.Load()); got != tt.wantHits {
				t.Errorf("server got %d requests, want %d", got, tt.wantHits)
			}
			passed, failed := 0.0, 1.0
			if tt.wantStatus == Passed {
				passed, failed = 1, 0
			}
			if got := metricValue(t, reg, "meshcanary_gate_runs_total", "passed"); got != passed {
				t.Errorf("runs_total{passed} = %v, want %v", got, passed)
			}
			if got := metricValue(t, reg, "meshcanary_gate_runs_total", "failed"); got != failed {
				t.Errorf("runs_total{failed} = %v, want %v", got, failed)
			}
			if got := metricValue(t, reg, "meshcanary_gate_duration_seconds", ""); got != 1 {
				t.Errorf("duration histogram has %v samples, want 1", got)
			}
		})
	}
}

func TestUnusableURLsFailWithoutARequest(t *testing.T) {
	tests := []struct {
		name, url, wantMessage string
	}{
		{"a URL with another scheme fails at once", "ftp://gates.example.com/smoke?token=" + secretToken,
			"POST ftp://gates.example.com/smoke?[redacted] → invalid: the gate URL must be an absolute http or https URL"},
		{"a relative URL fails at once", "/smoke",
			"POST /smoke → invalid: the gate URL must be an absolute http or https URL"},
		{"a URL that does not parse fails at once without being quoted", "http://" + secretUser + ":" + secretPass + "@[::1/smoke",
			"POST [invalid URL] → invalid: the gate URL must be an absolute http or https URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := &doneRecorder{}
			r := NewRunner(fastOptions(done, nil))
			startRunner(t, r)
			req := request("payments/payment-service/smoke/3f2a/1", "payment-service", tt.url)
			r.Ensure(req)
			res := finished(t, r, req, done, 1)
			if res.Status != Failed || res.Attempts != 0 || res.Message != tt.wantMessage {
				t.Errorf("result = %+v, want Failed after 0 attempts with %q", res, tt.wantMessage)
			}
		})
	}
}

func TestEnsureNeverBlocks(t *testing.T) {
	// ensureWithin calls Ensure for each request and fails the test unless
	// all return Running before a deadline.
	ensureWithin := func(t *testing.T, r *Runner, reqs ...Request) {
		t.Helper()
		results := make(chan Result, len(reqs))
		go func() {
			for _, req := range reqs {
				results <- r.Ensure(req)
			}
		}()
		for range reqs {
			select {
			case res := <-results:
				if res.Status != Running {
					t.Errorf("Ensure = %+v, want Running", res)
				}
			case <-time.After(waitDeadline):
				t.Fatal("Ensure blocked")
			}
		}
	}

	t.Run("Ensure returns Running at once while the only worker waits on a hanging server", func(t *testing.T) {
		srv := newGateServer(t, hang(nil))
		r := NewRunner(Options{MaxConcurrent: 1})
		startRunner(t, r)
		first := request("payments/a/smoke/3f2a/1", "a", srv.URL)
		first.Timeout = time.Hour
		ensureWithin(t, r, first)
		eventually(t, "the first run's request", func() bool { return srv.inFlight.Load() == 1 })
		// The same Key, and more runs that can only queue.
		ensureWithin(t, r, first, request("payments/b/smoke/3f2a/1", "b", srv.URL), request("payments/c/smoke/3f2a/1", "c", srv.URL), first)
	})

	t.Run("Ensure returns Running before Run has started", func(t *testing.T) {
		r := NewRunner(Options{})
		ensureWithin(t, r, request("payments/a/smoke/3f2a/1", "a", "http://127.0.0.1:1/smoke"))
	})
}

func TestEnsureTwiceStartsOneRun(t *testing.T) {
	srv := newGateServer(t, script("", 500, 200))
	done := &doneRecorder{}
	r := NewRunner(fastOptions(done, nil))
	startRunner(t, r)
	req := request("payments/payment-service/smoke/3f2a/1", "payment-service", srv.URL+"/smoke")
	req.Retries = 2

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				r.Ensure(req)
			}
		})
	}
	wg.Wait()
	res := finished(t, r, req, done, 1)
	for range 5 {
		if again := r.Ensure(req); again != res {
			t.Errorf("Ensure after the result = %+v, want the same %+v", again, res)
		}
	}

	if res.Status != Passed || res.Attempts != 2 {
		t.Errorf("result = %+v, want Passed after 2 attempts", res)
	}
	if got := srv.hits.Load(); got != 2 {
		t.Errorf("server got %d requests, want 2: one per attempt of one run", got)
	}
}

func TestDoneIsCalledOncePerFinishedRun(t *testing.T) {
	srv := newGateServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusBadRequest)
		}
	})
	done := &doneRecorder{}
	// One worker runs the runs in order, so once the last run's Done is
	// seen every earlier Done call, duplicates included, has been made.
	opts := fastOptions(done, nil)
	opts.MaxConcurrent = 1
	r := NewRunner(opts)
	passing := request("payments/pass/smoke/3f2a/1", "pass", srv.URL+"/pass")
	failing := request("payments/fail/smoke/3f2a/1", "fail", srv.URL+"/fail")
	last := request("payments/last/smoke/3f2a/1", "last", srv.URL+"/pass")
	for range 3 {
		r.Ensure(passing)
		r.Ensure(failing)
	}
	r.Ensure(last)
	startRunner(t, r)
	eventually(t, "Done for the last run", func() bool { return done.count(last.Rollout) == 1 })
	for range 3 {
		r.Ensure(passing)
		r.Ensure(failing)
	}
	r.Forget("payments/last/")
	r.Ensure(last)
	eventually(t, "Done for the last run, run again", func() bool { return done.count(last.Rollout) == 2 })

	want := []string{"payments/pass", "payments/fail", "payments/last", "payments/last"}
	if got := done.get(); !slices.Equal(got, want) {
		t.Errorf("Done calls = %q, want %q", got, want)
	}
}

func TestMaxConcurrentBoundsParallelRequests(t *testing.T) {
	release := make(chan struct{})
	srv := newGateServer(t, func(_ http.ResponseWriter, r *http.Request, _ int) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	done := &doneRecorder{}
	opts := fastOptions(done, nil)
	opts.MaxConcurrent = 2
	r := NewRunner(opts)
	startRunner(t, r)
	var reqs []Request
	for i := range 6 {
		app := fmt.Sprintf("app-%d", i)
		reqs = append(reqs, request("payments/"+app+"/smoke/3f2a/1", app, srv.URL))
		r.Ensure(reqs[i])
	}

	eventually(t, "two requests in flight", func() bool { return srv.inFlight.Load() == 2 })
	for _, req := range reqs {
		if res := r.Ensure(req); res.Status != Running {
			t.Fatalf("%s = %+v while the pool is busy, want Running", req.Key, res)
		}
	}
	for i := range reqs {
		select {
		case release <- struct{}{}: // one request answers; a worker takes the next run
		case <-time.After(waitDeadline):
			t.Fatalf("request %d never arrived", i+1)
		}
	}
	for _, req := range reqs {
		if res := finished(t, r, req, done, 1); res.Status != Passed {
			t.Errorf("%s = %+v, want Passed", req.Key, res)
		}
	}
	if got := srv.maxInFlight.Load(); got != 2 {
		t.Errorf("at most %d requests were in flight at once, want 2", got)
	}
}

func TestForget(t *testing.T) {
	t.Run("Forget drops finished results so that Ensure runs the gate again", func(t *testing.T) {
		srv := newGateServer(t, script("", 200))
		done := &doneRecorder{}
		r := NewRunner(fastOptions(done, nil))
		startRunner(t, r)
		req := request("payments/a/smoke/3f2a/1", "a", srv.URL)
		r.Ensure(req)
		finished(t, r, req, done, 1)

		r.Forget("payments/a/")
		if res := r.Ensure(req); res.Status != Running {
			t.Fatalf("Ensure after Forget = %+v, want Running (a new run)", res)
		}
		finished(t, r, req, done, 2)
		if got := srv.hits.Load(); got != 2 {
			t.Errorf("server got %d requests, want 2", got)
		}
	})

	t.Run("Forget keeps the results of Keys without the prefix", func(t *testing.T) {
		srv := newGateServer(t, script("", 200))
		done := &doneRecorder{}
		r := NewRunner(fastOptions(done, nil))
		startRunner(t, r)
		a := request("payments/a/smoke/3f2a/1", "a", srv.URL)
		ab := request("payments/ab/smoke/3f2a/1", "ab", srv.URL)
		r.Ensure(a)
		r.Ensure(ab)
		finished(t, r, a, done, 1)
		finished(t, r, ab, done, 1)

		r.Forget("payments/a/")
		if res := r.Ensure(ab); res.Status != Passed {
			t.Errorf("Ensure of another rollout's Key after Forget = %+v, want its Passed result", res)
		}
		if res := r.Ensure(a); res.Status != Running {
			t.Errorf("Ensure of a forgotten Key = %+v, want Running", res)
		}
	})

	t.Run("Forget cancels an in-flight run and drops a queued one without reporting them", func(t *testing.T) {
		cancelled := make(chan struct{})
		slow := hang(cancelled)
		srv := newGateServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
			if r.URL.Path == "/hang" {
				slow(w, r, n)
			}
		})
		reg := prometheus.NewRegistry()
		done := &doneRecorder{}
		opts := fastOptions(done, reg)
		opts.MaxConcurrent = 1
		r := NewRunner(opts)
		startRunner(t, r)
		inFlight := request("payments/a/load/3f2a/1", "a", srv.URL+"/hang")
		inFlight.Timeout = time.Hour
		queued := request("payments/a/smoke/3f2a/1", "a", srv.URL+"/queued")
		r.Ensure(inFlight)
		eventually(t, "the in-flight request", func() bool { return srv.inFlight.Load() == 1 })
		r.Ensure(queued)

		r.Forget("payments/a/")
		select {
		case <-cancelled:
		case <-time.After(waitDeadline):
			t.Fatal("the in-flight request was not cancelled")
		}
		// The single worker takes this next: once it is reported, the
		// forgotten runs had every chance to be.
		last := request("payments/z/smoke/3f2a/1", "z", srv.URL+"/ok")
		r.Ensure(last)
		finished(t, r, last, done, 1)

		if got := done.get(); !slices.Equal(got, []string{"payments/z"}) {
			t.Errorf("Done calls = %q, want only the run that was not forgotten", got)
		}
		if got := srv.paths(); !slices.Equal(got, []string{"/hang", "/ok"}) {
			t.Errorf("server got %q, want the forgotten queued run never sent", got)
		}
		if got := metricValue(t, reg, "meshcanary_gate_runs_total", "failed"); got != 0 {
			t.Errorf("runs_total{failed} = %v, want 0: a forgotten run is no failure", got)
		}
	})
}

func TestRunCancelStopsInFlightRuns(t *testing.T) {
	cancelled := make(chan struct{})
	slow := hang(cancelled)
	srv := newGateServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			slow(w, r, n)
		}
	})
	reg := prometheus.NewRegistry()
	done := &doneRecorder{}
	r := NewRunner(fastOptions(done, reg))
	req := request("payments/a/load/3f2a/1", "a", srv.URL)
	req.Timeout = time.Hour

	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		r.Run(ctx)
	}()
	r.Ensure(req)
	eventually(t, "the request in flight", func() bool { return srv.inFlight.Load() == 1 })
	cancel()
	for what, ch := range map[string]chan struct{}{"Run to return": stopped, "the request to be cancelled": cancelled} {
		select {
		case <-ch:
		case <-time.After(waitDeadline):
			t.Fatalf("timed out waiting for %s", what)
		}
	}

	if res := r.Ensure(req); res.Status != Running || res.Attempts != 0 {
		t.Errorf("Ensure after shutdown = %+v, want Running, to run again from its first attempt", res)
	}
	if got := done.get(); len(got) != 0 {
		t.Errorf("Done calls = %q, want none: an interrupted run has no result", got)
	}
	if got := metricValue(t, reg, "meshcanary_gate_runs_total", "failed"); got != 0 {
		t.Errorf("runs_total{failed} = %v, want 0: shutdown is no failure", got)
	}

	// As after regaining leadership: the interrupted run runs again.
	startRunner(t, r)
	res := finished(t, r, req, done, 1)
	if res.Status != Passed || res.Attempts != 1 {
		t.Errorf("result after the next Run = %+v, want Passed after 1 attempt", res)
	}
	if got := srv.hits.Load(); got != 2 {
		t.Errorf("server got %d requests, want 2", got)
	}
}

func TestRetryWaitsForTheBackoffOnTheClock(t *testing.T) {
	srv := newGateServer(t, script("not yet", 503, 200))
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC))
	done := &doneRecorder{}
	r := NewRunner(Options{Clock: clk, Done: done.done})
	startRunner(t, r)
	req := request("payments/a/smoke/3f2a/1", "a", srv.URL+"/smoke")
	req.Retries = 1
	r.Ensure(req)

	eventually(t, "the worker to wait on the clock", clk.HasWaiters)
	want := "POST " + srv.URL + "/smoke → 503 after 1 attempt: not yet; retrying in 1s (attempt 2 of 2)"
	if res := r.Ensure(req); res.Status != Running || res.Attempts != 1 || res.Message != want {
		t.Errorf("while backing off = %+v, want Running after 1 attempt with %q", res, want)
	}
	clk.Step(time.Second)
	res := finished(t, r, req, done, 1)
	if res.Status != Passed || res.Attempts != 2 || !res.Finished.Equal(clk.Now()) {
		t.Errorf("result = %+v, want Passed after 2 attempts, finished at %s", res, clk.Now())
	}
}

func TestBackoffDoublesFromOneSecondUpToThirtySeconds(t *testing.T) {
	r := NewRunner(Options{})
	var got []time.Duration
	for failures := 1; failures <= 7; failures++ {
		got = append(got, r.backoff(failures))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	if !slices.Equal(got, want) {
		t.Errorf("backoffs = %v, want %v", got, want)
	}
}

func TestRedirectsAreNotFollowedWithACallersClient(t *testing.T) {
	srv := newGateServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		if r.URL.Path == "/smoke" {
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
			return
		}
		_, _ = io.WriteString(w, "followed")
	})
	done := &doneRecorder{}
	opts := fastOptions(done, nil)
	opts.HTTPClient = &http.Client{} // follows redirects by itself
	r := NewRunner(opts)
	startRunner(t, r)
	req := request("payments/a/smoke/3f2a/1", "a", srv.URL+"/smoke")
	r.Ensure(req)
	if res := finished(t, r, req, done, 1); res.Status != Failed {
		t.Errorf("result = %+v, want Failed", res)
	}
	if got := srv.paths(); !slices.Equal(got, []string{"/smoke"}) {
		t.Errorf("server got %q, want the redirect not followed", got)
	}
	if opts.HTTPClient.CheckRedirect != nil {
		t.Error("the caller's client was changed")
	}
}

// syncBuffer is a log sink workers can write to concurrently.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestLogLinesNameTheRolloutAndGateButNotTheURL(t *testing.T) {
	srv := newGateServer(t, script("token "+secretToken, 500))
	logs := &syncBuffer{}
	done := &doneRecorder{}
	opts := fastOptions(done, nil)
	opts.Log = zerolog.New(logs).Level(zerolog.DebugLevel)
	r := NewRunner(opts)
	startRunner(t, r)
	req := request("payments/payment-service/smoke/3f2a/1", "payment-service", srv.secretURL("/hooks/acceptance"))
	req.Retries = 1
	r.Ensure(req)
	finished(t, r, req, done, 1)

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d log lines, want 2 (a failed attempt, the result):\n%s", len(lines), logs)
	}
	for _, line := range lines {
		for _, want := range []string{`"rollout":"payments/payment-service"`, `"gate":"smoke"`} {
			if !strings.Contains(line, want) {
				t.Errorf("log line %s does not name %s", line, want)
			}
		}
		for _, secret := range []string{srv.URL, "/hooks/acceptance", secretUser, secretPass, secretToken} {
			if strings.Contains(line, secret) {
				t.Errorf("log line %s shows %q", line, secret)
			}
		}
	}
}
