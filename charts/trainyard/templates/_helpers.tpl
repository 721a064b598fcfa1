{{- define "trainyard.platform.fullname" -}}
{{- include "trainyard.fullname" (dict "root" . "component" "platform") -}}
{{- end -}}

{{- define "trainyard.platform.labels" -}}
{{- include "trainyard.labels" (dict "root" .root "name" "trainyard" "component" .component) -}}
{{- end -}}

{{- define "trainyard.toolsImage" -}}
{{- include "trainyard.image" (dict "root" . "image" .Values.toolsImage "defaultTag" .Chart.AppVersion) -}}
{{- end -}}

{{/*
Checks across components that a JSON schema cannot express well; each message names the
values key to fix. Included by platform-configmap.yaml, which every render contains.
*/}}
{{- define "trainyard.validate" -}}
{{- $db := .Values.global.externalDatabase -}}
{{- $store := .Values.global.objectStore -}}
{{- if and (not .Values.postgresql.enabled) (not $db.host) -}}
{{- fail "postgresql.enabled is false but global.externalDatabase.host is empty: set global.externalDatabase.host (and global.database.existingSecret) to use an external Postgres, or enable postgresql" -}}
{{- end -}}
{{- if and .Values.postgresql.enabled $db.host -}}
{{- fail (printf "global.externalDatabase.host is set (%s) while postgresql.enabled is true: set postgresql.enabled=false to use the external database, or clear global.externalDatabase.host" $db.host) -}}
{{- end -}}
{{- if and $db.host (not .Values.global.database.existingSecret) -}}
{{- fail "global.database.existingSecret is required with an external database (global.externalDatabase.host): a Secret with one `<user>-password` key per user in global.database.databases" -}}
{{- end -}}
{{- if not (has $store.provider (list "minio" "seaweedfs" "external")) -}}
{{- fail (printf "global.objectStore.provider must be one of minio, seaweedfs, external (got %q)" $store.provider) -}}
{{- end -}}
{{- if eq $store.provider "external" -}}
{{- if not $store.external.endpoint -}}
{{- fail "global.objectStore.external.endpoint is required when global.objectStore.provider is external" -}}
{{- end -}}
{{- if not $store.existingSecret -}}
{{- fail "global.objectStore.existingSecret is required when global.objectStore.provider is external: a Secret with the S3 access key pair" -}}
{{- end -}}
{{- end -}}
{{- end -}}
