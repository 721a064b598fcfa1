{{/* The store this release runs in-cluster: "minio", "seaweedfs" or "" (external). */}}
{{- define "objectstore.provider" -}}
{{- $p := .Values.global.objectStore.provider -}}
{{- if or (eq $p "minio") (eq $p "seaweedfs") }}{{ $p }}{{ end -}}
{{- end -}}

{{- define "objectstore.labels" -}}
{{- $p := include "objectstore.provider" . -}}
{{- include "trainyard.labels" (dict "root" . "name" $p "component" "object-store" "version" (index .Values $p).image.tag) -}}
{{- end -}}

{{- define "objectstore.selectorLabels" -}}
{{- include "trainyard.selectorLabels" (dict "root" . "name" (include "objectstore.provider" .) "component" "object-store") -}}
{{- end -}}

{{- define "objectstore.fullname" -}}
{{- include "trainyard.fullname" (dict "root" . "component" (include "objectstore.provider" .)) -}}
{{- end -}}
