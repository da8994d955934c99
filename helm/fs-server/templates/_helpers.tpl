{{/* Names, labels and the checks every render runs. */}}

{{- define "fs-server.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "fs-server.fullname" -}}
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

{{- define "fs-server.headless" -}}
{{- printf "%s-headless" (include "fs-server.fullname" .) -}}
{{- end -}}

{{- define "fs-server.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fs-server.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "fs-server.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "fs-server.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: server
app.kubernetes.io/part-of: flexispooler
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "fs-server.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "fs-server.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "fs-server.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "fs-server.secretsName" -}}
{{- default (printf "%s-secrets" (include "fs-server.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "fs-server.tlsSecret" -}}
{{- default (printf "%s-tls" (include "fs-server.fullname" .)) .Values.tls.existingSecret -}}
{{- end -}}

{{/* "true" when the optional secret is there, else empty. */}}
{{- define "fs-server.hasReleaseSecret" -}}
{{- if .Values.secrets.existingSecret -}}
{{- if .Values.secrets.existingSecretHas.releaseSecret }}true{{ end -}}
{{- else if .Values.secrets.releaseSecret }}true{{ end -}}
{{- end -}}

{{- define "fs-server.hasSentinelPassword" -}}
{{- if .Values.secrets.existingSecret -}}
{{- if .Values.secrets.existingSecretHas.sentinelPassword }}true{{ end -}}
{{- else if .Values.secrets.sentinelPassword }}true{{ end -}}
{{- end -}}

{{- define "fs-server.hasRedisPassword" -}}
{{- if .Values.secrets.existingSecret -}}
{{- if .Values.secrets.existingSecretHas.redisPassword }}true{{ end -}}
{{- else if .Values.secrets.redisPassword }}true{{ end -}}
{{- end -}}

{{- define "fs-server.scheme" -}}
{{- if .Values.tls.enabled }}https{{ else }}http{{ end -}}
{{- end -}}

{{/*
One value of server.conf, double-quoted with \" and \\ (the file's only escapes). Helm reads
numbers as floats: whole ones are printed as integers, not as 1e+06.
*/}}
{{- define "fs-server.confValue" -}}
{{- $v := . -}}
{{- if kindIs "float64" $v -}}{{- $v = int64 $v -}}{{- end -}}
"{{ toString $v | replace "\\" "\\\\" | replace "\"" "\\\"" }}"
{{- end -}}

{{/*
NetworkPolicy peers: an ipBlock per CIDR, and one peer of the pod and namespace selectors when
either is given (an empty podSelector beside a namespaceSelector: every pod of those namespaces).
*/}}
{{- define "fs-server.peers" -}}
{{- range .cidrs }}
- ipBlock:
    cidr: {{ . }}
{{- end }}
{{- if or .podSelector .namespaceSelector }}
- podSelector:
    {{- if .podSelector }}
    {{- toYaml .podSelector | nindent 4 }}
    {{- else }} {}
    {{- end }}
  {{- with .namespaceSelector }}
  namespaceSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
Every render checks what the schema cannot: required text, the pieces each setting needs, the
length of server ids, and that the kubelet waits longer than the drain before it kills.
*/}}
{{- define "fs-server.validate" -}}
{{- if not (or .Values.config.redis_host .Values.config.redis_sentinels) -}}
{{- fail "config.redis_host or config.redis_sentinels is required" -}}
{{- end -}}
{{- if gt (len (include "fs-server.fullname" .)) 28 -}}
{{- fail (printf "the name %q is longer than 28 characters: pod names are server ids (at most 32); set fullnameOverride" (include "fs-server.fullname" .)) -}}
{{- end -}}
{{- if not (or .Values.secrets.existingSecret .Values.secrets.gatewaySecret) -}}
{{- fail "secrets: give existingSecret or gatewaySecret" -}}
{{- end -}}
{{- if .Values.tls.enabled -}}
{{- if ne .Values.advertise "dns" -}}
{{- fail "tls.enabled needs advertise: dns (a certificate names hosts, not pod addresses)" -}}
{{- end -}}
{{- if not (or .Values.tls.existingSecret (and .Values.tls.cert .Values.tls.key)) -}}
{{- fail "tls: give existingSecret, or cert and key" -}}
{{- end -}}
{{- if and .Values.tls.requireClientCertificates (not .Values.tls.existingSecret) (not .Values.tls.clientCA) -}}
{{- fail "tls.requireClientCertificates needs tls.existingSecret (ca.crt) or tls.clientCA" -}}
{{- end -}}
{{- end -}}
{{- $stop := add (int .Values.preStop.sleepSeconds) (int .Values.drainGraceSeconds) -}}
{{- if le (int .Values.terminationGracePeriodSeconds) $stop -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be longer than preStop.sleepSeconds + drainGraceSeconds (%d)" (int .Values.terminationGracePeriodSeconds) $stop) -}}
{{- end -}}
{{- if .Values.networkPolicy.enabled -}}
{{- range $peer := list "gateways" "redis" -}}
{{- $p := index $.Values.networkPolicy $peer -}}
{{- if not (or $p.cidrs $p.podSelector $p.namespaceSelector) -}}
{{- fail (printf "networkPolicy.%s: give cidrs or a podSelector/namespaceSelector (or disable networkPolicy)" $peer) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
