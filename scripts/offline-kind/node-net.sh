#!/bin/bash
# Pod network of the offline kind node image: a DaemonSet on every node (default-cni.yaml, which
# kind applies at cluster creation) runs this in the host's network namespace. kind's own CNI,
# kindnetd, is an image from a registry; this does what it does with Debian's CNI plugins: a
# ptp + host-local CNI config for this node's podCIDR (pods get routed veths, so every packet
# crosses the node's iptables), and a route to every other node's podCIDR via that node's
# InternalIP (the nodes share one L2 network).
set -uo pipefail
node=${NODE_NAME:?NODE_NAME (the downward API spec.nodeName) is not set}
sa=/var/run/secrets/kubernetes.io/serviceaccount
# kind adds CONTROL_PLANE_ENDPOINT (host:port) to the DaemonSet: the API server without the
# Service IP, which needs the pod network this sets up.
kubectl() {
  command kubectl --server="https://${CONTROL_PLANE_ENDPOINT:?}" --token="$(cat $sa/token)" \
    --certificate-authority=$sa/ca.crt "$@"
}
conf=/etc/cni/net.d/10-offline-kind.conflist

write_cni_config() { # podCIDR
  local tmp
  tmp=$(mktemp /etc/cni/net.d/.offline-kind.XXXXXX)
  cat >"$tmp" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "offline-kind",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": true,
      "mtu": 1500,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$1"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
  if ! cmp -s "$tmp" "$conf"; then mv "$tmp" "$conf"; echo "CNI config for $1 written"; else rm -f "$tmp"; fi
}

while true; do
  # name podCIDR InternalIP, one line per node
  kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name} {.spec.podCIDR} {.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}' |
    while read -r name cidr ip; do
      [[ -n "$cidr" && -n "$ip" ]] || continue
      if [[ $name == "$node" ]]; then
        write_cni_config "$cidr"
      else
        ip route replace "$cidr" via "$ip" || echo "route $cidr via $ip failed"
      fi
    done
  sleep 5
done
