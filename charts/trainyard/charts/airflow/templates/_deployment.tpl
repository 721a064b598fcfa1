{{- /*
What the Deployments of the four long-running components (api-server.yaml, scheduler.yaml,
dag-processor.yaml, triggerer.yaml) share. Each component file writes its own Deployment and
states only what is its own: arguments, ports, probes, extra mounts and init containers.
Helpers named airflow.deployment.* and airflow.pod.* take the component context
(dict "root" $ "component" NAME "values" .Values.<component>); the others take the chart root.
*/}}

{{/* Deployment metadata, with the checkov findings accepted for every component. */}}
{{- define "airflow.deployment.metadata" -}}
name: {{ include "airflow.componentName" . }}
namespace: {{ .root.Release.Namespace }}
labels:
  {{- include "airflow.labels" . | nindent 2 }}
annotations:
  checkov.io/skip1: CKV_K8S_43=Images are pinned by tag; set image.digest to pin by digest as well.
  checkov.io/skip2: CKV_K8S_15=Pinned, immutable tags; IfNotPresent lets kind/air-gapped nodes use preloaded images (image.pullPolicy overrides).
  checkov.io/skip3: CKV_K8S_35=Airflow, libpq and boto3 read their secrets from environment variables; they come from secretKeyRef, never literals.
{{- end -}}

{{/*
Pod metadata. The config checksum rolls every component when the Airflow config changes;
"annotations" in the context adds the component's own.
*/}}
{{- define "airflow.pod.metadata" -}}
labels:
  {{- include "airflow.labels" . | nindent 2 }}
annotations:
  checksum/config: {{ include "airflow.configEnv" .root | sha256sum }}
  {{- with .annotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* Pod-level settings: identity, security context, placement. */}}
{{- define "airflow.pod.spec" -}}
serviceAccountName: {{ include "airflow.componentName" . }}
# Components that call the Kubernetes API mount a projected token explicitly (airflow.tokenMount).
automountServiceAccountToken: false
{{- include "trainyard.imagePullSecrets" . }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* What every Airflow container shares: the image, the config and the security context. */}}
{{- define "airflow.container.common" -}}
image: {{ include "airflow.image" . | quote }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
envFrom:
  - configMapRef:
      name: {{ include "trainyard.fullname" (dict "root" . "component" "airflow-config") }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
{{- end -}}

{{/* Mounts of every Airflow container, and the pod volumes behind them. */}}
{{- define "airflow.container.mounts" -}}
{{ include "airflow.commonMounts" . }}
{{- include "trainyard.database.caMount" (dict "root" .) }}
{{- end -}}

{{- define "airflow.pod.volumes" -}}
{{ include "airflow.commonVolumes" . }}
{{- include "trainyard.database.caVolume" (dict "root" .) }}
{{- end -}}

{{/*
The start of every database init container. On a fresh install Postgres may still be starting:
wait for it (`db check --retry`) instead of crash-looping into the kubelet's back-off, which
delays the whole release.
*/}}
{{- define "airflow.db.waitForDatabase" -}}
airflow db check --retry 100 --retry-delay 3
{{- end -}}

{{/*
The init container of every component but the scheduler: wait until the scheduler's init
container has migrated the database (scheduler.yaml says why migrations run there).
*/}}
{{- define "airflow.db.waitForMigrations" -}}
- name: wait-for-migrations
  {{- include "airflow.container.common" . | nindent 2 }}
  command: ["/bin/sh", "-c"]
  args: ["{{ include "airflow.db.waitForDatabase" . }} && exec airflow db check-migrations --migration-wait-timeout {{ .Values.migrations.timeoutSeconds }}"]
  env:
    {{- include "airflow.secretEnv" (dict "root" . "full" true) | nindent 4 }}
  resources:
    {{- toYaml .Values.migrations.resources | nindent 4 }}
  volumeMounts:
    {{- include "airflow.container.mounts" . | nindent 4 }}
{{- end -}}

{{/*
Probes. Components serving HTTP are probed there: (dict "path" PATH "port" PORT_NAME).
The others by their job's heartbeat: (dict "jobType" TYPE); `airflow jobs check` starts a
Python CLI, so it gets a long timeout and runs rarely.
*/}}
{{- define "airflow.httpProbes" -}}
{{- $probe := dict "httpGet" (dict "path" .path "port" .port) "timeoutSeconds" 10 }}
{{- include "airflow.probes" (dict "probe" $probe "readyPeriod" 10 "livePeriod" 20) }}
{{- end -}}

{{- define "airflow.jobProbes" -}}
{{- $probe := dict "exec" (dict "command" (list "airflow" "jobs" "check" "--job-type" .jobType "--local")) "timeoutSeconds" 60 }}
{{- include "airflow.probes" (dict "probe" $probe "readyPeriod" 60 "livePeriod" 60) }}
{{- end -}}

{{- define "airflow.probes" -}}
startupProbe:
  {{- toYaml (merge (dict "periodSeconds" 10 "failureThreshold" 30) .probe) | nindent 2 }}
readinessProbe:
  {{- toYaml (merge (dict "periodSeconds" .readyPeriod "failureThreshold" 3) .probe) | nindent 2 }}
livenessProbe:
  {{- toYaml (merge (dict "periodSeconds" .livePeriod "failureThreshold" 5) .probe) | nindent 2 }}
{{- end -}}
