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

{{/*
The image of the MinIO this release already runs: the "minio" container of the chart's MinIO
StatefulSet (<release>-minio, created by this release: Helm's release-name annotation), as
`lookup` reads it from the cluster; "" when there is none. Renders without a cluster (helm
template, --dry-run, Argo CD) read nothing, so there it is always "".
*/}}
{{- define "trainyard.objectStore.runningMinioImage" -}}
{{- $root := .root -}}
{{- /* One lookup per chart render, not one per include: the answer is kept in the values
  the chart's templates share (a render-time key; values are validated before rendering). */ -}}
{{- $memo := $root.Values.global.objectStore -}}
{{- if not (hasKey $memo "_runningMinioImage") -}}
{{- $name := include "trainyard.fullname" (dict "root" $root "component" "minio" "max" 52) -}}
{{- $sts := (lookup "apps/v1" "StatefulSet" $root.Release.Namespace $name) | default (dict) -}}
{{- $image := "" -}}
{{- if eq (dig "metadata" "annotations" "meta.helm.sh/release-name" "" $sts) $root.Release.Name -}}
{{- $containers := dig "spec" "template" "spec" "containers" (list) $sts -}}
{{- range $containers -}}
{{- if and (not $image) (eq .name "minio") }}{{ $image = .image }}{{ end -}}
{{- end -}}
{{- if and (not $image) $containers }}{{ $image = (first $containers).image }}{{ end -}}
{{- end -}}
{{- $_ := set $memo "_runningMinioImage" $image -}}
{{- end -}}
{{- index $memo "_runningMinioImage" -}}
{{- end -}}

{{/*
The store this release uses: global.objectStore.provider when it names one (an explicit choice
always wins); for "auto" (the default), minio when this release already runs the chart's MinIO
StatefulSet (an install from chart 0.3.x or earlier, whose default was MinIO: its store and data
stay), else seaweedfs (every new install).
*/}}
{{- define "trainyard.objectStore.provider" -}}
{{- $provider := .root.Values.global.objectStore.provider | default "auto" -}}
{{- if has $provider (list "minio" "seaweedfs" "external") -}}
{{- $provider -}}
{{- else if ne $provider "auto" -}}
{{- fail (printf "global.objectStore.provider must be one of auto, seaweedfs, minio, external (got %q)" $provider) -}}
{{- else if include "trainyard.objectStore.runningMinioImage" . -}}
minio
{{- else -}}
seaweedfs
{{- end -}}
{{- end -}}

{{/*
The MinIO image (`minio` is the objectstore chart's minio block): objectstore.minio.image when
it names a tag or digest; else the image this release's MinIO runs (kept on upgrade); else
refused: the community edition publishes no images any more, so there is no default to fall
back on.
*/}}
{{- define "trainyard.objectStore.minioImage" -}}
{{- $image := .minio.image -}}
{{- if or $image.tag $image.digest -}}
{{- include "trainyard.image" (dict "root" .root "image" $image) -}}
{{- else -}}
{{- $running := include "trainyard.objectStore.runningMinioImage" (dict "root" .root) -}}
{{- if not $running -}}
{{- fail "objectstore.minio.image.tag (or .digest) is required with global.objectStore.provider=minio: MinIO's community edition publishes no images since October 2025, so name a maintained MinIO build or AIStor image (objectstore.minio.image.registry, .repository, .tag), or use the default provider (SeaweedFS)" -}}
{{- end -}}
{{- $running -}}
{{- end -}}
{{- end -}}

{{/* The tag of an image reference ("" when it has none): repo:tag@digest -> tag. */}}
{{- define "trainyard.imageTag" -}}
{{- $name := splitList "@" . | first -}}
{{- $last := splitList "/" $name | last -}}
{{- if contains ":" $last }}{{ splitList ":" $last | last }}{{ end -}}
{{- end -}}

{{/*
"true" when a MinIO image reference has a RELEASE.<timestamp> tag older than
RELEASE.2025-10-15T17-29-55Z, the security release of MinIO's October 2025 advisory: every
earlier release carries the vulnerability (tags compare as their timestamps).
*/}}
{{- define "trainyard.objectStore.minioAdvisory" -}}
{{- $release := regexFind "^RELEASE\\.[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}-[0-9]{2}-[0-9]{2}Z" (include "trainyard.imageTag" .) -}}
{{- if and $release (lt $release "RELEASE.2025-10-15T17-29-55Z") }}true{{ end -}}
{{- end -}}

{{- define "trainyard.objectStore.endpoint" -}}
{{- $store := .root.Values.global.objectStore -}}
{{- $provider := include "trainyard.objectStore.provider" . -}}
{{- if eq $provider "minio" -}}
{{- printf "http://%s:9000" (include "trainyard.serviceHost" (dict "root" .root "component" "minio")) -}}
{{- else if eq $provider "seaweedfs" -}}
{{- printf "http://%s:8333" (include "trainyard.serviceHost" (dict "root" .root "component" "seaweedfs")) -}}
{{- else -}}
{{- $store.external.endpoint -}}
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
