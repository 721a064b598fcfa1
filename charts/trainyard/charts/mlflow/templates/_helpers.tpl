{{- define "mlflow.fullname" -}}
{{- include "trainyard.fullname" (dict "root" . "component" "mlflow") -}}
{{- end -}}

{{- define "mlflow.labels" -}}
{{- include "trainyard.labels" (dict "root" . "name" "mlflow" "component" "tracking-server") -}}
{{- end -}}

{{- define "mlflow.selectorLabels" -}}
{{- include "trainyard.selectorLabels" (dict "root" . "name" "mlflow" "component" "tracking-server") -}}
{{- end -}}

{{- define "mlflow.image" -}}
{{- include "trainyard.image" (dict "root" . "image" .Values.image "defaultTag" .Chart.AppVersion) -}}
{{- end -}}

{{/* Host headers the server accepts: every in-cluster name of its Service, the ingress host, extras. */}}
{{- define "mlflow.allowedHosts" -}}
{{- $svc := include "mlflow.fullname" . -}}
{{- $port := .Values.service.port | toString -}}
{{- $hosts := list -}}
{{- range $name := list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) -}}
{{- $hosts = concat $hosts (list $name (printf "%s:%s" $name $port)) -}}
{{- end -}}
{{- /* Any local port: `kubectl port-forward svc/... 15000:5000` sends Host 127.0.0.1:15000. */ -}}
{{- $hosts = concat $hosts (list "localhost" "localhost:*" "127.0.0.1" "127.0.0.1:*") -}}
{{- with .Values.ingress.host }}{{ $hosts = append $hosts . }}{{ end -}}
{{- $hosts = concat $hosts .Values.allowedHosts -}}
{{- $hosts | uniq | join "," -}}
{{- end -}}

{{/* Everything in basic_auth.ini except the password (also the rollout checksum input). */}}
{{- define "mlflow.authConfig" -}}
[mlflow]
default_permission = {{ .Values.auth.defaultPermission }}
database_uri = {{ include "trainyard.database.sqlalchemyUrl" (dict "root" . "database" "mlflowAuth") }}
admin_username = {{ .Values.auth.adminUsername }}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
{{- end -}}

{{- define "mlflow.authSecretName" -}}
{{- include "trainyard.fullname" (dict "root" . "component" "mlflow-auth") -}}
{{- end -}}

{{- define "mlflow.adminPasswordSecretName" -}}
{{- .Values.auth.existingSecret | default (include "mlflow.authSecretName" .) -}}
{{- end -}}
