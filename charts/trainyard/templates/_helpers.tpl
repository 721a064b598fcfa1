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
The buckets bucket-init creates on the release's store: global.objectStore.buckets, then the DAG
bundles' buckets there (airflow.dagBundles without a connectionSecret). A JSON list.
*/}}
{{- define "trainyard.storeBuckets" -}}
{{- $store := .Values.global.objectStore -}}
{{- $buckets := list -}}
{{- range $key := keys $store.buckets | sortAlpha -}}{{- $buckets = append $buckets (index $store.buckets $key) -}}{{- end -}}
{{- range $bundle := .Values.airflow.dagBundles | default list -}}
{{- if not $bundle.s3.connectionSecret -}}{{- $buckets = append $buckets $bundle.s3.bucket -}}{{- end -}}
{{- end -}}
{{- toJson ($buckets | uniq) -}}
{{- end -}}

{{/*
Checks across components that a JSON schema cannot express well; each message names the
values key to fix. Included by platform-configmap.yaml, which every render contains.
*/}}
{{- define "trainyard.validate" -}}
{{- $db := .Values.global.externalDatabase -}}
{{- $store := .Values.global.objectStore -}}
{{- if include "trainyard.trainerIdentity.managed" (dict "root" .) -}}
{{- if .Values.training.credentialsSecretName -}}
{{- fail (printf "training.credentialsSecretName is set (%s) while the chart creates the trainer identity (global.training.identity.create): set global.training.identity.create=false to give trainer pods your own Secret, or clear training.credentialsSecretName" .Values.training.credentialsSecretName) -}}
{{- end -}}
{{- $work := include "trainyard.trainerIdentity.workLocation" . -}}
{{- $covered := false -}}
{{- range $location := .Values.global.training.identity.write -}}
{{- if or (eq $location $work) (hasPrefix (printf "%s/" $location) (printf "%s/" $work)) -}}{{- $covered = true -}}{{- end -}}
{{- end -}}
{{- if and .Values.global.training.identity.write (not $covered) -}}
{{- fail (printf "global.training.identity.write (%s) does not cover %s, where trainer pods write each run's work and checkpoints (pipeline.workPrefix in the datasets bucket): add %s" (.Values.global.training.identity.write | join ", ") $work $work) -}}
{{- end -}}
{{- end -}}
{{- if and (not .Values.postgresql.enabled) (not $db.host) -}}
{{- fail "postgresql.enabled is false but global.externalDatabase.host is empty: set global.externalDatabase.host (and global.database.existingSecret) to use an external Postgres, or enable postgresql" -}}
{{- end -}}
{{- if and .Values.postgresql.enabled $db.host -}}
{{- fail (printf "global.externalDatabase.host is set (%s) while postgresql.enabled is true: set postgresql.enabled=false to use the external database, or clear global.externalDatabase.host" $db.host) -}}
{{- end -}}
{{- if and $db.host (has $db.sslMode (list "verify-ca" "verify-full")) (not $db.caSecretName) -}}
{{- fail (printf "global.externalDatabase.sslMode is %s but global.externalDatabase.caSecretName is empty: set it to a Secret (in the release namespace) with the CA bundle that signed the server's certificate (key global.externalDatabase.caBundleKey, default ca.crt); without it every database client fails with \"root certificate file does not exist\"" $db.sslMode) -}}
{{- end -}}
{{- if and $db.host (not .Values.global.database.existingSecret) -}}
{{- fail "global.database.existingSecret is required with an external database (global.externalDatabase.host): a Secret with one `<user>-password` key per user in global.database.databases" -}}
{{- end -}}
{{- if and .Values.serving.enabled (ne .Values.serving.modelName .Values.pipeline.modelName) -}}
{{- fail (printf "serving.modelName (%s) must equal pipeline.modelName (%s): the server serves the model the DAG registers" .Values.serving.modelName .Values.pipeline.modelName) -}}
{{- end -}}
{{- if and .Values.serving.enabled .Values.mlflow.enabled .Values.mlflow.auth.existingSecret (not .Values.serving.mlflow.existingSecret) -}}
{{- fail (printf "mlflow.auth.existingSecret is set (%s): set serving.mlflow.existingSecret too (the model server's MLflow password)" .Values.mlflow.auth.existingSecret) -}}
{{- end -}}
{{- if and .Values.serving.enabled (not .Values.mlflow.enabled) -}}
{{- fail "serving.enabled needs mlflow.enabled: the model server loads the champion from the MLflow registry" -}}
{{- end -}}
{{- range $key, $spec := .Values.global.pipelines.specs -}}
{{- if ne $key (toString $spec.name) -}}
{{- fail (printf "global.pipelines.specs.%s: name is %q; it must be the key (the DAG id; the file is %s.yaml)" $key (toString $spec.name) $key) -}}
{{- end -}}
{{- if and $.Values.global.pipelines.digits.enabled (eq $key "ml_training_pipeline") -}}
{{- fail "global.pipelines.specs.ml_training_pipeline: the shipped digits DAG has this id; set global.pipelines.digits.enabled=false or rename the spec" -}}
{{- end -}}
{{- end -}}
{{- $provider := include "trainyard.objectStore.provider" (dict "root" .) -}}
{{- $buckets := include "trainyard.storeBuckets" . | fromJsonArray -}}
{{- if and (eq $provider "seaweedfs") (lt (int .Values.objectstore.seaweedfs.maxVolumes) (mul 7 (add 1 (len $buckets)))) -}}
{{- fail (printf "objectstore.seaweedfs.maxVolumes=%d is too low: %d buckets (with the DAG bundles' on this store) need at least %d volumes (7 per bucket and 7 for the filer)" (int .Values.objectstore.seaweedfs.maxVolumes) (len $buckets) (mul 7 (add 1 (len $buckets)))) -}}
{{- end -}}
{{- if eq $provider "external" -}}
{{- if not $store.external.endpoint -}}
{{- fail "global.objectStore.external.endpoint is required when global.objectStore.provider is external" -}}
{{- end -}}
{{- if not $store.existingSecret -}}
{{- fail "global.objectStore.existingSecret is required when global.objectStore.provider is external: a Secret with the S3 access key pair" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "trainyard.trainingNamespace" -}}
{{- .Values.global.training.namespace | default .Release.Namespace -}}
{{- end -}}

