package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/meshcanary/meshcanary/pkg/metrics"
	"math"
	"strings"
	"time"

	"github.com/meshcanary/meshcanary/pkg/policy"
	"github.com/meshcanary/meshcanary/pkg/stages"
	"github.com/meshcanary/meshcanary/pkg/status"
)

// Kind is what happened to a rollout. Its values are the events a policy's
// notify routes name in `on` (policy.Notify*), so a route matches a Message
// by comparing strings.
type Kind string

const (
	KindStarted       Kind = policy.NotifyStarted
	KindStageAdvanced Kind = policy.NotifyStageAdvanced
	KindPromoted      Kind = policy.NotifyPromoted
	KindRolledBack    Kind = policy.NotifyRolledBack
	KindPaused        Kind = policy.NotifyPaused
	KindResumed       Kind = policy.NotifyResumed
	KindStuck         Kind = policy.NotifyStuck
	KindInconclusive  Kind = policy.NotifyInconclusive
	KindInvalid       Kind = policy.NotifyInvalid
	KindAlert         Kind = policy.NotifyAlert
)

// KindForReason maps a Kubernetes Event reason the decision core emits
// (stages.Reason*) to the notification it stands for. Reasons that are
// steps on the way rather than news (AnalysisPassed, Promoting, ...) map to
// nothing: the outcome they lead to is notified instead.
func KindForReason(reason string) (Kind, bool) {
	switch reason {
	case stages.ReasonRolloutStarted, stages.ReasonRolloutRestarted:
		return KindStarted, true
	case stages.ReasonStageStarted:
		return KindStageAdvanced, true
	case stages.ReasonPromoted:
		return KindPromoted, true
	case stages.ReasonRolledBack:
		return KindRolledBack, true
	case stages.ReasonPaused:
		return KindPaused, true
	case stages.ReasonResumed:
		return KindResumed, true
	case stages.ReasonCanaryNotReady, stages.ReasonMetricsUnavailable, stages.ReasonRolloutStuck, stages.ReasonGateFailed:
		return KindStuck, true
	case stages.ReasonRuleAlert, stages.ReasonRulePaused, stages.ReasonRuleRecovered:
		return KindAlert, true
	case stages.ReasonAnalysisInconclusive:
		return KindInconclusive, true
	case stages.ReasonInvalidConfiguration:
		return KindInvalid, true
	}
	return "", false
}

// Message is one notification about one rollout. Channels render it; none
// of its fields is secret, so it may be logged whole.
type Message struct {
	Kind       Kind
	Namespace  string
	Deployment string // the stable Deployment, which names the service
	Revision   string // the canary revision of the rollout
	Images     []string
	// Stage is the stage label, e.g. "2/4" (stages.StageLabel).
	Stage string
	// CanaryWeight is the canary's share of traffic in percent; stable
	// serves the rest.
	CanaryWeight int
	// Reason is the Kubernetes Event reason (stages.Reason*), stable API
	// for filters on the receiving side.
	Reason string
	// Text explains what happened, with the numbers, as the Event message
	// does.
	Text string
	// Checks are the analysis values that led here, when there are any.
	Checks []Check
	// DecidedBy says who or what ended the release (stages.DecidedBy*).
	DecidedBy string
	// Page asks paging channels to open an incident: an automatic rollback
	// or a rule whose action pages.
	Page bool
	// Resolve asks paging channels to close the rollout's incident: the
	// rollout recovered or ended. Page wins when both are set.
	Resolve bool
	// At is when it happened; the Dispatcher fills it when zero.
	At time.Time
}

// Check is one analysis check's values against its bound. Values are in the
// metric's base unit (fractions for shares, seconds for latencies,
// requests per second for rates); nil means no data.
type Check struct {
	Metric    string
	Canary    *float64
	Stable    *float64
	Bound     string // max, min, maxIncrease or maxRatio
	Threshold string // the bound as the policy wrote it, e.g. "1%"
	Verdict   string // Pass, Fail or Inconclusive
}

