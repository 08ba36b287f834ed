{{/*
Chart name, truncated to the 63 characters a label value allows.
*/}}
{{- define "irsa-webhook.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: <release>-<chart>, or the release name alone when it already contains the chart name.
Also the Service name, hence part of the serving certificate's DNS names.
*/}}
{{- define "irsa-webhook.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "irsa-webhook.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "irsa-webhook.labels" -}}
helm.sh/chart: {{ include "irsa-webhook.chart" . }}
{{ include "irsa-webhook.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: irsa-webhook
{{- end }}

{{/*
Labels that select the webhook pods (must never change between upgrades).
*/}}
{{- define "irsa-webhook.selectorLabels" -}}
app.kubernetes.io/name: {{ include "irsa-webhook.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "irsa-webhook.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "irsa-webhook.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Name of the (cluster-scoped) MutatingWebhookConfiguration.
*/}}
{{- define "irsa-webhook.webhookConfigName" -}}
{{- default (include "irsa-webhook.fullname" .) .Values.webhook.configName }}
{{- end }}

{{/*
EKS's managed webhook is registered as MutatingWebhookConfiguration pod-identity-webhook, webhook
iam-for-pods.amazonaws.com. Next to it (config.inject=fs-group-only, or a cluster whose version says EKS) the chart
must not take those names: `helm template | kubectl apply` would overwrite the managed registration.
*/}}
{{- define "irsa-webhook.validateManagedNames" -}}
{{- $eks := or (eq .Values.config.inject "fs-group-only") (contains "-eks-" .Capabilities.KubeVersion.Version) }}
{{- if and $eks (eq (include "irsa-webhook.webhookConfigName" .) "pod-identity-webhook") }}
{{- fail "next to EKS's managed webhook (config.inject=fs-group-only or an EKS cluster) the MutatingWebhookConfiguration must not be named pod-identity-webhook, the managed webhook's: set webhook.configName (or fullnameOverride) to another name" }}
{{- end }}
{{- if and $eks (eq .Values.webhook.name "iam-for-pods.amazonaws.com") }}
{{- fail "next to EKS's managed webhook (config.inject=fs-group-only or an EKS cluster) webhook.name must not be iam-for-pods.amazonaws.com, the managed webhook's" }}
{{- end }}
{{- end }}

{{/*
The certificate mode, validated.
*/}}
{{- define "irsa-webhook.certMode" -}}
{{- $mode := .Values.certificates.mode }}
{{- if not (has $mode (list "selfManaged" "certManager" "existingSecret")) }}
{{- fail (printf "certificates.mode must be selfManaged, certManager or existingSecret (got %q)" $mode) }}
{{- end }}
{{- $mode }}
{{- end }}

{{/*
Secret holding the serving certificate: written by the webhook (selfManaged), by cert-manager (certManager), or
brought by the user (existingSecret).
*/}}
{{- define "irsa-webhook.tlsSecretName" -}}
{{- $mode := include "irsa-webhook.certMode" . }}
{{- if eq $mode "selfManaged" }}
{{- default (printf "%s-cert" (include "irsa-webhook.fullname" .)) .Values.certificates.selfManaged.secretName }}
{{- else if eq $mode "certManager" }}
{{- printf "%s-tls" (include "irsa-webhook.fullname" .) }}
{{- else }}
{{- required "certificates.existingSecret.name is required when certificates.mode is existingSecret" .Values.certificates.existingSecret.name }}
{{- end }}
{{- end }}

{{/*
DNS names the API server may use for the Service; the serving certificate must carry them.
*/}}
{{- define "irsa-webhook.dnsNames" -}}
{{- $svc := include "irsa-webhook.fullname" . }}
{{- $ns := .Release.Namespace }}
- {{ $svc }}
- {{ $svc }}.{{ $ns }}
- {{ $svc }}.{{ $ns }}.svc
- {{ $svc }}.{{ $ns }}.svc.cluster.local
{{- end }}

{{- define "irsa-webhook.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Whether container-credentials (EKS Pod Identity) mode is on, and the ConfigMap that carries its identities.
*/}}
{{- define "irsa-webhook.containerCredentialsConfigMap" -}}
{{- $cc := .Values.config.containerCredentials }}
{{- if $cc.enabled }}
{{- default (printf "%s-container-credentials" (include "irsa-webhook.fullname" .)) $cc.existingConfigMap }}
{{- end }}
{{- end }}

{{/*
The PodDisruptionBudget API: policy/v1 where the cluster serves it (Kubernetes >= 1.21), else policy/v1beta1.
Against a cluster Helm knows the served kinds. Offline (`helm template`) it knows none of them, only group/versions,
and `--kube-version` does not change those: then the Kubernetes version decides.
*/}}
{{- define "irsa-webhook.pdbApiVersion" -}}
{{- if .Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget" }}
{{- print "policy/v1" }}
{{- else if .Capabilities.APIVersions.Has "policy/v1beta1/PodDisruptionBudget" }}
{{- print "policy/v1beta1" }}
{{- else if semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version }}
{{- print "policy/v1" }}
{{- else }}
{{- print "policy/v1beta1" }}
{{- end }}
{{- end }}

{{/*
lifecycle.preStop.sleep exists from Kubernetes 1.30 (beta, on by default).
*/}}
{{- define "irsa-webhook.preStopSleep" -}}
{{- if and (gt (int .Values.preStopSleepSeconds) 0) (semverCompare ">=1.30-0" .Capabilities.KubeVersion.Version) }}
{{- print "true" }}
{{- end }}
{{- end }}
