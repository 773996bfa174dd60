# shellcheck shell=bash
# On the first manager: starts the swarm unless this node is in one, then
# prints the node's ID, the worker and manager join tokens, and the sha256 of
# the swarm's root CA certificate (what tells one swarm from another).
# Env: ADDR (the host's inventory address; swarm advertises its IPv4 address).
#
# A re-imaged first manager starts a new swarm (it has no way into the old
# one: the stack keeps no manager token for it, and its fellow managers may be
# gone); every other node then moves to the new one (join.sh), so the fleet
# is one swarm again.
set -euo pipefail
ip=$(getent ahostsv4 "$ADDR" | awk 'NR==1{print $1}') || true
[ -n "$ip" ] || ip=$ADDR
if [ "$(docker info -f '{{.Swarm.LocalNodeState}}')" != active ]; then
  docker swarm init --advertise-addr "$ip" --listen-addr "$ip:2377" >/dev/null
fi
docker info -f '{{.Swarm.NodeID}}'
docker swarm join-token -q worker
docker swarm join-token -q manager
sha256sum /var/lib/docker/swarm/certificates/swarm-root-ca.crt | cut -d' ' -f1
