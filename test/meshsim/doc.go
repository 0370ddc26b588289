// Package meshsim is a stand-in for the Istio data plane on machines that have
// no Envoy. It turns live routing state in a Kubernetes API server into the
// request telemetry that meshcanary analyses, so the controller can be tested
// end to end against a real API server and a real Prometheus.
//
// # What is faithful to Istio
//
// Only what meshcanary looks at is modelled, and that is meant to match what
// an Istio 1.x mesh with sidecars would show:
//
//   - Routing follows the VirtualServices and DestinationRules as they are in
//     the informer caches at each generator step (every ~10 ms), so a weight
//     change shows in the traffic within one step of the watch event. A
//     VirtualService applies when one of its spec.hosts names the target
//     host (short names are qualified with the VirtualService's namespace the
//     way Istio does: only names without a dot; "*" and "*.suffix" wildcards
//     match too, an exact host is preferred over a wildcard) and its
//     spec.gateways is empty or includes "mesh". Of spec.http the first route
//     without a match is taken, as a plain request would fall through to it;
//     when every route has a match, the first route is taken. Weights follow
//     Istio's rules: a lone destination without weight gets 100, otherwise a
//     missing weight is 0.
//   - A destination subset selects pods through the DestinationRule for the
//     destination host, intersected with the Service's selector, as Istio
//     builds the subset cluster from the Service's endpoints. Only Ready pods
//     that are not terminating are endpoints, and one is chosen uniformly.
//   - Failures look like Envoy's: a subset with no Ready pod gives 503 with
//     response_flags "UH", and a subset that no DestinationRule defines (or a
//     route whose weights are all zero) gives 503 "NC"; both are reported by
//     the source proxy only, with destination_workload "unknown", because no
//     destination proxy ever sees the request.
//   - Every request that reaches a pod is counted twice in
//     istio_requests_total and istio_request_duration_milliseconds, once with
//     reporter="destination" and once with reporter="source", with Istio's
//     metric names, label names and default histogram buckets.
//   - destination_workload is the pod's controller (the Deployment for a pod
//     of a ReplicaSet, the pod itself when it has no controller);
//     destination_canonical_service and destination_canonical_revision follow
//     Istio's label precedence (service.istio.io/canonical-*, then
//     app.kubernetes.io/*, then app / version, then the workload / "latest").
//
// # What is not
//
//   - No traffic exists: requests are drawn in-process and their latency is
//     only recorded, never waited for. There is no concurrency, so Envoy's
//     least-request balancing, connection pools, outlier detection, circuit
//     breaking, retries, timeouts and fault injection are absent; a pod is
//     chosen uniformly at random.
//   - Only the metric labels listed in the Config documentation are emitted.
//     Istio's other standard labels (source_app, source_version,
//     source_canonical_*, destination_app, destination_service_namespace,
//     destination_principal, connection_security_policy, request_protocol
//     other than "http", grpc_response_status, *_cluster) are absent, as are
//     istio_request_bytes, istio_response_bytes and the TCP metrics.
//   - Both reporters record the same duration; in a real mesh the source sees
//     a little more, the network and its own proxy.
//   - Matches, rewrites, redirects, direct responses, mirroring, delegate
//     VirtualServices and exportTo are ignored; only VirtualServices in the
//     target Service's namespace are considered, and DestinationRules only in
//     the destination's namespace (Istio also looks in the client's and the
//     root namespace). Several DestinationRules for one host are merged by
//     subset name, the oldest first, which is close to Istio's merge.
//   - Destinations in a namespace that no configured Service lives in have no
//     endpoints here (they are not watched), so they give UH.
//   - Without a Service and without subset labels there is nothing to select
//     pods by, so the request gives UH; a real client would fail its DNS
//     lookup instead.
//   - The source is one fictional workload (Config.SourceWorkload) that has
//     no pod.
//
// # Pod behaviour
//
// A pod's annotations decide how it answers, so a bad release is a change of
// the Deployment's pod template:
//
//   - sandbox.meshcanary.io/error-rate: the share of requests answered 500,
//     e.g. "0.05" (default 0).
//   - sandbox.meshcanary.io/latency: the median latency, a Go duration such
//     as "80ms" (default 20ms). Latencies are log-normal around it with
//     sigma 0.6, a long tail like real services have, capped at 60 s.
//
// # Ground truth
//
// Besides Istio's metrics the simulator counts what it did, so a test can
// compare meshcanary's reading of Prometheus with what really happened:
// meshsim_requests_sent_total and meshsim_requests_failed_total with labels
// namespace, service and workload ("unknown" when no pod was reached), and
// the Truth and TruthByService methods.
//
// # Bounds
//
// The generator stops by itself after Config.MaxDuration or
// Config.MaxRequests, whichever comes first, so a forgotten simulator cannot
// run on. It never dials anything but the API server behind the clients it is
// given.
package meshsim
