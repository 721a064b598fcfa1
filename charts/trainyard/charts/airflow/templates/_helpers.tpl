{{- define "airflow.fullname" -}}
{{- include "trainyard.fullname" (dict "root" . "component" "airflow") -}}
{{- end -}}

{{/* <release>-airflow-<component>: api-server, scheduler, dag-processor, triggerer, worker. */}}
{{- define "airflow.componentName" -}}
{{- include "trainyard.fullname" (dict "root" .root "component" (printf "airflow-%s" .component)) -}}
{{- end -}}

{{- define "airflow.labels" -}}
{{- include "trainyard.labels" (dict "root" .root "name" "airflow" "component" .component) -}}
{{- end -}}

{{- define "airflow.selectorLabels" -}}
{{- include "trainyard.selectorLabels" (dict "root" .root "name" "airflow" "component" .component) -}}
{{- end -}}

{{- define "airflow.image" -}}
{{- include "trainyard.image" (dict "root" . "image" .Values.image "defaultTag" .Chart.AppVersion) -}}
{{- end -}}

{{- define "airflow.trainingNamespace" -}}
{{- .Values.global.training.namespace | default .Release.Namespace -}}
{{- end -}}

{{/* http://<api-server svc>.<ns>.svc:<port>/execution/ : where task pods report. */}}
{{- define "airflow.executionApiUrl" -}}
{{- printf "http://%s:%v/execution/" (include "trainyard.serviceHost" (dict "root" . "component" "airflow-api-server")) .Values.apiServer.service.port -}}
{{- end -}}

{{- define "airflow.secretName" -}}
{{- include "airflow.fullname" . -}}
{{- end -}}

{{- define "airflow.passwordsSecretName" -}}
{{- .Values.auth.existingSecret | default (include "airflow.secretName" .) -}}
{{- end -}}

{{- define "airflow.platformConfigMap" -}}
{{- include "trainyard.fullname" (dict "root" . "component" "platform") -}}
{{- end -}}

{{/*
The Airflow configuration as section -> key -> value, in layers, the later winning: the
platform's settings from files/airflow-settings.yaml (`shared` + `kubernetes`; `trainyard up`
reads the same file), settings derived from this release (Execution API URL, database,
namespace), the auth manager's, then `.Values.config`. Rendered once, into the env ConfigMap
(airflow.configEnv).
*/}}
{{- define "airflow.config" -}}
{{- $store := .Values.global.objectStore -}}
{{- $db := include "trainyard.database.entry" (dict "root" . "database" "airflow") | fromYaml -}}
{{- /* The `{name}` placeholders of the settings file; trainyard.standalone fills the same. */ -}}
{{- $inputs := dict
  "storage_conn_id" "trainyard_s3"
  "xcom_bucket" $store.buckets.airflowXcom
  "logs_bucket" $store.buckets.airflowLogs
  "xcom_threshold_bytes" (.Values.xcom.thresholdBytes | toString)
  "xcom_compression" .Values.xcom.compression
  "remote_logging" (ternary "True" "False" .Values.remoteLogging.enabled)
-}}
{{- $settings := .Files.Get "files/airflow-settings.yaml" | fromYaml -}}
{{- if not $settings.shared -}}
{{- fail "airflow: files/airflow-settings.yaml is missing or has no `shared` settings" -}}
{{- end -}}
{{- $derived := dict -}}
{{- range $part := list "shared" "kubernetes" }}
{{- range $section, $keys := index $settings $part }}
{{- range $key, $value := $keys }}
{{- $value = toString $value }}
{{- range $name, $input := $inputs }}
{{- $value = replace (printf "{%s}" $name) (toString $input) $value }}
{{- end }}
{{- if regexMatch "\\{[a-z_]+\\}" $value }}
{{- fail (printf "airflow: files/airflow-settings.yaml: %s.%s.%s: no input for %q" $part $section $key $value) }}
{{- end }}
{{- if not (hasKey $derived $section) }}{{ $_ := set $derived $section dict }}{{ end }}
{{- $_ := set (index $derived $section) $key $value }}
{{- end }}
{{- end }}
{{- end }}
{{- $derived = mergeOverwrite $derived (dict
  "core" (dict
    "execution_api_server_url" (include "airflow.executionApiUrl" .)
    "executor" (ternary (printf "KubernetesExecutor,%s" .Values.inlineExecutor) "KubernetesExecutor" (ne .Values.inlineExecutor "")))
  "database" (dict
    "sql_alchemy_conn" (printf "postgresql+psycopg2://%s@%s:%s/%s" $db.user (include "trainyard.database.host" (dict "root" .)) (include "trainyard.database.port" (dict "root" .)) $db.name))
  "kubernetes_executor" (dict
    "namespace" .Release.Namespace)
) -}}
{{- include "airflow.dagBundles.validate" . -}}
{{- with include "airflow.dagBundles.config" . }}
{{- $derived = mergeOverwrite $derived (dict "dag_processor" (dict "dag_bundle_config_list" .)) }}
{{- end }}
{{- $derived = mergeOverwrite $derived (include "airflow.auth.config" . | fromYaml) -}}
{{- toYaml (mergeOverwrite $derived (deepCopy .Values.config)) -}}
{{- end -}}

