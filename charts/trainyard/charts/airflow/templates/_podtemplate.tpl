{{- define "airflow.podTemplate" -}}
apiVersion: v1
kind: Pod
metadata:
  name: airflow-worker
  labels:
    {{- include "airflow.labels" (dict "root" . "component" "worker") | nindent 4 }}
spec:
  serviceAccountName: {{ include "airflow.componentName" (dict "root" . "component" "worker") }}
  automountServiceAccountToken: false
  restartPolicy: Never
  {{- include "trainyard.imagePullSecrets" (dict "root" .) | nindent 2 }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    # No command: the image entrypoint runs the args the executor sets.
    - name: base
      image: {{ include "airflow.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      envFrom:
        - configMapRef:
            name: {{ include "trainyard.fullname" (dict "root" . "component" "airflow-config") }}
      env:
        {{- include "airflow.secretEnv" (dict "root" . "full" false) | nindent 8 }}
      ports:
        - name: worker-logs
          containerPort: 8793
          protocol: TCP
      resources:
        {{- toYaml .Values.workers.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        {{- include "airflow.commonMounts" . | nindent 8 }}
        {{- include "airflow.tokenMount" . | nindent 8 }}
  volumes:
    {{- include "airflow.commonVolumes" . | nindent 4 }}
    {{- include "airflow.tokenVolume" . | nindent 4 }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
