# A Docker engine that can run kind's privileged nodes here. Sourced by scripts/kind-offline.
#
# kind runs every node with `docker run --privileged`, for which Docker asks the kernel for every
# capability it knows. On a host whose capability bounding set lacks one (seen: CAP_SYS_RESOURCE)
# runc fails with "unable to apply caps: operation not permitted". There, and only there, the
# runc-capdrop wrapper becomes Docker's default runtime (daemon.json, so any later `dockerd`
# start keeps it). A host with a full bounding set is left exactly as it is.

CAPDROP_RUNTIME=trainyard-capdrop
CAPDROP_PATH=/usr/local/sbin/trainyard-runc-capdrop
DAEMON_JSON=${DOCKER_DAEMON_JSON:-/etc/docker/daemon.json}

# Capabilities 0..40 (through CAP_CHECKPOINT_RESTORE, the last one Docker knows): all present?
bounding_set_is_full() {
  local bounding
  bounding=$((16#$(awk '/^CapBnd:/ {print $2}' /proc/self/status)))
  (((bounding & ((1 << 41) - 1)) == (1 << 41) - 1))
}

docker_running() { docker info --format '{{.ServerVersion}}' >/dev/null 2>&1; }

start_dockerd() {
  local dockerd
  dockerd=$(PATH="$PATH:/usr/sbin:/sbin" command -v dockerd) ||
    die "dockerd not installed (scripts/bootstrap-docker --install)"
  log "starting dockerd (log: $LOGS/dockerd.log)"
  setsid "$dockerd" >>"$LOGS/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 120); do docker_running && return 0; sleep 0.5; done
  tail -n 20 "$LOGS/dockerd.log" >&2
  die "dockerd did not answer within 60 s; log: $LOGS/dockerd.log"
}

install_capdrop_runtime() {
  install -D -m 0755 "$LIB/runc-capdrop" "$CAPDROP_PATH"
  mkdir -p "$(dirname "$DAEMON_JSON")"
  local current='{}' tmp
  [[ -s "$DAEMON_JSON" ]] && current=$(cat "$DAEMON_JSON")
  tmp=$(mktemp)
  jq --arg name "$CAPDROP_RUNTIME" --arg path "$CAPDROP_PATH" \
    '.runtimes[$name] = {path: $path} | ."default-runtime" = $name' <<<"$current" >"$tmp"
  if ! cmp -s "$tmp" "$DAEMON_JSON"; then
    mv "$tmp" "$DAEMON_JSON"
    log "runtime: $CAPDROP_RUNTIME is Docker's default runtime ($DAEMON_JSON)"
    # dockerd reloads runtimes and default-runtime on SIGHUP.
    if docker_running; then pkill -HUP -x dockerd; sleep 1; fi
  else
    rm -f "$tmp"
  fi
}

# Docker is running and can start a privileged container.
ensure_docker() {
  command -v docker >/dev/null || die "docker not installed (scripts/bootstrap-docker --install)"
  if bounding_set_is_full; then
    log "runtime: full capability bounding set, Docker's own runc is used"
  else
    log "runtime: the bounding set lacks capabilities ($(awk '/^CapBnd:/ {print $2}' /proc/self/status)): using runc-capdrop"
    install_capdrop_runtime
  fi
  docker_running || start_dockerd
  if ! bounding_set_is_full; then
    [[ $(docker info --format '{{.DefaultRuntime}}') == "$CAPDROP_RUNTIME" ]] ||
      die "dockerd's default runtime is not $CAPDROP_RUNTIME; restart dockerd to read $DAEMON_JSON"
  fi
}
