# shellcheck shell=bash
# On every other node: joins the swarm as a worker unless this node is in
# one, then prints its node ID. Env: ADDR (as in init.sh), LEADER (the first
# manager's address), TOKEN (the worker join token, secret).
set -euo pipefail
ip=$(getent ahostsv4 "$ADDR" | awk 'NR==1{print $1}') || true
[ -n "$ip" ] || ip=$ADDR
if [ "$(docker info -f '{{.Swarm.LocalNodeState}}')" != active ]; then
  docker swarm join --token "$TOKEN" --advertise-addr "$ip" --listen-addr "$ip:2377" "$LEADER:2377" >/dev/null
fi
docker info -f '{{.Swarm.NodeID}}'
