{{/*
The contract between components lives under `global` (the only values every subchart sees):
global.database / global.externalDatabase for Postgres, global.objectStore for S3.
These templates turn it into hosts, Secret names and env, so every component agrees.
*/}}

{{/* ---- Postgres ---------------------------------------------------------------------- */}}

{{- define "trainyard.database.external" -}}
{{- if .root.Values.global.externalDatabase.host }}true{{ end -}}
{{- end -}}

{{- define "trainyard.database.host" -}}
{{- if include "trainyard.database.external" . -}}
{{- .root.Values.global.externalDatabase.host -}}
{{- else -}}
{{- include "trainyard.serviceHost" (dict "root" .root "component" "postgresql") -}}
{{- end -}}
{{- end -}}

{{- define "trainyard.database.port" -}}
{{- if include "trainyard.database.external" . -}}
{{- .root.Values.global.externalDatabase.port | int -}}
{{- else -}}5432{{- end -}}
{{- end -}}

{{/* In-cluster traffic stays inside the namespace: no TLS. External: the configured mode. */}}
{{- define "trainyard.database.sslMode" -}}
{{- if include "trainyard.database.external" . -}}
{{- .root.Values.global.externalDatabase.sslMode -}}
{{- else -}}disable{{- end -}}
{{- end -}}

{{/* The Secret holding `<user>-password` keys (and `postgres-password` in-cluster). */}}
{{- define "trainyard.database.secretName" -}}
{{- .root.Values.global.database.existingSecret | default (include "trainyard.fullname" (dict "root" .root "component" "postgresql")) -}}
{{- end -}}

{{- define "trainyard.database.passwordKey" -}}
{{- printf "%s-password" .user -}}
{{- end -}}

{{/* One entry of global.database.databases, by name (e.g. "mlflow"); fails if absent. */}}
{{- define "trainyard.database.entry" -}}
{{- $entry := index .root.Values.global.database.databases .database -}}
{{- if not $entry -}}
{{- fail (printf "global.database.databases.%s is required" .database) -}}
{{- end -}}
{{- toYaml $entry -}}
{{- end -}}

{{/*
The CA bundle that verifies an external server's certificate (global.externalDatabase.caSecretName,
for sslMode verify-ca / verify-full): its path in every container that connects, or "" when
there is none. libpq (psycopg, psycopg2) and asyncpg read PGSSLROOTCERT; without it they look
for ~/.postgresql/root.crt and fail ("root certificate file does not exist").
*/}}
{{- define "trainyard.database.caPath" -}}
{{- if and (include "trainyard.database.external" .) .root.Values.global.externalDatabase.caSecretName -}}
/etc/trainyard/database-ca/ca.crt
{{- end -}}
{{- end -}}

{{/* The pod volume with the CA bundle (nothing without one). */}}
{{- define "trainyard.database.caVolume" -}}
{{- if include "trainyard.database.caPath" . }}
- name: database-ca
  secret:
    secretName: {{ .root.Values.global.externalDatabase.caSecretName | quote }}
    defaultMode: 0444
    items:
      - key: {{ .root.Values.global.externalDatabase.caBundleKey | quote }}
        path: ca.crt
{{- end }}
{{- end -}}

{{/* Its mount, in every container that connects to the database (nothing without one). */}}
{{- define "trainyard.database.caMount" -}}
{{- if include "trainyard.database.caPath" . }}
- name: database-ca
  mountPath: /etc/trainyard/database-ca
  readOnly: true
{{- end }}
{{- end -}}

{{/* SQLAlchemy URL (psycopg 3) without a password: libpq reads it from PGPASSWORD. */}}
{{- define "trainyard.database.sqlalchemyUrl" -}}
{{- $entry := include "trainyard.database.entry" . | fromYaml -}}
{{- $url := printf "postgresql+psycopg://%s@%s:%s/%s?sslmode=%s" $entry.user (include "trainyard.database.host" .) (include "trainyard.database.port" .) $entry.name (include "trainyard.database.sslMode" .) -}}
{{- with include "trainyard.database.caPath" . }}{{ $url = printf "%s&sslrootcert=%s" $url . }}{{ end -}}
{{- $url -}}
{{- end -}}

{{/* libpq env for one database entry: PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, PGSSLMODE
(and PGSSLROOTCERT with a CA bundle: mount trainyard.database.caVolume/caMount beside it). */}}
{{- define "trainyard.database.env" -}}
{{- $entry := include "trainyard.database.entry" . | fromYaml -}}
- name: PGHOST
  value: {{ include "trainyard.database.host" . | quote }}
- name: PGPORT
  value: {{ include "trainyard.database.port" . | quote }}
- name: PGDATABASE
  value: {{ $entry.name | quote }}
- name: PGUSER
  value: {{ $entry.user | quote }}
- name: PGSSLMODE
  value: {{ include "trainyard.database.sslMode" . | quote }}
{{- with include "trainyard.database.caPath" . }}
- name: PGSSLROOTCERT
  value: {{ . | quote }}
{{- end }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "trainyard.database.secretName" . | quote }}
      key: {{ include "trainyard.database.passwordKey" (dict "user" $entry.user) | quote }}
{{- end -}}

{{/* ---- Object store ------------------------------------------------------------------ */}}

{{- define "trainyard.objectStore.endpoint" -}}
{{- $store := .root.Values.global.objectStore -}}
{{- if eq $store.provider "minio" -}}
{{- printf "http://%s:9000" (include "trainyard.serviceHost" (dict "root" .root "component" "minio")) -}}
{{- else if eq $store.provider "seaweedfs" -}}
{{- printf "http://%s:8333" (include "trainyard.serviceHost" (dict "root" .root "component" "seaweedfs")) -}}
{{- else if eq $store.provider "external" -}}
{{- $store.external.endpoint -}}
{{- else -}}
{{- fail (printf "global.objectStore.provider must be one of minio, seaweedfs, external (got %q)" $store.provider) -}}
{{- end -}}
{{- end -}}

{{- define "trainyard.objectStore.secretName" -}}
{{- .root.Values.global.objectStore.existingSecret | default (include "trainyard.fullname" (dict "root" .root "component" "objectstore")) -}}
{{- end -}}

{{/* s3://<bucket> for one key of global.objectStore.buckets (e.g. "mlflowArtifacts"). */}}
{{- define "trainyard.objectStore.url" -}}
{{- $bucket := index .root.Values.global.objectStore.buckets .bucket -}}
{{- if not $bucket }}{{ fail (printf "global.objectStore.buckets.%s is required" .bucket) }}{{ end -}}
{{- printf "s3://%s" $bucket -}}
{{- end -}}

{{/* Env for any S3 client (boto3, s3fs, MLflow, Airflow): endpoint, region, credentials. */}}
{{- define "trainyard.objectStore.env" -}}
{{- $store := .root.Values.global.objectStore -}}
{{- $endpoint := include "trainyard.objectStore.endpoint" . -}}
- name: AWS_ENDPOINT_URL_S3
  value: {{ $endpoint | quote }}
- name: MLFLOW_S3_ENDPOINT_URL
  value: {{ $endpoint | quote }}
- name: AWS_DEFAULT_REGION
  value: {{ $store.region | quote }}
- name: AWS_REGION
  value: {{ $store.region | quote }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "trainyard.objectStore.secretName" . | quote }}
      key: {{ $store.accessKeyIdKey | quote }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "trainyard.objectStore.secretName" . | quote }}
      key: {{ $store.secretAccessKeyKey | quote }}
{{- end -}}
