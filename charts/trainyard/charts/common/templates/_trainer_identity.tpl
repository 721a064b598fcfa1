{{/*
The trainer identity (global.training.identity, docs/gpu-clusters.md): trainer pods run teams'
code, so they get an object-store key pair and an MLflow user of their own instead of the admin
accounts. The chart can make the key pair only on its own SeaweedFS, which reads identities
from a file (-s3.config) beside the admin pair it takes from the environment.
*/}}

{{/* "true" when the chart creates the trainer identity; empty otherwise. */}}
{{- define "trainyard.trainerIdentity.managed" -}}
{{- if and .root.Values.global.training.identity.create (eq (include "trainyard.objectStore.provider" (dict "root" .root)) "seaweedfs") -}}
true
{{- end -}}
{{- end -}}

{{/* The kept Secret in the release namespace that holds the identity (generated once). */}}
{{- define "trainyard.trainerIdentity.secretName" -}}
{{- include "trainyard.fullname" (dict "root" .root "component" "trainer-identity") -}}
{{- end -}}

{{/* The Secret with SeaweedFS's identities file (s3.json), in the release namespace. */}}
{{- define "trainyard.trainerIdentity.storeConfigName" -}}
{{- include "trainyard.fullname" (dict "root" .root "component" "seaweedfs-identities") -}}
{{- end -}}

{{/*
SeaweedFS actions for the identity, as a JSON list, from .read and .write (lists of bucket or
bucket/prefix): "<Action>:<bucket>" for a whole bucket, "<Action>:<bucket>/<prefix>/*" for a
prefix (SeaweedFS matches the string's start, so the slash keeps "runs" from matching
"runs-old"). Write covers put, copy and delete; no Admin (bucket creation, deletion, IAM) and
no Tagging.
*/}}
{{- define "trainyard.trainerIdentity.s3Actions" -}}
{{- $actions := list -}}
{{- range $location := .read -}}
{{- $target := ternary (printf "%s/*" $location) $location (contains "/" $location) -}}
{{- $actions = concat $actions (list (printf "Read:%s" $target) (printf "List:%s" $target)) -}}
{{- end -}}
{{- range $location := .write -}}
{{- $target := ternary (printf "%s/*" $location) $location (contains "/" $location) -}}
{{- $actions = concat $actions (list (printf "Read:%s" $target) (printf "List:%s" $target) (printf "Write:%s" $target)) -}}
{{- end -}}
{{- toJson ($actions | uniq) -}}
{{- end -}}

{{/* What SeaweedFS's identities file depends on besides the keys: a change restarts it. */}}
{{- define "trainyard.trainerIdentity.policyInputs" -}}
{{- toJson (dict "identity" .root.Values.global.training.identity "buckets" .root.Values.global.objectStore.buckets) -}}
{{- end -}}
