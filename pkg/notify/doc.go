// Package notify tells people about rollouts: Slack messages, PagerDuty
// incidents and a generic JSON webhook, routed per policy.
//
// Contract:
//
//   - Delivery never blocks or changes a rollout. Dispatcher.Notify only
//     queues and returns; a full queue drops the notification and counts
//     it. Sending happens in Run's workers, one per channel, each attempt
//     bounded by Options.Timeout, retried with capped, jittered
//     exponential backoff up to Options.MaxAttempts. A 3xx, or a 4xx other
//     than 408 and 429, is not retried: the same request would be refused
//     again.
//   - Per channel, notifications are sent one at a time in the order they
//     were queued, so a resolve never overtakes its trigger. A slow channel
//     delays only itself.
//   - Endpoints, keys and header values are secrets. They come from a
//     Kubernetes Secret (ParseSecret, LoadFromSecret) and appear in no log
//     line, error text or Event: channels return *SendError, whose text
//     has the URL cut out of net/http's *url.Error and every secret
//     replaced by "[redacted]"; Config and ChannelConfig print redacted.
//     Logs name the channel, namespace, deployment, revision and kind.
//   - Routing: a policy's notify routes (policy.NotifyRoute) send a Kind to
//     the channels whose route lists it or "all"; a channel gets each
//     notification once however many routes match. policy.ValidateNotify
//     checks routes on their own; policy.ValidateNotifyChannels checks
//     them against Dispatcher.Channels(). A route to an unconfigured
//     channel is counted (reason "unconfigured") and logged at send time.
//   - The PagerDuty channel only acts on Message.Page (trigger; severity
//     critical for a rollback, error otherwise) and Message.Resolve
//     (resolve); it skips every other message. Both use one dedup key per
//     rollout, meshcanary/<namespace>/<deployment>/<revision>.
//   - There are no package globals: metrics go to Options.Metrics, and a
//     nil HTTP client means a client of the package's own, never
//     http.DefaultClient.
//
// Wiring (the controller): after emitting a decision's Kubernetes Events,
// map each Event's reason with KindForReason, fill a Message (Page for an
// automatic rollback, Resolve when the rollout is promoted or rolled back
// by hand) and call Dispatcher.Notify with the policy's routes.
//
// The text below is written to be copied into docs/notifications.md.
//
// # Notifications
//
// meshcanary can tell Slack, PagerDuty and any HTTP endpoint about
// rollouts. Channels are defined once, in a Secret the controller reads;
// each policy routes events to channels by name:
//
//	policies:
//	- name: payments
//	  notify:
//	  - on: [rolledBack, stuck]
//	    to: pagerduty
//	  - on: all
//	    to: slack
//
// `on` is a list of events or a single one; `all` matches every event.
// (An unquoted `on:` is read as the YAML 1.1 boolean true; meshcanary
// accepts that spelling too.) Events: started, stageAdvanced, promoted,
// rolledBack, paused, resumed, stuck, inconclusive, invalid, alert. `to`
// names a channel of the Secret.
//
// # The Secret
//
// Keys are <channel>.<setting>. The channel's type is its `type` setting,
// or its name when the name is slack, pagerduty or webhook. Values are
// trimmed of surrounding whitespace. Any other key is an error that names
// the key; values are never printed.
//
//	key                                  required  meaning
//	grafana.baseURL                      no        dashboard URL Slack messages link to
//	<channel>.type                       (a)       slack, pagerduty or webhook
//	<channel>.webhookURL                 slack     Slack incoming webhook URL
//	<channel>.routingKey                 pagerduty Events API v2 integration key
//	<channel>.endpoint                   no        Events API base URL (default https://events.pagerduty.com)
//	<channel>.url                        webhook   URL the JSON body is POSTed to
//	<channel>.header.<Name>              no        extra webhook header, e.g. header.Authorization
//
//	(a) unless the channel is named slack, pagerduty or webhook.
//
// Channel names are lowercase words joined by dashes; "grafana" is
// reserved. Example:
//
//	kubectl -n meshcanary create secret generic meshcanary-notifications \
//	  --from-literal=slack.webhookURL=https://hooks.slack.com/services/... \
//	  --from-literal=pagerduty.routingKey=... \
//	  --from-literal=audit.type=webhook \
//	  --from-literal=audit.url=https://audit.example.com/meshcanary \
//	  --from-literal=audit.header.Authorization='Bearer ...' \
//	  --from-literal=grafana.baseURL=https://grafana.example.com/d/meshcanary-rollout
//
// The Grafana link adds var-namespace, var-deployment, and from/to (Unix
// milliseconds, an hour before the event to 15 minutes after) to the base
// URL's query: pointed at the chart's "rollout detail" dashboard (uid
// meshcanary-rollout), it opens on the rollout.
//
// # Slack
//
// Every event, as a message with the service, namespace, revision,
// images, stage, canary and stable weights, who decided, the explanation,
// each check's canary and stable values against its threshold, and the
// Grafana link.
//
// # PagerDuty
//
// Events API v2. A page (an automatic rollback, severity critical; a rule
// whose action pages, severity error) triggers an incident; the rollout's
// promotion or manual rollback resolves it. One dedup key per rollout:
// meshcanary/<namespace>/<deployment>/<revision> (hashed down to 255
// characters if longer). Other events are not sent to PagerDuty.
//
// # Generic webhook
//
// Every event is POSTed as JSON (Content-Type: application/json,
// User-Agent: meshcanary). Any 2xx is success; 408, 429 and 5xx are
// retried; other 4xx are not. Schema version v1; fields are only added
// within a version:
//
//	{
//	  "version": "v1",                      // schema version
//	  "kind": "rolledBack",                 // the event, as in `on`
//	  "namespace": "payments",
//	  "deployment": "payment-service",      // the stable Deployment
//	  "revision": "7d9f8c6b5",              // the canary revision
//	  "images": ["registry/payment:v2"],    // the canary's images; [] if unknown
//	  "stage": "2/4",                       // current stage of all stages
//	  "weights": {"canary": 10, "stable": 90},
//	  "reason": "RolledBack",               // Kubernetes Event reason
//	  "text": "error-rate 2.1% > 1% ...",  // what happened, with numbers
//	  "checks": [                           // [] when there was no analysis
//	    {"metric": "error-rate",
//	     "canary": 0.021, "stable": 0.003,  // base units; null = no data
//	     "bound": "max", "threshold": "1%", // the bound as written in the policy
//	     "verdict": "Fail"}                 // Pass, Fail or Inconclusive
//	  ],
//	  "decidedBy": "analysis",              // analysis, annotation, metrics-outage, ...; "" while in flight
//	  "page": true,                         // asks for a page
//	  "resolve": false,                     // the rollout recovered or ended
//	  "dedupKey": "meshcanary/payments/payment-service/7d9f8c6b5",
//	  "at": "2026-01-02T15:04:05Z",         // RFC 3339, UTC
//	  "summary": "payment-service (payments): rolled back automatically: ..."
//	}
//
// # Delivery
//
// Notifications are queued per channel (256 by default; more are
// dropped), sent with a 10s timeout, and retried up to 5 attempts with
// exponential backoff from 1s to 30s. They never hold up a rollout.
// Redirects are not followed (they would carry a webhook's headers to
// another host); a redirecting endpoint fails with reason 3xx.
//
// Metrics:
//
//	meshcanary_notifications_sent_total{channel}
//	meshcanary_notifications_failed_total{channel,reason}
//	    reason: 3xx, 4xx, 5xx (the answer's status class), timeout, network
//	    (no answer), invalid (cannot be sent as configured), error (other),
//	    dropped (queue full or shutdown), unconfigured (no such channel)
//	meshcanary_notification_queue_depth{channel}
package notify
