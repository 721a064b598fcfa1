
{{- define "postgresql.fullname" -}}
{{- include "trainyard.fullname" (dict "root" . "component" "postgresql") -}}
{{- end -}}

{{- define "postgresql.labels" -}}
{{- include "trainyard.labels" (dict "root" . "name" "postgresql" "component" "database" "version" .Values.image.tag) -}}
{{- end -}}

{{- define "postgresql.selectorLabels" -}}
{{- include "trainyard.selectorLabels" (dict "root" . "name" "postgresql" "component" "database") -}}
{{- end -}}

{{/* Distinct database users, sorted: one `<user>-password` key each. */}}
{{- define "postgresql.users" -}}
{{- $users := list -}}
{{- range $key := keys .Values.global.database.databases | sortAlpha -}}
{{- $users = append $users (index $.Values.global.database.databases $key).user -}}
{{- end -}}
{{- $users | uniq | sortAlpha | toJson -}}
{{- end -}}

{{/* `<database> <user>` lines, sorted by key: what ensure-databases.sh creates. */}}
{{- define "postgresql.databaseLines" -}}
{{- range $key := keys .Values.global.database.databases | sortAlpha }}
{{- $db := index $.Values.global.database.databases $key }}
ensure_database {{ $db.name | quote }} {{ $db.user | quote }}
{{- end }}
{{- end -}}
