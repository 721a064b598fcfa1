{{/* Tolerations for the GPU pool taint (camelCase, as in a pod spec). */}}
{{- define "gpu.tolerations" -}}
{{- $taint := .Values.nodePool.taint -}}
{{- $t := dict "key" $taint.key "effect" $taint.effect -}}
{{- if $taint.value -}}
{{- $_ := set $t "operator" "Equal" -}}
{{- $_ := set $t "value" $taint.value -}}
{{- else -}}
{{- $_ := set $t "operator" "Exists" -}}
{{- end -}}
{{- toJson (list $t) -}}
{{- end -}}

{{- define "gpu.devicePluginConfig" -}}
version: v1
flags:
  migStrategy: {{ .Values.devicePlugin.migStrategy }}
{{- if gt (int .Values.devicePlugin.timeSlicing.replicas) 1 }}
sharing:
  timeSlicing:
    renameByDefault: {{ .Values.devicePlugin.timeSlicing.renameByDefault }}
    resources:
      - name: {{ .Values.resourceName }}
        replicas: {{ .Values.devicePlugin.timeSlicing.replicas }}
{{- end }}
{{- end -}}
