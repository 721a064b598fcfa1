{{/*
Names, labels and images shared by every trainyard subchart.

Helm parses the templates of all charts in one release together, so these named templates
are callable from the umbrella and from each subchart. Every template takes a dict with
`root` (the caller's top-level context `$`) plus its own keys.
*/}}

{{/*
<release>-<component>: a DNS label of at most `max` characters (default 63, the limit of a
Service name and of a label value; StatefulSets pass 52, because their pods carry the label
controller-revision-hash=<name>-<10-character hash>). A name that fits is used as is. A longer
one keeps the whole component (cutting it made components collide, e.g. "postgresq" and
"postgresq-hl" of a 53-character release) and shortens the release part, followed by 5 hex
digits of the release name's sha256, so two long release names that share a prefix do not
share objects. Every object name of the chart goes through here: objects that derive from a
component (its headless Service, scripts ConfigMap, Jobs) pass "<component>-<suffix>".
*/}}
{{- define "trainyard.fullname" -}}
{{- $max := .max | default 63 | int -}}
{{- $release := .root.Release.Name -}}
{{- $name := printf "%s-%s" $release .component -}}
{{- if le (len $name) $max -}}
{{- $name -}}
{{- else -}}
{{- $keep := sub $max (add (len .component) 7) | int -}}
{{- if lt $keep 1 -}}
{{- fail (printf "component name %q is too long for a %d-character name" .component $max) -}}
{{- end -}}
{{- printf "%s-%s-%s" ($release | trunc $keep | trimSuffix "-") ($release | sha256sum | trunc 5) .component -}}
{{- end -}}
{{- end -}}

{{/* <service>.<namespace>.svc: resolvable from every namespace (task pods may live elsewhere). */}}
{{- define "trainyard.serviceHost" -}}
{{- printf "%s.%s.svc" (include "trainyard.fullname" .) .root.Release.Namespace -}}
{{- end -}}

{{/* Selector labels: stable for the life of a release (never put versions here). */}}
{{- define "trainyard.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The recommended app.kubernetes.io/* labels, plus helm.sh/chart. */}}
{{- define "trainyard.labels" -}}
{{ include "trainyard.selectorLabels" . }}
app.kubernetes.io/part-of: trainyard
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- with (.version | default .root.Chart.AppVersion) }}
app.kubernetes.io/version: {{ . | toString | trunc 63 | trimSuffix "-" | quote }}
{{- end }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/*
Image reference: [registry/]repository:tag[@digest]. `image` is a values block with
registry, repository, tag, digest. global.imageRegistry, when set, replaces every image's
registry (a mirror); the tag falls back to `defaultTag` (the chart's appVersion where the
image is trainyard's own).
*/}}
{{- define "trainyard.image" -}}
{{- $registry := .root.Values.global.imageRegistry | default .image.registry -}}
{{- $tag := .image.tag | default .defaultTag | default "" | toString -}}
{{- $ref := .image.repository -}}
{{- if $registry }}{{ $ref = printf "%s/%s" $registry $ref }}{{ end -}}
{{- if $tag }}{{ $ref = printf "%s:%s" $ref $tag }}{{ end -}}
{{- if .image.digest }}{{ $ref = printf "%s@%s" $ref .image.digest }}{{ end -}}
{{- $ref -}}
{{- end -}}

{{/* imagePullSecrets from global.imagePullSecrets (a list of Secret names). */}}
{{- define "trainyard.imagePullSecrets" -}}
{{- with .root.Values.global.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* storageClassName for a PVC: the component's own, else global.storageClass, else the cluster default. */}}
{{- define "trainyard.storageClass" -}}
{{- $class := .persistence.storageClass | default .root.Values.global.storageClass -}}
{{- if eq $class "-" }}
storageClassName: ""
{{- else if $class }}
storageClassName: {{ $class | quote }}
{{- end }}
{{- end -}}
