#!/bin/bash
# Pod network of the offline kind node image, run by systemd on every node (offline-node-net.service).
# kind's default CNI, kindnetd, is an image from a registry; this does what it does with Debian's
# CNI plugins and the node's own kubelet credentials: a ptp + host-local CNI config for this
# node's podCIDR (pods get routed veths, so every packet crosses the node's iptables), and a
# route to every other node's podCIDR via that node's InternalIP (the nodes share one L2 network).
set -uo pipefail
export KUBECONFIG=/etc/kubernetes/kubelet.conf
node=$(hostname)
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
  if [[ -f $KUBECONFIG ]]; then
    # name podCIDR InternalIP, one line per node
    kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name} {.spec.podCIDR} {.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}' 2>/dev/null |
      while read -r name cidr ip; do
        [[ -n "$cidr" && -n "$ip" ]] || continue
        if [[ $name == "$node" ]]; then
          write_cni_config "$cidr"
        else
          ip route replace "$cidr" via "$ip" 2>/dev/null || echo "route $cidr via $ip failed"
        fi
      done
  fi
  sleep 3
done
