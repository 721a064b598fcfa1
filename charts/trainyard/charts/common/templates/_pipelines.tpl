{{/*
Teams' pipeline specs on the cluster (global.pipelines): the umbrella renders the inline specs into
one ConfigMap and lists the mounted files and folders in platform.json's `pipelines`; the airflow
subchart mounts them into every Airflow pod. Both read these helpers, so the paths agree.
Called with (dict "root" .).
*/}}

{{- define "trainyard.pipelines.configMapName" -}}
{{- include "trainyard.fullname" (dict "root" .root "component" "pipelines") -}}
{{- end -}}

{{- define "trainyard.pipelines.mountPath" -}}
/opt/trainyard/pipelines
{{- end -}}

{{/* platform.json's `pipelines`: one file per inline spec, one folder per team ConfigMap. */}}
{{- define "trainyard.pipelines.paths" -}}
{{- $p := .root.Values.global.pipelines -}}
{{- $base := include "trainyard.pipelines.mountPath" . -}}
{{- $paths := list -}}
{{- range $name := keys $p.specs | sortAlpha -}}
{{- $paths = append $paths (printf "%s/inline/%s.yaml" $base $name) -}}
{{- end -}}
{{- range $p.existingConfigMaps -}}
{{- $paths = append $paths (printf "%s/configmaps/%s" $base .) -}}
{{- end -}}
{{- toJson $paths -}}
{{- end -}}

{{/*
Optional volumes: a team's ConfigMap that is missing (or not yet created) leaves its folder empty,
which the DAG file reports as an import error, instead of keeping every Airflow pod from starting.
*/}}
{{- define "trainyard.pipelines.volumes" -}}
{{- $p := .root.Values.global.pipelines -}}
{{- if $p.specs }}
- name: pipelines-inline
  configMap:
    name: {{ include "trainyard.pipelines.configMapName" . }}
{{- end }}
{{- range $i, $name := $p.existingConfigMaps }}
- name: pipelines-{{ $i }}
  configMap:
    name: {{ $name }}
    optional: true
{{- end }}
{{- end -}}

{{/* Directory mounts (no subPath): a team's ConfigMap edit reaches running pods. */}}
{{- define "trainyard.pipelines.mounts" -}}
{{- $p := .root.Values.global.pipelines -}}
{{- $base := include "trainyard.pipelines.mountPath" . -}}
{{- if $p.specs }}
- name: pipelines-inline
  mountPath: {{ $base }}/inline
  readOnly: true
{{- end }}
{{- range $i, $name := $p.existingConfigMaps }}
- name: pipelines-{{ $i }}
  mountPath: {{ $base }}/configmaps/{{ $name }}
  readOnly: true
{{- end }}
{{- end -}}

{{/*
The model servers of teams' pipelines (inline specs whose model is served, other than the
platform's own model, which serving.modelName serves): the serving subchart runs one Deployment
and Service each, the umbrella names them in platform.json's `model_servers`. A JSON list of
{"pipeline", "model", "component", "name"}. A spec from a team's ConfigMap is unknown at render time: its
model is deployed by moving its alias alone. Called with (dict "root" . "platformModel" <the
model serving.modelName serves>); only where serving is enabled.
*/}}
{{- define "trainyard.pipelines.servers" -}}
{{- $root := .root -}}
{{- $platformModel := toString .platformModel -}}
{{- $servers := list -}}
{{- range $key := keys $root.Values.global.pipelines.specs | sortAlpha -}}
{{- $model := (index $root.Values.global.pipelines.specs $key).model | default dict -}}
{{- $name := toString ($model.name | default "") -}}
{{- if and (ne (toString $model.serve) "false") (ne $name $platformModel) -}}
{{- if contains "${" $name -}}
{{- fail (printf "global.pipelines.specs.%s.model.name: %q is served, so on the cluster it must be a literal name (its model server is rendered with it); write it out, or set model.serve: false" $key $name) -}}
{{- end -}}
{{- $component := printf "serving-%s" ($key | lower | replace "_" "-" | replace "." "-") -}}
{{- $servers = append $servers (dict "pipeline" $key "model" $name "component" $component "name" (include "trainyard.fullname" (dict "root" $root "component" $component))) -}}
{{- end -}}
{{- end -}}
{{- toJson $servers -}}
{{- end -}}
