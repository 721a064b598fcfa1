{{/*
Who may use the UI and the REST API (`auth`): the FAB auth manager (default) or Airflow's
SimpleAuthManager. Everything that differs between the two is here.
*/}}

{{- define "airflow.auth.isFab" -}}
{{- if eq .Values.auth.manager "fab" }}true{{ end -}}
{{- end -}}

{{/* Airflow settings of the chosen manager, section -> key -> value (merged into airflow.config). */}}
{{- define "airflow.auth.config" -}}
{{- if include "airflow.auth.isFab" . -}}
core:
  auth_manager: airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager
fab:
  # Absent in the components that do not mount it: FAB then keeps its defaults (database login).
  config_file: /opt/airflow/fab/webserver_config.py
{{- else -}}
core:
  auth_manager: airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
  simple_auth_manager_users: {{ printf "%s:admin" .Values.auth.adminUsername | quote }}
  simple_auth_manager_passwords_file: /opt/airflow/auth/passwords.json
{{- end -}}
{{- end -}}

{{/* Where the LDAP server's CA Secret (auth.fab.ldap.caSecret) is mounted, and its name when LDAP
sign-in has one (empty otherwise): FAB's settings, the volume and the mount agree through these. */}}
{{- define "airflow.fab.ldapCaFolder" -}}/opt/airflow/fab/ldap-ca{{- end -}}

{{- define "airflow.fab.ldapCaSecret" -}}
{{- if and (include "airflow.auth.isFab" .) (eq .Values.auth.fab.type "ldap") }}{{ .Values.auth.fab.ldap.caSecret }}{{ end -}}
{{- end -}}

{{/* FAB signs users in with passwords: the migration creates the first admin from the Secret. */}}
{{- define "airflow.auth.createsAdmin" -}}
{{- if and (include "airflow.auth.isFab" .) (eq .Values.auth.fab.type "db") }}true{{ end -}}
{{- end -}}

{{- define "airflow.fab.configMapName" -}}
{{- include "trainyard.fullname" (dict "root" . "component" "airflow-fab-config") -}}
{{- end -}}

{{/*
FAB's settings as data: webserver_config.py loads them from this JSON and reads the secrets
(client secrets, LDAP bind password) from environment variables the api-server gets from
Secrets, so the ConfigMap holds none.
*/}}
{{- define "airflow.fab.settings" -}}
{{- $fab := .Values.auth.fab -}}
{{- $settings := dict
  "AUTH_TYPE" $fab.type
  "AUTH_USER_REGISTRATION" $fab.userRegistration
  "AUTH_USER_REGISTRATION_ROLE" $fab.userRegistrationRole
  "AUTH_ROLES_MAPPING" $fab.rolesMapping
  "AUTH_ROLES_SYNC_AT_LOGIN" $fab.rolesSyncAtLogin
-}}
{{- if eq $fab.type "oauth" }}
{{- $providers := list }}
{{- range $i, $p := $fab.oauth.providers }}
{{- $remote := dict "client_id" $p.clientId "client_kwargs" (dict "scope" ($p.scope | default "openid email profile")) }}
{{- range $key, $field := dict "server_metadata_url" "serverMetadataUrl" "api_base_url" "apiBaseUrl" "access_token_url" "accessTokenUrl" "authorize_url" "authorizeUrl" }}
{{- with index $p $field }}{{ $_ := set $remote $key . }}{{ end }}
{{- end }}
{{- $remote = merge $remote ($p.extra | default dict) }}
{{- $providers = append $providers (dict "name" $p.name "icon" ($p.icon | default "fa-key") "token_key" "access_token" "remote_app" $remote "client_secret_env" (printf "TRAINYARD_OAUTH_%d_CLIENT_SECRET" $i)) }}
{{- end }}
{{- $_ := set $settings "OAUTH_PROVIDERS" $providers }}
{{- end }}
{{- if eq $fab.type "ldap" }}
{{- $ldap := $fab.ldap }}
{{- $_ := set $settings "AUTH_LDAP_SERVER" $ldap.server }}
{{- $_ := set $settings "AUTH_LDAP_SEARCH" $ldap.search }}
{{- $_ := set $settings "AUTH_LDAP_UID_FIELD" $ldap.uidField }}
{{- $_ := set $settings "AUTH_LDAP_BIND_USER" $ldap.bindUser }}
{{- $_ := set $settings "AUTH_LDAP_USE_TLS" $ldap.useTls }}
{{- $_ := set $settings "AUTH_LDAP_FIRSTNAME_FIELD" $ldap.firstNameField }}
{{- $_ := set $settings "AUTH_LDAP_LASTNAME_FIELD" $ldap.lastNameField }}
{{- $_ := set $settings "AUTH_LDAP_EMAIL_FIELD" $ldap.emailField }}
{{- $_ := set $settings "AUTH_LDAP_GROUP_FIELD" $ldap.groupField }}
{{- if include "airflow.fab.ldapCaSecret" . }}
{{- $_ := set $settings "AUTH_LDAP_TLS_CACERTFILE" (printf "%s/ca.crt" (include "airflow.fab.ldapCaFolder" .)) }}
{{- end }}
{{- end }}
{{- toJson $settings -}}
{{- end -}}

