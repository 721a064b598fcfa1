#!/bin/sh
# Run before containerd in the offline kind node (containerd.service drop-in). Where the node's
# capability bounding set lacks CAP_SYS_RESOURCE (bit 24), runc cannot lower a container's
# oom_score_adj, and every pod sandbox (the kubelet asks for -998) fails with "can't get final
# child's PID from pipe". containerd's restrict_oom_score_adj clamps the request to containerd's
# own score instead, as kind already does for rootless nodes. A full bounding set changes nothing.
set -eu
bounding=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
if [ $(((0x$bounding >> 24) & 1)) -eq 0 ]; then
  sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' /etc/containerd/config.toml
  echo "no CAP_SYS_RESOURCE in the bounding set: containerd restricts oom_score_adj"
fi
