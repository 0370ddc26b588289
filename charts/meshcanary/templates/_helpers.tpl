{{/* Names. */}}
{{- define "meshcanary.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "meshcanary.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "meshcanary.serviceAccountName" -}}
{{- default (include "meshcanary.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* The metrics Service; prometheus-operator names the scrape job after it. */}}
{{- define "meshcanary.metricsServiceName" -}}
{{- printf "%s-metrics" (include "meshcanary.fullname" . | trunc 55 | trimSuffix "-") -}}
{{- end -}}

{{- define "meshcanary.policiesConfigMapName" -}}
{{- printf "%s-policies" (include "meshcanary.fullname" . | trunc 54 | trimSuffix "-") -}}
{{- end -}}

{{/* Labels. */}}
{{- define "meshcanary.selectorLabels" -}}
app.kubernetes.io/name: {{ include "meshcanary.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "meshcanary.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "meshcanary.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: meshcanary
{{- end -}}

{{- define "meshcanary.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
Label matchers for the alerts. The controller's own series (up,
meshcanary_leader, workqueue_*) carry the target's job and namespace; the
rollout series carry the application's namespace (honorLabels), so only the
job tells them apart from another meshcanary's.
*/}}
{{- define "meshcanary.controllerSelector" -}}
{{- if .Values.prometheusRule.controllerSelector -}}
{{- .Values.prometheusRule.controllerSelector -}}
{{- else -}}
job="{{ include "meshcanary.metricsServiceName" . }}",namespace="{{ .Release.Namespace }}"
{{- end -}}
{{- end -}}

{{- define "meshcanary.rolloutSelector" -}}
{{- if .Values.prometheusRule.rolloutSelector -}}
{{- .Values.prometheusRule.rolloutSelector -}}
{{- else -}}
job="{{ include "meshcanary.metricsServiceName" . }}"
{{- end -}}
{{- end -}}

{{/*
meshcanary.events: how often a counter went up within a window, as PromQL.
The controller creates a counter series at its first increment, so the
series of a Deployment's first rollback is born at 1, and increase() alone,
which needs two samples, would never see that rollback. The second half
counts series born inside the window by their whole value.
Call with (list "<selector of a counter>" "<window>").
*/}}
{{- define "meshcanary.events" -}}
{{- $m := index . 0 -}}
{{- $w := index . 1 -}}
(increase({{ $m }}[{{ $w }}]) and {{ $m }} offset {{ $w }}) or ({{ $m }} unless {{ $m }} offset {{ $w }})
{{- end -}}