{{- define "trainyard.trainer.name" -}}
{{- include "trainyard.fullname" (dict "root" . "component" "trainer") -}}
{{- end -}}

{{/* The trainer image tag when training.image.tag is empty: the CUDA build on GPU pools. */}}
{{- define "trainyard.trainer.defaultTag" -}}
{{- $variant := .Values.training.image.variant | default "auto" -}}
{{- if or (eq $variant "gpu") (and (eq $variant "auto") .Values.gpu.enabled) -}}
{{- printf "%s-gpu" .Chart.AppVersion -}}
{{- else -}}
{{- .Chart.AppVersion -}}
{{- end -}}
{{- end -}}

{{- define "trainyard.trainer.credentialsSecretName" -}}
{{- if include "trainyard.trainerIdentity.managed" (dict "root" .) -}}
{{- include "trainyard.fullname" (dict "root" . "component" "trainer") -}}
{{- else -}}
{{- .Values.training.credentialsSecretName | default (include "trainyard.fullname" (dict "root" . "component" "trainer-credentials")) -}}
{{- end -}}
{{- end -}}

{{/*
The command that creates the trainer credentials Secret in the training namespace from the
release's own Secrets (NOTES and the trainer-credentials helm test print it).
*/}}
{{- define "trainyard.trainer.credentialsCommand" -}}
{{- $ns := .Release.Namespace -}}
{{- $store := .Values.global.objectStore -}}
{{- $storeSecret := include "trainyard.objectStore.secretName" (dict "root" .) -}}
{{- $mlflowSecret := .Values.mlflow.auth.existingSecret | default (include "trainyard.fullname" (dict "root" . "component" "mlflow-auth")) -}}
kubectl -n {{ include "trainyard.trainingNamespace" . }} create secret generic {{ include "trainyard.trainer.credentialsSecretName" . }} \
  --from-literal=AWS_ACCESS_KEY_ID="$(kubectl -n {{ $ns }} get secret {{ $storeSecret }} -o jsonpath='{.data.{{ $store.accessKeyIdKey }}}' | base64 -d)" \
  --from-literal=AWS_SECRET_ACCESS_KEY="$(kubectl -n {{ $ns }} get secret {{ $storeSecret }} -o jsonpath='{.data.{{ $store.secretAccessKeyKey }}}' | base64 -d)" \
  --from-literal=MLFLOW_TRACKING_USERNAME={{ .Values.mlflow.auth.adminUsername }} \
  --from-literal=MLFLOW_TRACKING_PASSWORD="$(kubectl -n {{ $ns }} get secret {{ $mlflowSecret }} -o jsonpath='{.data.admin-password}' | base64 -d)"
{{- end -}}