{{/* The config as env: AIRFLOW__<SECTION>__<KEY> ("common.io" -> COMMON_IO). */}}
{{- define "airflow.configEnv" -}}
{{- $config := include "airflow.config" . | fromYaml -}}
{{- range $section := keys $config | sortAlpha }}
{{- $keys := index $config $section }}
{{- range $key := keys $keys | sortAlpha }}
{{ printf "AIRFLOW__%s__%s" ($section | replace "." "_" | upper) ($key | upper) }}: {{ index $keys $key | toString | quote }}
{{- end }}
{{- end }}
AIRFLOW_HOME: "/opt/airflow"
# Airflow writes a default airflow.cfg when there is none; the root filesystem is read-only.
AIRFLOW_CONFIG: "/tmp/airflow.cfg"
TRAINYARD_PLATFORM_CONFIG: "/opt/trainyard/config/platform.json"
# The official entrypoint must not probe the database (task pods have no database access).
CONNECTION_CHECK_MAX_COUNT: "0"
{{- end -}}

{{/*
Env from Secrets, for every Airflow container (`full`) or a worker pod (only the object store
connection: task pods talk to the Execution API, never to the database).

AIRFLOW_CONN_TRAINYARD_S3 is defined once, here. Its credentials come from the object-store
Secret (generated or existingSecret), never from values: the JSON uses Kubernetes' $(VAR)
expansion of the AWS_* variables defined just before it, so no rendered object holds the keys.
*/}}
{{- define "airflow.secretEnv" -}}
{{- $store := .root.Values.global.objectStore -}}
{{- include "trainyard.objectStore.env" (dict "root" .root) }}
- name: AIRFLOW_CONN_TRAINYARD_S3
  value: {{ dict "conn_type" "aws" "login" "$(AWS_ACCESS_KEY_ID)" "password" "$(AWS_SECRET_ACCESS_KEY)" "extra" (dict "endpoint_url" (include "trainyard.objectStore.endpoint" (dict "root" .root)) "region_name" $store.region) | toJson | quote }}
# The pod operator's connection: in-cluster config (the triggerer's async hook has no in-cluster
# fallback without it) and the pinned XCom sidecar image.
- name: AIRFLOW_CONN_KUBERNETES_DEFAULT
  value: {{ dict "conn_type" "kubernetes" "extra" (dict "in_cluster" true "xcom_sidecar_container_image" (include "trainyard.image" (dict "root" .root "image" .root.Values.podOperator.xcomSidecarImage))) | toJson | quote }}
{{- include "airflow.dagBundles.connectionEnv" .root }}
{{- if .full }}
{{ include "trainyard.database.env" (dict "root" .root "database" "airflow") }}
{{- $secrets := .root.Values.keys }}
{{- range $name, $var := dict "fernet" "AIRFLOW__CORE__FERNET_KEY" "jwt" "AIRFLOW__API_AUTH__JWT_SECRET" "apiSession" "AIRFLOW__API__SECRET_KEY" }}
{{- $secret := index $secrets $name }}
- name: {{ $var }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret.existingSecret | default (include "airflow.secretName" $.root) | quote }}
      key: {{ $secret.key | quote }}
{{- end }}
{{- end }}
{{- with .root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
The service-account token, mounted explicitly for the components that call the Kubernetes API
(pods keep automountServiceAccountToken: false; only these get a short-lived projected token).
*/}}
{{- define "airflow.tokenVolume" -}}
- name: kube-api-access
  projected:
    defaultMode: 0444
    sources:
      - serviceAccountToken:
          path: token
          expirationSeconds: 3607
      - configMap:
          name: kube-root-ca.crt
          items:
            - key: ca.crt
              path: ca.crt
      - downwardAPI:
          items:
            - path: namespace
              fieldRef:
                fieldPath: metadata.namespace
{{- end -}}

{{- define "airflow.tokenMount" -}}
- name: kube-api-access
  mountPath: /var/run/secrets/kubernetes.io/serviceaccount
  readOnly: true
{{- end -}}

{{/* Volumes every Airflow pod has: scratch space, task-log folder, the platform config, teams'
pipeline specs (global.pipelines). */}}
{{- define "airflow.commonVolumes" -}}
- name: tmp
  emptyDir: {}
