{{- define "serving.fullname" -}}
{{- include "trainyard.fullname" (dict "root" . "component" "serving") -}}
{{- end -}}

{{- define "serving.labels" -}}
{{- include "trainyard.labels" (dict "root" . "name" "serving" "component" "model-server") -}}
{{- end -}}

{{- define "serving.selectorLabels" -}}
{{- include "trainyard.selectorLabels" (dict "root" . "name" "serving" "component" "model-server") -}}
{{- end -}}

{{/*
Every model server of the release: the platform's own model's (modelName), then one per team's
served inline spec (global.pipelines.specs; trainyard.pipelines.servers). A JSON list of
{"name", "model", "pipeline"}; "pipeline" is empty for the platform's own.
*/}}
{{- define "serving.servers" -}}
{{- $own := dict "name" (include "serving.fullname" .) "model" (toString .Values.modelName) "pipeline" "" -}}
{{- $teams := include "trainyard.pipelines.servers" (dict "root" . "platformModel" .Values.modelName) | fromJsonArray -}}
{{- toJson (prepend $teams $own) -}}
{{- end -}}

{{/*
A server's selector labels: the platform's own keeps the labels it always had (a Deployment's
selector is immutable); a team's server has its own component and pipeline label, so neither
Service selects the other's pods. Called with (dict "root" . "server" <a serving.servers entry>).
*/}}
{{- define "serving.serverSelectorLabels" -}}
{{- if .server.pipeline -}}
{{- include "trainyard.selectorLabels" (dict "root" .root "name" "serving" "component" "pipeline-model-server") }}
trainyard.io/pipeline: {{ .server.pipeline | trunc 63 | trimSuffix "-" | quote }}
{{- else -}}
{{- include "serving.selectorLabels" .root -}}
{{- end -}}
{{- end -}}

{{- define "serving.serverLabels" -}}
{{- if .server.pipeline -}}
{{- include "trainyard.labels" (dict "root" .root "name" "serving" "component" "pipeline-model-server") }}
trainyard.io/pipeline: {{ .server.pipeline | trunc 63 | trimSuffix "-" | quote }}
{{- else -}}
{{- include "serving.labels" .root -}}
{{- end -}}
{{- end -}}