{{/*
platform.json: what the DAG knows about the cluster (trainyard.pipeline.platform.parse reads
it). Non-secret only; credentials reach trainer pods as Secrets named in env_from_secrets.
*/}}
{{- define "trainyard.platformJson" -}}
{{- $store := .Values.global.objectStore -}}
{{- $gpu := .Values.gpu -}}
{{- $p := .Values.pipeline -}}
{{- $t := .Values.training -}}
{{- $env := dict
  "AWS_ENDPOINT_URL_S3" (include "trainyard.objectStore.endpoint" (dict "root" .))
  "AWS_DEFAULT_REGION" $store.region
  "AWS_REGION" $store.region -}}
{{- if .Values.mlflow.enabled -}}
{{- $_ := set $env "MLFLOW_TRACKING_URI" (include "trainyard.mlflow.url" .) -}}
{{- end -}}
{{- if .Values.serving.enabled -}}
{{- /* Where the deploy step rolls out and smoke-tests the model server. */ -}}
{{- $_ := set $env "TRAINYARD_SERVING_DEPLOYMENT" (include "trainyard.fullname" (dict "root" . "component" "serving")) -}}
{{- $_ := set $env "TRAINYARD_SERVING_NAMESPACE" .Release.Namespace -}}
{{- $_ := set $env "TRAINYARD_SERVING_URL" (printf "http://%s:%v" (include "trainyard.serviceHost" (dict "root" . "component" "serving")) .Values.serving.service.port) -}}
{{- end -}}
{{- $env = merge (deepCopy $t.env) $env -}}
{{- $gpuConfig := dict
  "enabled" $gpu.enabled
  "count" ($gpu.count | int)
  "resource_name" $gpu.resourceName
  "tolerations" (include "gpu.tolerations" (dict "Values" $gpu) | fromJsonArray)
  "node_selector" $gpu.nodePool.labels
  "affinity" $gpu.affinity
  "runtime_class_name" ($gpu.runtimeClassName | default nil) -}}
{{- $config := dict
  "runtime" "kubernetes"
  "data_root" (printf "s3://%s/%s" $store.buckets.datasets $p.dataPrefix)
  "work_root" (printf "s3://%s/%s" $store.buckets.datasets $p.workPrefix)
  "storage_conn_id" "trainyard_s3"
  "model_name" $p.modelName
  "experiment" $p.experiment
  "max_parallel_trials" ($p.maxParallelTrials | int)
  "task_retries" ($p.taskRetries | int)
  "retry_delay_seconds" ($p.retryDelaySeconds | int)
  "execution_timeout_minutes" ($p.executionTimeoutMinutes | int)
  "schedule" ($p.schedule | default nil)
  "sensor_poke_seconds" ($p.sensorPokeSeconds | int)
  "sensor_timeout_minutes" ($p.sensorTimeoutMinutes | int)
  "deadline_minutes" ($p.deadlineMinutes | int)
  "inline_executor" (.Values.airflow.inlineExecutor | default nil)
  "deferrable_trials" $p.deferrableTrials
  "trainer" (dict
    "image" (include "trainyard.image" (dict "root" . "image" $t.image "defaultTag" (include "trainyard.trainer.defaultTag" .)))
    "image_pull_policy" $t.image.pullPolicy
    "namespace" (include "trainyard.trainingNamespace" .)
    "service_account" (include "trainyard.trainer.name" .)
    "env" $env
    "env_from_secrets" (concat (list (include "trainyard.trainer.credentialsSecretName" .)) $t.extraEnvFromSecrets)
    "resources" $t.resources
    "labels" (merge (dict "app.kubernetes.io/instance" .Release.Name "app.kubernetes.io/name" "trainyard" "app.kubernetes.io/component" "trainer") $t.labels)
    "annotations" $t.annotations
    "volumes" (list)
    "volume_mounts" (list)
    "image_pull_secrets" (concat .Values.global.imagePullSecrets $t.imagePullSecrets | uniq)
    "schedule_timeout_seconds" ($t.podTimeouts.scheduleSeconds | int)
    "startup_timeout_seconds" ($t.podTimeouts.startupSeconds | int))
  "gpu" $gpuConfig
  "notify" (dict
    "smtp_to" $p.notify.smtpTo
    "smtp_conn_id" $p.notify.smtpConnId
    "slack_conn_id" ($p.notify.slackConnId | default nil)) -}}
{{- /*
Keys added in 0.4 only when they differ from their default: during a rolling upgrade, pods of the
last release read this ConfigMap too, and its loader refused keys it did not know.
*/ -}}
{{- $teamPipelines := include "trainyard.pipelines.paths" (dict "root" .) | fromJsonArray -}}
{{- if $teamPipelines -}}
{{- $_ := set $config "pipelines" $teamPipelines -}}
{{- end -}}
{{- if not .Values.global.pipelines.digits.enabled -}}
{{- $_ := set $config "builtin_pipeline" false -}}
{{- end -}}
{{- if .Values.serving.enabled -}}
{{- $servers := dict -}}
{{- range $server := include "trainyard.pipelines.servers" (dict "root" . "platformModel" .Values.serving.modelName) | fromJsonArray -}}
{{- $_ := set $servers $server.model (dict
  "TRAINYARD_SERVING_DEPLOYMENT" $server.name
  "TRAINYARD_SERVING_NAMESPACE" $.Release.Namespace
  "TRAINYARD_SERVING_URL" (printf "http://%s:%v" (include "trainyard.serviceHost" (dict "root" $ "component" $server.component)) $.Values.serving.service.port)) -}}
{{- end -}}
{{- if $servers -}}
{{- $_ := set $config "model_servers" $servers -}}
{{- end -}}
{{- end -}}
{{- toPrettyJson $config -}}
{{- end -}}

