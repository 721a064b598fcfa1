# The kind node image without a registry: what `kind build node-image` produces, assembled from
# Debian packages, kind's own node files (images/base/files of the kind module) and the toolchain
# in $BIN. Sourced by scripts/kind-offline.
#
# `kind build node-image` cannot run offline: it pulls its base image and `ctr content fetch`es
# etcd, CoreDNS, pause and kindnetd from registries. Here every image is made locally and imported
# into the node's containerd before the node image is committed, exactly where kind puts them.

KIND_NODE_IMAGE="trainyard-offline/kind-node:v$K8S_VERSION"
KIND_BASE_IMAGE="trainyard-offline/kind-base:$DEBIAN_SUITE"
# kind's default storage, as in its own node image: local-path-provisioner + a shell helper image.
LOCAL_PATH_IMAGE="trainyard-offline/local-path-provisioner:v$LOCAL_PATH_PROVISIONER_VERSION"
# The pod network's DaemonSet (default-cni.yaml, node-net.sh): iproute2, bash and kubectl.
NODE_NET_IMAGE="trainyard-offline/node-net:v$K8S_VERSION"
# Debian's busybox-static with every applet: the helper pods of local-path's volumes.
BUSYBOX_IMAGE="trainyard-offline/busybox:1.35-$DEBIAN_SUITE"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

kind_module_dir() { go mod download -json "sigs.k8s.io/kind@v$KIND_VERSION" | jq -r .Dir; }

# The pause image kind's containerd config pins (kind's build tags pause with it).
kind_sandbox_image() {
  sed -n 's/^[[:space:]]*sandbox_image = "\(.*\)"/\1/p' \
    "$(kind_module_dir)/images/base/files/etc/containerd/config.toml"
}

