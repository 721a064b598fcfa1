{{- define "serving.fullname" -}}
{{- include "trainyard.fullname" (dict "root" . "component" "serving") -}}
{{- end -}}

{{- define "serving.labels" -}}
{{- include "trainyard.labels" (dict "root" . "name" "serving" "component" "model-server") -}}
{{- end -}}

{{- define "serving.selectorLabels" -}}
{{- include "trainyard.selectorLabels" (dict "root" . "name" "serving" "component" "model-server") -}}
{{- end -}}
