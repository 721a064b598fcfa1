{{/* A `helm test` Pod running smoke_test.py <check>; takes root, check, env (rendered YAML list)
and optionally serviceAccount (a ServiceAccount whose API token the pod mounts; by default the
platform's, without a token). */}}
{{- define "trainyard.testPod" -}}
{{- $root := .root -}}
apiVersion: v1
kind: Pod
metadata:
  name: {{ include "trainyard.fullname" (dict "root" $root "component" (printf "test-%s" .check)) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "trainyard.platform.labels" (dict "root" $root "component" "test") | nindent 4 }}
  annotations:
    helm.sh/hook: test
    # Not hook-succeeded: `helm test --logs` reads the logs after the pods finish, and a pod
    # deleted on success has none ("unable to get pod logs"). The next `helm test` replaces them.
    helm.sh/hook-delete-policy: before-hook-creation
    checkov.io/skip1: CKV_K8S_43=Images are pinned by tag; set toolsImage.digest to pin by digest as well.
    checkov.io/skip2: CKV_K8S_15=Pinned, immutable tags; IfNotPresent lets kind/air-gapped nodes use preloaded images (toolsImage.pullPolicy overrides).
    checkov.io/skip3: CKV_K8S_35=The clients under test (libpq, boto3, MLflow) read credentials from environment variables; they come from secretKeyRef, never literals.
    checkov.io/skip4: CKV_K8S_8=A run-to-completion test pod has nothing to probe for liveness.
    checkov.io/skip5: CKV_K8S_9=A run-to-completion test pod serves no traffic to be ready for.
spec:
  restartPolicy: Never
  serviceAccountName: {{ .serviceAccount | default (include "trainyard.platform.fullname" $root) }}
  automountServiceAccountToken: false
  {{- include "trainyard.imagePullSecrets" (dict "root" $root) | nindent 2 }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  containers:
    - name: {{ .check }}
      image: {{ include "trainyard.toolsImage" $root | quote }}
      imagePullPolicy: {{ $root.Values.toolsImage.pullPolicy }}
      command: ["python", "/scripts/smoke_test.py", {{ .check | quote }}]
      env:
        {{- .env | nindent 8 }}
        - name: HOME
          value: /tmp
      resources:
        {{- toYaml $root.Values.tests.resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: scripts
          mountPath: /scripts
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if .databaseCa }}
        {{- include "trainyard.database.caMount" (dict "root" $root) | nindent 8 }}
        {{- end }}
        {{- if .serviceAccount }}
        - name: kube-api-access
          mountPath: /var/run/secrets/kubernetes.io/serviceaccount
          readOnly: true
        {{- end }}
  volumes:
    {{- if .databaseCa }}
    {{- include "trainyard.database.caVolume" (dict "root" $root) | nindent 4 }}
    {{- end }}
    {{- if .serviceAccount }}
    - name: kube-api-access
      projected:
        defaultMode: 0444
        sources:
          - serviceAccountToken:
              path: token
              expirationSeconds: 3607
          - configMap:
              name: kube-root-ca.crt
              items:
                - key: ca.crt
                  path: ca.crt
    {{- end }}
    - name: tmp
      emptyDir: {}
    - name: scripts
      configMap:
        name: {{ include "trainyard.fullname" (dict "root" $root "component" "platform-scripts") }}
        defaultMode: 0444
{{- end -}}