# debootstrap SUITE ROOTFS PACKAGES...: a minbase rootfs with those packages, no apt lists.
debootstrap_rootfs() {
  local root=$1; shift
  rm -rf "$root"
  debootstrap --variant=minbase --include="$(IFS=,; echo "$*")" "$DEBIAN_SUITE" "$root" "$DEBIAN_MIRROR"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/var/log/*.log "$root"/var/log/apt/*
}

# docker_import ROOTFS TAG [--change ...]: the folder as a one-layer image.
docker_import() {
  local root=$1 tag=$2; shift 2
  tar --numeric-owner -C "$root" -c . | docker import "$@" - "$tag" >/dev/null
  docker image inspect "$tag" >/dev/null
}

# A static binary (and a /tmp) as the whole image: etcd, the control plane, CoreDNS, pause.
scratch_image() { # tag entrypoint binary...
  local tag=$1 entry=$2 dir; shift 2
  dir=$(mktemp -d "$WORK/scratch.XXXXXX")
  mkdir -p "$dir/usr/local/bin" "$dir/tmp" "$dir/etc"
  chmod 1777 "$dir/tmp"
  for b in "$@"; do cp "$BIN/$b" "$dir/usr/local/bin/"; done
  # CoreDNS and kube-* look users and hosts up; a minimal passwd/nsswitch keeps them quiet.
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n' >"$dir/etc/passwd"
  printf 'hosts: files dns\n' >"$dir/etc/nsswitch.conf"
  docker_import "$dir" "$tag" --change "ENTRYPOINT [\"$entry\"]" \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin'
  rm -rf "$dir"
}

# The kind base image: kind's Dockerfile of images/base, with Debian's containerd, runc and CNI
# plugins instead of Go builds from GitHub. bookworm, for systemd 252 (cgroup v1 hosts).
build_kind_base() {
  local root="$WORK/kind-base" files
  files="$(kind_module_dir)/images/base/files"
  debootstrap_rootfs "$root" systemd conntrack iptables nftables iproute2 ethtool util-linux mount \
    kmod libseccomp2 pigz fuse-overlayfs e2fsprogs bash ca-certificates curl jq procps \
    containerd runc containernetworking-plugins dbus
  # kind's node files, with the modes its Dockerfile gives them.
  install -d -m 0755 "$root/kind" "$root/kind/bin" "$root/LICENSES"
  cp -r "$files/kind/." "$root/kind/"
  cp -r "$files/etc/." "$root/etc/"
  cp "$files/usr/local/bin/"* "$root/usr/local/bin/"
  chmod -R u+w,go-w,a+rX "$root/kind" "$root/etc/systemd" "$root/etc/containerd" \
    "$root/etc/sysctl.d" "$root/etc/default" "$root/etc/crictl.yaml"
  chmod 0755 "$root"/kind/bin/* "$root"/usr/local/bin/*
  # kind's units run /usr/local/bin/containerd; Debian installs it (and the shim) in /usr/bin.
  ln -sf /usr/bin/containerd "$root/usr/local/bin/containerd"
  install -d "$root/opt/cni"
  ln -sfn /usr/lib/cni "$root/opt/cni/bin"
  install -m 0755 "$LIB/containerd-caps.sh" "$root/kind/bin/offline-containerd-caps.sh"
  install -d "$root/etc/systemd/system/containerd.service.d"
  printf '[Service]\nExecStartPre=/kind/bin/offline-containerd-caps.sh\n' \
    >"$root/etc/systemd/system/containerd.service.d/10-offline-kind.conf"
  chroot "$root" sh -euc '
    find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete
    rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \
      /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \
      /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/*
    echo ReadKMsg=no >>/etc/systemd/journald.conf
    ln -sf /usr/lib/systemd/systemd /sbin/init
    systemctl enable kubelet.service containerd.service undo-mount-hacks.service
    systemctl mask systemd-binfmt.service
    mkdir -p /etc/kubernetes/manifests /etc/cni/net.d
    ctr oci spec \
      | jq ".hooks.createContainer[.hooks.createContainer|length] |= . + {\"path\": \"/kind/bin/mount-product-files.sh\"}" \
      | jq "del(.process.rlimits)" >/etc/containerd/cri-base.json
    containerd --version'
  docker_import "$root" "$KIND_BASE_IMAGE" \
    --change 'ENV container=docker' \
    --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]'
  rm -rf "$root"
}

# The images kubeadm runs (`kubeadm config images list`), built from $BIN, tagged as it asks.
build_component_images() {
  local registry=registry.k8s.io v="v$K8S_VERSION" c sandbox
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    scratch_image "$registry/$c:$v" "/usr/local/bin/$c" "$c"
  done
  scratch_image "$registry/etcd:$ETCD_IMAGE_TAG" /usr/local/bin/etcd etcd
  scratch_image "$registry/coredns/coredns:v$COREDNS_VERSION" /usr/local/bin/coredns coredns
  scratch_image "$registry/pause:$PAUSE_VERSION" /usr/local/bin/pause pause
  scratch_image "$LOCAL_PATH_IMAGE" /usr/local/bin/local-path-provisioner local-path-provisioner
  build_busybox_image
  sandbox=$(kind_sandbox_image)
  [[ -n "$sandbox" ]] && docker tag "$registry/pause:$PAUSE_VERSION" "$sandbox"
  # kube-proxy programs iptables: it needs the iptables/conntrack tools in its image.
  local root="$WORK/kube-proxy"
  debootstrap_rootfs "$root" iptables nftables conntrack kmod iproute2
  cp "$BIN/kube-proxy" "$root/usr/local/bin/kube-proxy"
  docker_import "$root" "$registry/kube-proxy:$v" --change 'ENTRYPOINT ["/usr/local/bin/kube-proxy"]'
  # The same Debian tools run the pod network of every node, with kubectl and node-net.sh.
  rm "$root/usr/local/bin/kube-proxy"
  cp "$BIN/kubectl" "$root/usr/local/bin/kubectl"
  install -m 0755 "$LIB/node-net.sh" "$root/usr/local/bin/node-net.sh"
  docker_import "$root" "$NODE_NET_IMAGE" --change 'ENTRYPOINT ["/usr/local/bin/node-net.sh"]'
  rm -rf "$root"
  # Every image kubeadm lists must now exist (a version bump that adds one fails here).
  local want
  for want in $("$BIN/kubeadm" config images list --kubernetes-version "$v" 2>/dev/null); do
    docker image inspect "$want" >/dev/null || die "kubeadm needs $want, which was not built"
  done
}

build_busybox_image() {
  local root="$WORK/busybox" small="$WORK/busybox-small"
  debootstrap_rootfs "$root" busybox-static
  rm -rf "$small" && mkdir -p "$small/bin" "$small/tmp" "$small/etc"
  cp "$root/bin/busybox" "$small/bin/busybox"
  chroot "$small" /bin/busybox --install -s /bin
  chmod 1777 "$small/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$small/etc/passwd"
  docker_import "$small" "$BUSYBOX_IMAGE" --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]'
  rm -rf "$root" "$small"
  docker run --rm "$BUSYBOX_IMAGE" sh -c 'mkdir -p /tmp/x && rm -r /tmp/x && echo busybox works'
}

# kind's default-storage manifest (pkg/build/nodeimage/const_storage.go of the kind module), read
# from the module at build time, with the locally built provisioner and helper images.
default_storage_manifest() {
  python3 - "$(kind_module_dir)/pkg/build/nodeimage/const_storage.go" "$LOCAL_PATH_IMAGE" "$BUSYBOX_IMAGE" <<'PY'
import re, sys
source, provisioner, helper = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(source).read()
manifest = re.search(r"const defaultStorageManifest = `(.*)`\s*\Z", text, re.S)
if manifest is None:
    sys.exit(f"no defaultStorageManifest in {source}")
body = re.sub(r"` \+ storageProvisionerImage \+ `", provisioner, manifest.group(1))
body = re.sub(r"` \+ storageHelperImage \+ `", helper, body)
if "` +" in body:
    sys.exit(f"defaultStorageManifest in {source} has other substitutions")
print(body)
PY
}

component_image_refs() {
  echo "$LOCAL_PATH_IMAGE"
  echo "$BUSYBOX_IMAGE"
  echo "$NODE_NET_IMAGE"
  "$BIN/kubeadm" config images list --kubernetes-version "v$K8S_VERSION" 2>/dev/null
  kind_sandbox_image
}

# kind's buildcontext: kubeadm/kubelet/kubectl into /usr/bin, /kind/version, the images imported
# into containerd's k8s.io namespace and pinned, then `docker commit`.
build_kind_node() {
  local name="trainyard-offline-node-build"
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker run -d --name "$name" --privileged --entrypoint=sleep "$KIND_BASE_IMAGE" infinity >/dev/null
  for b in kubeadm kubelet kubectl; do docker cp "$BIN/$b" "$name:/usr/bin/$b"; done
  docker cp "$BIN/crictl" "$name:/usr/local/bin/crictl"
  docker exec "$name" sh -c "echo v$K8S_VERSION >/kind/version"
  # kind applies /kind/manifests/default-cni.yaml when the cluster keeps its default CNI.
  sed "s|NODE_NET_IMAGE|$NODE_NET_IMAGE|" "$LIB/default-cni.yaml" |
    docker exec -i "$name" sh -c 'mkdir -p /kind/manifests && cat >/kind/manifests/default-cni.yaml'
  default_storage_manifest | docker exec -i "$name" sh -c 'cat >/kind/manifests/default-storage.yaml'
  docker exec "$name" sh -c 'nohup containerd >/var/log/containerd-build.log 2>&1 &
    for i in $(seq 60); do ctr version >/dev/null 2>&1 && exit 0; sleep 0.5; done; exit 1'
  # shellcheck disable=SC2046
  docker save $(component_image_refs) |
    docker exec -i "$name" ctr --namespace=k8s.io images import --all-platforms --no-unpack --digests -
  docker exec "$name" sh -euc '
    for ref in $(ctr --namespace=k8s.io images list --quiet); do
      ctr --namespace=k8s.io images label "$ref" io.cri-containerd.pinned=pinned >/dev/null
    done
    ctr --namespace=k8s.io images list --quiet
    pkill containerd; sleep 1; rm -f /var/log/containerd-build.log'
  docker commit --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
    --change 'CMD []' "$name" "$KIND_NODE_IMAGE-commit" >/dev/null
  docker rm -f "$name" >/dev/null
  # systemd stops cleanly on SIGRTMIN+3. Neither `docker import` nor `commit` can set a stop
  # signal; a one-line build on the local image can (FROM a local image pulls nothing).
  printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\n' "$KIND_NODE_IMAGE-commit" |
    DOCKER_BUILDKIT=0 docker build --quiet --tag "$KIND_NODE_IMAGE" - >/dev/null
  docker rmi "$KIND_NODE_IMAGE-commit" >/dev/null
}