// ChecksFromStatus converts the published analysis checks
// (status.Analysis.Checks) into a Message's Checks.
func ChecksFromStatus(checks []status.Check) []Check {
	if len(checks) == 0 {
		return nil
	}
	out := make([]Check, 0, len(checks))
	for _, c := range checks {
		out = append(out, Check{
			Metric: c.Metric, Canary: c.Canary, Stable: c.Stable,
			Bound: c.Bound, Threshold: c.Threshold, Verdict: c.Verdict,
		})
	}
	return out
}

// maxDedupKey is PagerDuty's limit on dedup_key.
const maxDedupKey = 255

// DedupKey identifies one rollout (one canary revision of one Deployment)
// towards paging systems, so that every page and its resolution during the
// rollout land on one incident:
// meshcanary/<namespace>/<deployment>/<revision>. Keys longer than
// PagerDuty's 255 characters are shortened with a hash of the whole key,
// so they stay unique and stable.
func DedupKey(namespace, deployment, revision string) string {
	key := "meshcanary/" + namespace + "/" + deployment + "/" + revision
	if len(key) <= maxDedupKey {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	suffix := "~" + hex.EncodeToString(sum[:12])
	return key[:maxDedupKey-len(suffix)] + suffix
}

// DedupKey is the rollout's key; see the function DedupKey.
func (m Message) DedupKey() string {
	return DedupKey(m.Namespace, m.Deployment, m.Revision)
}

// StableWeight is the share of traffic stable serves.
func (m Message) StableWeight() int { return 100 - m.CanaryWeight }

// Automatic reports whether the release ended (or is ending) without a
// person asking: a rollback by analysis, outage or deadline.
func (m Message) Automatic() bool {
	return m.DecidedBy != stages.DecidedByAnnotation
}

// What says in a few words what happened, for titles and summaries.
func (m Message) What() string {
	switch m.Kind {
	case KindStarted:
		return "rollout started"
	case KindStageAdvanced:
		if m.Stage != "" {
			return fmt.Sprintf("advanced to stage %s (%d%% canary)", m.Stage, m.CanaryWeight)
		}
		return fmt.Sprintf("advanced to %d%% canary", m.CanaryWeight)
	case KindPromoted:
		return "promoted"
	case KindRolledBack:
		if m.Automatic() {
			return "rolled back automatically"
		}
		return "rolled back by hand"
	case KindPaused:
		return "paused"
	case KindResumed:
		return "resumed"
	case KindStuck:
		return "rollout stuck"
	case KindInconclusive:
		return "analysis inconclusive"
	case KindInvalid:
		return "configuration invalid"
	case KindAlert:
		return "alert"
	}
	return string(m.Kind)
}

// Title is one line naming the service and what happened.
func (m Message) Title() string {
	return fmt.Sprintf("%s (%s): %s", m.Deployment, m.Namespace, m.What())
}

// Summary is the title followed by the explanation, for systems that show
// one line (PagerDuty).
func (m Message) Summary() string {
	if m.Text == "" {
		return m.Title()
	}
	return m.Title() + ": " + m.Text
}

// formatValue prints a check value in the unit people think in for its
// metric: percentages for shares, durations for latencies. Custom metrics
// follow the spelling of their threshold.
func formatValue(c Check, v *float64) string {
	if v == nil || math.IsNaN(*v) {
		return "no data"
	}
	x := *v
	switch {
	case c.Metric == policy.MetricErrorRate || c.Metric == policy.MetricSuccessRate:
		return metrics.FormatPercent(x)
	case c.Metric == policy.MetricRequestRate:
		return metrics.FormatPlain(x) + "/s"
	case strings.HasPrefix(c.Metric, "latency-p"):
		return metrics.FormatSeconds(x)
	case c.Bound != "maxRatio" && strings.HasSuffix(strings.TrimSpace(c.Threshold), "%"):
		return metrics.FormatPercent(x)
	}
	return metrics.FormatPlain(x)
}