{{/* The api-server's env for FAB's secrets (OAuth client secrets, LDAP bind password). */}}
{{- define "airflow.fab.secretEnv" -}}
{{- if include "airflow.auth.isFab" . }}
{{- $fab := .Values.auth.fab }}
{{- if eq $fab.type "oauth" }}
{{- range $i, $p := $fab.oauth.providers }}
- name: {{ printf "TRAINYARD_OAUTH_%d_CLIENT_SECRET" $i }}
  valueFrom:
    secretKeyRef:
      name: {{ $p.clientSecret.existingSecret | quote }}
      key: {{ $p.clientSecret.key | quote }}
{{- end }}
{{- end }}
{{- if and (eq $fab.type "ldap") $fab.ldap.bindPassword.existingSecret }}
- name: TRAINYARD_LDAP_BIND_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $fab.ldap.bindPassword.existingSecret | quote }}
      key: {{ $fab.ldap.bindPassword.key | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Volumes of the api-server (and the migration that creates the first admin). */}}
{{- define "airflow.auth.volumes" -}}
{{- if include "airflow.auth.isFab" . }}
- name: fab-config
  configMap:
    name: {{ include "airflow.fab.configMapName" . }}
{{- with include "airflow.fab.ldapCaSecret" . }}
- name: ldap-ca
  secret:
    secretName: {{ . | quote }}
    defaultMode: 0444
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- else }}
- name: passwords
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
- name: passwords-secret
  secret:
    secretName: {{ include "airflow.passwordsSecretName" . }}
    defaultMode: 0440
    items:
      - key: passwords.json
        path: passwords.json
{{- end }}
{{- end -}}

{{- define "airflow.auth.mounts" -}}
{{- if include "airflow.auth.isFab" . }}
- name: fab-config
  mountPath: /opt/airflow/fab
  readOnly: true
{{- if include "airflow.fab.ldapCaSecret" . }}
- name: ldap-ca
  mountPath: {{ include "airflow.fab.ldapCaFolder" . }}
  readOnly: true
{{- end }}
{{- else }}
- name: passwords
  mountPath: /opt/airflow/auth
{{- end }}
{{- end -}}

{{/*
Init containers the api-server needs before it starts. SimpleAuthManager opens its passwords
file for writing ("a+", "r+") at startup and at every login: a Secret volume is read-only, so
the file is copied to an emptyDir. FAB needs none.
*/}}
{{- define "airflow.auth.apiServerInit" -}}
{{- if not (include "airflow.auth.isFab" .) }}
- name: passwords-file
  image: {{ include "airflow.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  # Owner-writable (the Secret file is 0440).
  command: ["install", "-m", "0600", "/opt/airflow/auth-secret/passwords.json", "/opt/airflow/auth/passwords.json"]
  resources:
    {{- toYaml .Values.migrations.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: passwords-secret
      mountPath: /opt/airflow/auth-secret
      readOnly: true
    - name: passwords
      mountPath: /opt/airflow/auth
{{- end }}
{{- end -}}

{{/*
What follows `airflow db migrate` (which also migrates FAB's tables) in the migration init
container, as one shell command: FAB's roles (`sync-perm`), then the first admin when FAB signs
users in with passwords. `users create` leaves an existing user alone, so a password changed in
Airflow is kept; Airflow's CLI action log masks the --password value.
*/}}
{{- define "airflow.auth.afterMigrate" -}}
{{- if include "airflow.auth.isFab" . -}}
airflow sync-perm
{{- if include "airflow.auth.createsAdmin" . }} && airflow users create --role Admin --username {{ .Values.auth.adminUsername | squote }} --email {{ .Values.auth.adminEmail | squote }} --firstname Airflow --lastname Admin --password "$TRAINYARD_ADMIN_PASSWORD"
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "airflow.auth.adminPasswordEnv" -}}
{{- if include "airflow.auth.createsAdmin" . }}
- name: TRAINYARD_ADMIN_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "airflow.passwordsSecretName" . | quote }}
      key: admin-password
{{- end }}
{{- end -}}
