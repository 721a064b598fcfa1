{{/*
NetworkPolicy admitting ingress to one component's pods. Takes root, name and component (the
selector labels of the pods), ports (list of container ports) and from:
  "release" - pods of the same release in this namespace (the platform's own clients)
  "any"     - anyone (a user-facing service behind its own authentication)
  "none"    - no ingress at all (Jobs and test pods serve nothing)
Egress is left open: components reach the object store, databases and cloud endpoints.
*/}}
{{- define "trainyard.networkPolicy" -}}
{{- if .root.Values.global.networkPolicy.enabled }}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "trainyard.fullname" (dict "root" .root "component" (printf "%s-%s" (ternary "platform" .name (eq .name "trainyard")) .component)) }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "trainyard.labels" (dict "root" .root "name" .name "component" .component) | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "trainyard.selectorLabels" (dict "root" .root "name" .name "component" .component) | nindent 6 }}
  policyTypes: [Ingress]
  {{- if eq .from "none" }}
  ingress: []
  {{- else }}
  ingress:
    - ports:
        {{- range .ports }}
        - port: {{ . }}
          protocol: TCP
        {{- end }}
      {{- if eq .from "release" }}
      from:
        - podSelector:
            matchLabels:
              app.kubernetes.io/instance: {{ .root.Release.Name }}
        {{- if .training }}
        {{- /* Trainer pods in the training namespace (only where the caller asks: object store). */}}
        {{- $ns := .root.Values.global.training.namespace | default .root.Release.Namespace }}
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: {{ $ns }}
          podSelector:
            matchLabels:
              app.kubernetes.io/instance: {{ .root.Release.Name }}
              app.kubernetes.io/component: trainer
        {{- end }}
        {{- range .root.Values.global.networkPolicy.extraClients }}
        - {{- toYaml . | nindent 10 }}
        {{- end }}
      {{- end }}
  {{- end }}
{{- end }}
{{- end -}}
