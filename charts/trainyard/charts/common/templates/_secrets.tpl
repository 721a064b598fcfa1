{{/*
Generated secrets: created once, then read back with `lookup` on every later render, so
`helm upgrade` never rotates a password behind a running database. Takes root, name (the
Secret's name) and key; returns the base64 value to put under `data:`.

`lookup` only sees the cluster during `helm install/upgrade`. `helm template` (and so Argo CD,
which renders with it) gets an empty result and a fresh random value every time: under such
tools set the component's `existingSecret` instead. The Secrets carry
`helm.sh/resource-policy: keep`, so an uninstall does not delete the password that the
(also kept) data volumes were initialised with; a re-install of the same release adopts them.
*/}}
{{- define "trainyard.secretValue" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .name -}}
{{- $data := dig "data" (dict) ($existing | default (dict)) -}}
{{- if hasKey $data .key -}}
{{- index $data .key -}}
{{- else -}}
{{- randAlphaNum (.length | default 32) | b64enc -}}
{{- end -}}
{{- end -}}

{{/* Annotations every generated Secret carries. */}}
{{- define "trainyard.generatedSecretAnnotations" -}}
helm.sh/resource-policy: keep
trainyard.io/generated: "true"
{{- end -}}
