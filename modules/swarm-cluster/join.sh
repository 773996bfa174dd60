# shellcheck shell=bash
# On every other node: joins the swarm as a worker unless this node is in
# it, then prints its node ID. Env: ADDR (as in init.sh), LEADER (the first
# manager's address), TOKEN (the worker join token, secret), SWARM_CA (the
# sha256 of the swarm's root CA certificate, init.sh; empty from stacks made
# before it was recorded).
#
# A node in another swarm (its root CA differs: the first manager was
# re-imaged and started a new one) leaves that one first; every node leaves it
# the same way, so the old swarm dissolves.
set -euo pipefail
ip=$(getent ahostsv4 "$ADDR" | awk 'NR==1{print $1}') || true
[ -n "$ip" ] || ip=$ADDR
if [ "$(docker info -f '{{.Swarm.LocalNodeState}}')" = active ] && [ -n "${SWARM_CA:-}" ] &&
  [ "$(sha256sum /var/lib/docker/swarm/certificates/swarm-root-ca.crt | cut -d' ' -f1)" != "$SWARM_CA" ]; then
  docker swarm leave --force >/dev/null
fi
if [ "$(docker info -f '{{.Swarm.LocalNodeState}}')" != active ]; then
  docker swarm join --token "$TOKEN" --advertise-addr "$ip" --listen-addr "$ip:2377" "$LEADER:2377" >/dev/null
fi
docker info -f '{{.Swarm.NodeID}}'
