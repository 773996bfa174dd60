# shellcheck shell=bash
# On the first manager: starts the swarm unless this node is in one, then
# prints the node's ID and the worker and manager join tokens.
# Env: ADDR (the host's inventory address; swarm advertises its IPv4 address).
set -euo pipefail
ip=$(getent ahostsv4 "$ADDR" | awk 'NR==1{print $1}') || true
[ -n "$ip" ] || ip=$ADDR
if [ "$(docker info -f '{{.Swarm.LocalNodeState}}')" != active ]; then
  docker swarm init --advertise-addr "$ip" --listen-addr "$ip:2377" >/dev/null
fi
docker info -f '{{.Swarm.NodeID}}'
docker swarm join-token -q worker
docker swarm join-token -q manager
