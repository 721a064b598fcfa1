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