- name: logs
  emptyDir: {}
- name: platform-config
  configMap:
    name: {{ include "airflow.platformConfigMap" . }}
    items:
      - key: platform.json
        path: platform.json
{{- include "trainyard.pipelines.volumes" (dict "root" .) }}
{{- end -}}

{{- define "airflow.commonMounts" -}}
- name: tmp
  mountPath: /tmp
- name: logs
  mountPath: /opt/airflow/logs
# A directory mount (no subPath): ConfigMap updates reach running pods; the DAG reads the
# file when it is parsed. Its own folder: a mount at /opt/trainyard would hide the pipeline
# modules the image keeps in /opt/trainyard/lib (PYTHONPATH), and the DAG could not import.
- name: platform-config
  mountPath: /opt/trainyard/config
  readOnly: true
{{- include "trainyard.pipelines.mounts" (dict "root" .) }}
{{- end -}}

{{/*
DAG bundles from values (dagBundles): Airflow 3's dag_bundle_config_list, the image's own DAG
folder first (as Airflow's default names it, so existing DAGs keep their bundle), then each S3
bundle. "" when there are none: Airflow's default list stays.
*/}}
{{- define "airflow.dagBundles.config" -}}
{{- if .Values.dagBundles -}}
{{- $list := list (dict "name" "dags-folder" "classpath" "airflow.dag_processing.bundles.local.LocalDagBundle" "kwargs" dict) -}}
{{- range $bundle := .Values.dagBundles -}}
{{- if eq $bundle.name "dags-folder" -}}
{{- fail "airflow.dagBundles: \"dags-folder\" is the image's own bundle; give yours another name" -}}
{{- end -}}
{{- $kwargs := dict "aws_conn_id" (include "airflow.dagBundles.connId" $bundle) "bucket_name" $bundle.s3.bucket "prefix" ($bundle.s3.prefix | default "") "refresh_interval" ($bundle.refreshInterval | default 60 | int) -}}
{{- $list = append $list (dict "name" $bundle.name "classpath" "airflow.providers.amazon.aws.bundles.s3.S3DagBundle" "kwargs" $kwargs) -}}
{{- end -}}
{{- toJson $list -}}
{{- end -}}
{{- end -}}

{{/* A bundle's Airflow connection: the release's store (trainyard_s3), or its own Secret's. */}}
{{- define "airflow.dagBundles.connId" -}}
{{- if .s3.connectionSecret -}}
{{- printf "trainyard_bundle_%s" (.name | replace "-" "_") -}}
{{- else -}}
trainyard_s3
{{- end -}}
{{- end -}}

{{/*
Each bundle connection from a Secret, for every Airflow container and worker pod (a task's
worker fetches its DAG's bundle too): AIRFLOW_CONN_<ID>, the Secret's value as Airflow reads a
connection from the environment (a URI or JSON). Never a literal in values.
*/}}
{{- define "airflow.dagBundles.connectionEnv" -}}
{{- range $bundle := .Values.dagBundles }}
{{- with $bundle.s3.connectionSecret }}
- name: {{ printf "AIRFLOW_CONN_%s" (include "airflow.dagBundles.connId" $bundle | upper) }}
  valueFrom:
    secretKeyRef:
      name: {{ .name | quote }}
      key: {{ .key | default "connection" | quote }}
      {{- /* A Secret that goes missing later leaves this bundle without its connection (the
      dag-processor logs the error and retries), not every Airflow pod unable to start. */}}
      optional: true
{{- end }}
{{- end }}
{{- end -}}

{{/*
A bundle whose connection Secret (or its key) is missing fails the install or upgrade, naming
it. Only where the cluster answers `lookup` (not `helm template`, where the release namespace
is not found either).
*/}}
{{- define "airflow.dagBundles.validate" -}}
{{- if lookup "v1" "Namespace" "" .Release.Namespace -}}
{{- range $index, $bundle := .Values.dagBundles -}}
{{- with $bundle.s3.connectionSecret -}}
{{- $secret := lookup "v1" "Secret" $.Release.Namespace .name -}}
{{- $key := .key | default "connection" -}}
{{- if not $secret -}}
{{- fail (printf "airflow.dagBundles[%d] (%s): its connectionSecret %q does not exist in namespace %s: create it (key %q: an Airflow connection for the bucket) or remove the bundle" $index $bundle.name .name $.Release.Namespace $key) -}}
{{- else if not (hasKey ($secret.data | default dict) $key) -}}
{{- fail (printf "airflow.dagBundles[%d] (%s): Secret %q has no key %q (it has: %s)" $index $bundle.name .name $key (keys ($secret.data | default dict) | sortAlpha | join ", ")) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
