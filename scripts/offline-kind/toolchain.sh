# Go builds of the cluster toolchain, from the Go module proxy only. Sourced by scripts/kind-offline
# (which provides step, log, die and the pins of versions.env); writes binaries into $BIN.
#
# k8s.io/kubernetes requires its staging modules (k8s.io/api, client-go, ...) at v0.0.0 and
# replaces them with ./staging/src/..., which a dependency's go.mod cannot do. A wrapper module
# requires k8s.io/kubernetes and replaces every staging module with its published v0.<minor>.<patch>,
# the list read from the downloaded go.mod so that it follows the version.

# Every Go build here: static, reproducible paths, no VCS stamping, no go.work of a dependency.
export CGO_ENABLED=0 GOWORK=off GOFLAGS="-buildvcs=false -modcacherw -mod=mod"

wrapper_module() { # dir module-path
  rm -rf "$1" && mkdir -p "$1" && (cd "$1" && go mod init "$2" >/dev/null 2>&1)
}

build_kubernetes() {
  local dir="$WORK/k8s" staging_version="v0.${K8S_VERSION#1.}" json gomod built ld="-s -w"
  local cmds=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubeadm kubectl)
  wrapper_module "$dir" offline.local/kubernetes
  json=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION")
  gomod=$(jq -r .GoMod <<<"$json")
  # The proxy serves no commit hash for a cached module: the tag's time stands for the build date.
  built=$(go list -m -json "k8s.io/kubernetes@v$K8S_VERSION" | jq -r .Time)
  (
    cd "$dir"
    sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$gomod" |
      while read -r m; do go mod edit -replace="$m=$m@$staging_version"; done
    go mod edit -require="k8s.io/kubernetes@v$K8S_VERSION"
    # One "main" file so that `go mod tidy` keeps every package the commands import.
    printf 'package tools\n\nimport (\n' >tools.go
    printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "${cmds[@]}" >>tools.go
    printf ')\n' >>tools.go
    go mod tidy
  )
  # kubeadm's version-skew checks and `kubectl version` read these, not the module version.
  local minor=${K8S_VERSION#1.}; minor=${minor%%.*}
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=$built"
  done
  # One `go build` of all mains shares every compiled package between them.
  (cd "$dir" && go build -p "$(nproc)" -trimpath -ldflags "$ld" -o "$BIN/" \
    "${cmds[@]/#/k8s.io/kubernetes/cmd/}")
  "$BIN/kubeadm" version -o short | grep -qx "v$K8S_VERSION" ||
    die "kubeadm reports $("$BIN/kubeadm" version -o short), expected v$K8S_VERSION"
}

# etcd's server module has replace directives, so `go install` refuses it; a wrapper builds it.
build_etcd() {
  local dir="$WORK/etcd" ld="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=offline"
  wrapper_module "$dir" offline.local/etcd
  (cd "$dir" && go mod edit -require="go.etcd.io/etcd/server/v3@v$ETCD_VERSION" &&
    printf 'package tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >tools.go && go mod tidy &&
    go build -trimpath -ldflags "$ld" -o "$BIN/etcd" go.etcd.io/etcd/server/v3)
  "$BIN/etcd" --version | grep -q "etcd Version: $ETCD_VERSION" || die "etcd --version is not $ETCD_VERSION"
}

go_install() { # module/cmd@version binary
  GOBIN="$BIN" go install -trimpath -ldflags "-s -w ${3:-}" "$1"
  [[ -x "$BIN/$2" ]] || die "go install $1 made no $2"
}

build_kind() { go_install "sigs.k8s.io/kind@v$KIND_VERSION" kind; }
build_crictl() {
  go_install "sigs.k8s.io/cri-tools/cmd/crictl@v$CRICTL_VERSION" crictl \
    "-X sigs.k8s.io/cri-tools/pkg/version.Version=v$CRICTL_VERSION"
}
build_coredns() { go_install "github.com/coredns/coredns@v$COREDNS_VERSION" coredns; }
# kwok simulates nodes and pods; kwokctl runs it with etcd and the control plane as processes
# (its "binary" runtime), the cluster of tests/cluster.
build_kwok() {
  go_install "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION" kwok
  go_install "sigs.k8s.io/kwok/cmd/kwokctl@v$KWOK_VERSION" kwokctl
}
build_local_path_provisioner() {
  go_install "github.com/rancher/local-path-provisioner@v$LOCAL_PATH_PROVISIONER_VERSION" \
    local-path-provisioner
}

# pause is C: a static binary from the Kubernetes module's own source.
build_pause() {
  local src
  src="$(go env GOMODCACHE)/k8s.io/kubernetes@v$K8S_VERSION/build/pause/linux/pause.c"
  [[ -f "$src" ]] || go mod download "k8s.io/kubernetes@v$K8S_VERSION"
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION" -o "$BIN/pause" "$src"
  strip "$BIN/pause"
}
