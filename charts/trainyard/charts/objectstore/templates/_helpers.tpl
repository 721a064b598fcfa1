{{/*
The store this release runs in-cluster: "minio", "seaweedfs" or "" (external). The provider
"auto" (the default) is resolved by trainyard.objectStore.provider (charts/common).
*/}}
{{- define "objectstore.provider" -}}
{{- $p := include "trainyard.objectStore.provider" (dict "root" .) -}}
{{- if or (eq $p "minio") (eq $p "seaweedfs") }}{{ $p }}{{ end -}}
{{- end -}}

{{/* The store's image: for MinIO the named one, or the one this release's MinIO runs. */}}
{{- define "objectstore.image" -}}
{{- if eq (include "objectstore.provider" .) "minio" -}}
{{- include "trainyard.objectStore.minioImage" (dict "root" . "minio" .Values.minio) -}}
{{- else -}}
{{- include "trainyard.image" (dict "root" . "image" .Values.seaweedfs.image) -}}
{{- end -}}
{{- end -}}

{{- define "objectstore.labels" -}}
{{- $p := include "objectstore.provider" . -}}
{{- include "trainyard.labels" (dict "root" . "name" $p "component" "object-store" "version" (include "trainyard.imageTag" (include "objectstore.image" .))) -}}
{{- end -}}

{{- define "objectstore.selectorLabels" -}}
{{- include "trainyard.selectorLabels" (dict "root" . "name" (include "objectstore.provider" .) "component" "object-store") -}}
{{- end -}}

{{- define "objectstore.fullname" -}}
{{- include "trainyard.fullname" (dict "root" . "component" (include "objectstore.provider" .)) -}}
{{- end -}}
