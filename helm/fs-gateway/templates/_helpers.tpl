{{/* Names, labels and the checks every render runs. */}}

{{- define "fs-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "fs-gateway.fullname" -}}
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

{{- define "fs-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fs-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "fs-gateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "fs-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: gateway
app.kubernetes.io/part-of: flexispooler
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "fs-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "fs-gateway.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "fs-gateway.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Where each piece comes from: the existing object named in the values, or the chart's. */}}
{{- define "fs-gateway.tlsSecret" -}}
{{- default (printf "%s-tls" (include "fs-gateway.fullname" .)) .Values.tls.existingSecret -}}
{{- end -}}

{{- define "fs-gateway.jwksConfigMap" -}}
{{- default (printf "%s-jwks" (include "fs-gateway.fullname" .)) .Values.jwks.existingConfigMap -}}
{{- end -}}

{{- define "fs-gateway.secretsName" -}}
{{- default (printf "%s-secrets" (include "fs-gateway.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "fs-gateway.clientCAConfigMap" -}}
{{- default (printf "%s-client-ca" (include "fs-gateway.fullname" .)) .Values.clientCA.existingConfigMap -}}
{{- end -}}

{{- define "fs-gateway.serverTLSSecret" -}}
{{- default (printf "%s-server-tls" (include "fs-gateway.fullname" .)) .Values.serverTLS.existingSecret -}}
{{- end -}}

{{/* "true" when the optional secret is there, else empty. */}}
{{- define "fs-gateway.hasRouteKeyOld" -}}
{{- if .Values.secrets.existingSecret -}}
{{- if .Values.secrets.existingSecretHas.routeKeyOld }}true{{ end -}}
{{- else if .Values.secrets.routeKeyOld }}true{{ end -}}
{{- end -}}

{{- define "fs-gateway.hasSentinelPassword" -}}
{{- if .Values.secrets.existingSecret -}}
{{- if .Values.secrets.existingSecretHas.sentinelPassword }}true{{ end -}}
{{- else if .Values.secrets.sentinelPassword }}true{{ end -}}
{{- end -}}

{{- define "fs-gateway.hasRedisPassword" -}}
{{- if .Values.secrets.existingSecret -}}
{{- if .Values.secrets.existingSecretHas.redisPassword }}true{{ end -}}
{{- else if .Values.secrets.redisPassword }}true{{ end -}}
{{- end -}}

{{- define "fs-gateway.clientCerts" -}}
{{- default "off" .Values.config.client_certificates -}}
{{- end -}}

{{/*
One value of gateway.conf, double-quoted with \" and \\ (the file's only escapes). Helm reads
numbers as floats: whole ones are printed as integers, not as 1e+06.
*/}}
{{- define "fs-gateway.confValue" -}}
{{- $v := . -}}
{{- if kindIs "float64" $v -}}{{- $v = int64 $v -}}{{- end -}}
"{{ toString $v | replace "\\" "\\\\" | replace "\"" "\\\"" }}"
{{- end -}}

{{/*
Every render checks what the schema cannot: required text, the pieces each setting needs, and
that the kubelet waits longer than the gateway's drain before it kills the container.
*/}}
{{- define "fs-gateway.validate" -}}
{{- $_ := required "config.token_issuer is required" .Values.config.token_issuer -}}
{{- $_ = required "config.token_audience is required" .Values.config.token_audience -}}
{{- if not (or .Values.config.redis_host .Values.config.redis_sentinels) -}}
{{- fail "config.redis_host (an IP literal) or config.redis_sentinels is required" -}}
{{- end -}}
{{- if not (or .Values.tls.existingSecret (and .Values.tls.cert .Values.tls.key)) -}}
{{- fail "tls: give existingSecret, or cert and key" -}}
{{- end -}}
{{- if not (or .Values.jwks.existingConfigMap .Values.jwks.json) -}}
{{- fail "jwks: give existingConfigMap or json" -}}
{{- end -}}
{{- if not (or .Values.secrets.existingSecret (and .Values.secrets.routeKey .Values.secrets.serverSecret)) -}}
{{- fail "secrets: give existingSecret, or routeKey and serverSecret" -}}
{{- end -}}
{{- if and (ne (include "fs-gateway.clientCerts" .) "off") (not (or .Values.clientCA.existingConfigMap .Values.clientCA.pem)) -}}
{{- fail "config.client_certificates optional or required needs clientCA.existingConfigMap or clientCA.pem" -}}
{{- end -}}
{{- if and .Values.serverTLS.enabled (not .Values.serverTLS.existingSecret) (not .Values.serverTLS.ca) -}}
{{- fail "serverTLS.enabled needs serverTLS.existingSecret or serverTLS.ca" -}}
{{- end -}}
{{- if and .Values.serverTLS.enabled .Values.serverTLS.clientCertificate (not .Values.serverTLS.existingSecret) (not (and .Values.serverTLS.cert .Values.serverTLS.key)) -}}
{{- fail "serverTLS.clientCertificate needs serverTLS.existingSecret, or serverTLS.cert and serverTLS.key" -}}
{{- end -}}
{{- $stop := add (int .Values.preStop.sleepSeconds) (int .Values.drainGraceSeconds) -}}
{{- if le (int .Values.terminationGracePeriodSeconds) $stop -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be longer than preStop.sleepSeconds + drainGraceSeconds (%d)" (int .Values.terminationGracePeriodSeconds) $stop) -}}
{{- end -}}
{{- if .Values.networkPolicy.enabled -}}
{{- range $peer := list "redis" "servers" -}}
{{- $p := index $.Values.networkPolicy $peer -}}
{{- if not (or $p.cidrs $p.podSelector $p.namespaceSelector) -}}
{{- fail (printf "networkPolicy.%s: give cidrs or a podSelector/namespaceSelector (or disable networkPolicy)" $peer) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
NetworkPolicy peers: an ipBlock per CIDR, and one peer of the pod and namespace selectors when
either is given (an empty podSelector beside a namespaceSelector: every pod of those namespaces).
*/}}
{{- define "fs-gateway.peers" -}}
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
