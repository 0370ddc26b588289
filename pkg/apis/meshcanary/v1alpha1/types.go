package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types of a CanaryRelease, after the kstatus conventions
// (Ready, Reconciling/Progressing, Stalled) that tools such as Argo CD and
// Flux read.
const (
	// ConditionReady is True when no release is under way and the last one
	// reached a final phase; stable serves all traffic.
	ConditionReady = "Ready"
	// ConditionProgressing is True while a release walks its stages or is
	// being promoted.
	ConditionProgressing = "Progressing"
	// ConditionStalled is True when the controller cannot go on without a
	// person: an invalid configuration, a missed progress deadline.
	ConditionStalled = "Stalled"
)

// MaxMessageLength bounds status.message (in characters, as the API server
// counts them); the CRD's maxLength repeats it and a test keeps the two
// equal. A longer message fails the whole status write, so writers truncate.
const MaxMessageLength = 1024

// CanaryRelease is the rollout state of one opted-in Deployment: its name
// and namespace are the Deployment's and the Deployment owns it.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:path=canaryreleases,singular=canaryrelease,scope=Namespaced,shortName=mcr,categories=meshcanary
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Weight",type=integer,JSONPath=`.status.weight`,description="Percent of traffic on the canary"
// +kubebuilder:printcolumn:name="Stage",type=string,JSONPath=`.status.stageLabel`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.revision`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
type CanaryRelease struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec CanaryReleaseSpec `json:"spec,omitempty"`
	// +optional
	Status CanaryReleaseStatus `json:"status,omitempty"`
}

// CanaryReleaseSpec holds nothing a user must set: the release is
// configured by the Deployment's annotations and the controller's policies.
type CanaryReleaseSpec struct {
	// Deployment is the name of the stable Deployment in the same
	// namespace; it equals metadata.name and is there for readers and
	// field selectors of tools that do not know the convention.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Deployment string `json:"deployment,omitempty"`
}

// CanaryReleaseStatus is everything the controller needs to resume a
// release after a restart, and what `kubectl get mcr` shows.
type CanaryReleaseStatus struct {
	// ObservedGeneration is the metadata.generation the controller last
	// acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Phase of the current or last release (Idle, Progressing, Paused,
	// Promoting, Succeeded, RolledBack, Invalid).
	// +optional
	Phase string `json:"phase,omitempty"`
	// Stage is the 0-based index of the current stage of the plan; always
	// present once the controller has written status.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Stage int32 `json:"stage"`
	// Stages is the number of stages in the plan.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Stages int32 `json:"stages,omitempty"`
	// StageLabel is the stage for people, e.g. "2/4"; the Stage column.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	StageLabel string `json:"stageLabel,omitempty"`
	// Weight is the percentage of traffic the controller last routed to
	// the canary; always present once the controller has written status.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Weight int32 `json:"weight"`
	// Revision is the canary revision of the current or last release.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Revision string `json:"revision,omitempty"`
	// Message is the last verdict or reason, in words, with numbers.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`

	// State is the controller's durable record of the release (the JSON of
	// pkg/stages.State). Schemaless so that the controller's type can gain
	// fields without a CRD upgrade; the controller validates it on read.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	State *apiextensionsv1.JSON `json:"state,omitempty"`
	// Plan is the stage plan pinned when the release started, so that a
	// policy edit mid-release does not change the release under way.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	Plan *apiextensionsv1.JSON `json:"plan,omitempty"`
	// LastAnalysis is the detail of the last analysis (the JSON of
	// pkg/status.Analysis).
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	LastAnalysis *apiextensionsv1.JSON `json:"lastAnalysis,omitempty"`
	// PreviousStable is the stable Deployment's pod template as it was
	// before the current or last promotion, recorded before stable is
	// changed, so a rollback during promotion can put it back.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	PreviousStable *apiextensionsv1.JSON `json:"previousStable,omitempty"`

	// History lists the finished releases, oldest first.
	// +optional
	// +listType=atomic
	History []ReleaseRecord `json:"history,omitempty"`

	// Conditions are Ready, Progressing and Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// The JSON field names are pkg/status.Release's, so the history kept in
// annotations so far converts with a JSON round trip. The times are
// metav1.Time, which keeps whole seconds: ample for a release history.

// ReleaseRecord is one finished release.
type ReleaseRecord struct {
	// Revision is the canary revision that was released.
	Revision string `json:"revision"`
	// Images lists the canary's containers as name=image.
	// +optional
	Images []string `json:"images,omitempty"`
	// Started is when the release began.
	// +optional
	Started metav1.Time `json:"started"`
	// Finished is when it was promoted or rolled back.
	// +optional
	Finished metav1.Time `json:"finished"`
	// StagesReached is e.g. "3/4".
	// +optional
	StagesReached string `json:"stagesReached"`
	// Result is how the release ended (Succeeded, RolledBack, ...).
	// +optional
	Result string `json:"result"`
	// Reason is why, in words.
	// +optional
	Reason string `json:"reason"`
	// DecidedBy is who or what decided the end.
	// +optional
	DecidedBy string `json:"decidedBy"`
}

// CanaryReleaseList is a list of CanaryReleases.
//
// +kubebuilder:object:root=true
type CanaryReleaseList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CanaryRelease `json:"items"`
}