{{/*
The pipelines' own MLflow experiments and registered models known at render time (the digits
pipeline's, and the inline specs' with literal names), for the trainer user's grants. Specs in
a team's ConfigMap are unknown here: their trainer makes (and so owns) their experiment and model.
*/}}
{{- define "trainyard.trainerIdentity.mlflowObjects" -}}
{{- $experiments := list -}}
{{- $models := list -}}
{{- if .Values.global.pipelines.digits.enabled -}}
{{- $experiments = append $experiments .Values.pipeline.experiment -}}
{{- $models = append $models .Values.pipeline.modelName -}}
{{- end -}}
{{- range $key := keys .Values.global.pipelines.specs | sortAlpha -}}
{{- $model := (index $.Values.global.pipelines.specs $key).model | default dict -}}
{{- $name := toString ($model.name | default "") -}}
{{- $experiment := toString ($model.experiment | default (printf "trainyard-%s" $name)) -}}
{{- if and $name (not (contains "${" $name)) -}}{{- $models = append $models $name -}}{{- end -}}
{{- if and $name (not (contains "${" $experiment)) -}}{{- $experiments = append $experiments $experiment -}}{{- end -}}
{{- end -}}
{{- toJson (dict "experiments" ($experiments | uniq) "models" ($models | uniq)) -}}
{{- end -}}

