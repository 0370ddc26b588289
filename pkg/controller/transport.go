package controller

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
)

// CountRequests wraps a client's transport so that every request it sends
// to the Kubernetes API is counted in KubeRequests under client. It is a
// rest.Config's WrapTransport: counting at the transport sees what client-
// go really sends, retries included, and costs no global registration.
func (m *Metrics) CountRequests(client string) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper {
		return countingTransport{next: next, counter: m.KubeRequests, client: client}
	}
}

type countingTransport struct {
	next    http.RoundTripper
	counter *prometheus.CounterVec
	client  string
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.counter.WithLabelValues(t.client, r.Method).Inc()
	return t.next.RoundTrip(r)
}