{{/* The pod of the Job that makes the trainer's MLflow user (trainer-identity.yaml). */}}
{{- define "trainyard.trainerIdentity.podTemplate" -}}
{{- $objects := include "trainyard.trainerIdentity.mlflowObjects" . | fromJson }}
{{- $env := dict "env" (list
  (dict "name" "MLFLOW_URL" "value" (include "trainyard.mlflow.url" .))
  (dict "name" "ADMIN_USERNAME" "value" .Values.mlflow.auth.adminUsername)
  (dict "name" "ADMIN_PASSWORD" "valueFrom" (dict "secretKeyRef" (dict "name" (.Values.mlflow.auth.existingSecret | default (include "trainyard.fullname" (dict "root" . "component" "mlflow-auth"))) "key" "admin-password")))
  (dict "name" "TRAINER_USERNAME" "value" .Values.global.training.identity.mlflowUsername)
  (dict "name" "TRAINER_PASSWORD" "valueFrom" (dict "secretKeyRef" (dict "name" (include "trainyard.trainerIdentity.secretName" (dict "root" .)) "key" "MLFLOW_TRACKING_PASSWORD")))
  (dict "name" "EXPERIMENTS" "value" (toJson $objects.experiments))
  (dict "name" "MODELS" "value" (toJson $objects.models))) }}
{{- include "trainyard.platformJob.podTemplate" (dict "root" . "component" "trainer-user" "script" "ensure_trainer_user.py" "env" (index $env "env" | toYaml | trim)) }}
{{- end -}}

{{/*
The pod of a platform Job (bucket-init, trainer-user): a script of the platform-scripts
ConfigMap, run in the tools image as the platform ServiceAccount without its token, retrying
for bucketInit.activeDeadlineSeconds. Takes root, component, script and env (YAML list items).
*/}}
{{- define "trainyard.platformJob.podTemplate" -}}
{{- $root := .root }}
metadata:
  labels:
    {{- include "trainyard.platform.labels" (dict "root" $root "component" .component) | nindent 4 }}
spec:
  restartPolicy: OnFailure
  serviceAccountName: {{ include "trainyard.platform.fullname" $root }}
  automountServiceAccountToken: false
  {{- include "trainyard.imagePullSecrets" (dict "root" $root) | nindent 2 }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  containers:
    - name: {{ .component }}
      image: {{ include "trainyard.toolsImage" $root | quote }}
      imagePullPolicy: {{ $root.Values.toolsImage.pullPolicy }}
      command: ["python", "/scripts/{{ .script }}"]
      env:
        {{- .env | nindent 8 }}
        - name: WAIT_TIMEOUT_SECONDS
          value: {{ $root.Values.bucketInit.activeDeadlineSeconds | quote }}
        - name: HOME
          value: /tmp
      resources:
        {{- toYaml $root.Values.bucketInit.resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: scripts
          mountPath: /scripts
          readOnly: true
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: tmp
      emptyDir: {}
    - name: scripts
      configMap:
        name: {{ include "trainyard.fullname" (dict "root" $root "component" "platform-scripts") }}
        defaultMode: 0444
{{- end -}}

{{/* MLflow's URL inside the cluster. */}}
{{- define "trainyard.mlflow.url" -}}
{{- printf "http://%s:%v" (include "trainyard.serviceHost" (dict "root" . "component" "mlflow")) .Values.mlflow.service.port -}}
{{- end -}}


{{/* Where trainer pods write each run's work and checkpoints: <datasets bucket>/<workPrefix>. */}}
{{- define "trainyard.trainerIdentity.workLocation" -}}
{{- printf "%s/%s" .Values.global.objectStore.buckets.datasets (.Values.pipeline.workPrefix | trimAll "/") -}}
{{- end -}}

{{/* The trainer identity's read and write lists, the empty ones derived (a JSON object). */}}
{{- define "trainyard.trainerIdentity.locations" -}}
{{- $identity := .Values.global.training.identity -}}
{{- $read := $identity.read | default (list .Values.global.objectStore.buckets.datasets) -}}
{{- $write := $identity.write | default (list (include "trainyard.trainerIdentity.workLocation" .)) -}}
{{- toJson (dict "read" $read "write" $write) -}}
{{- end -}}
