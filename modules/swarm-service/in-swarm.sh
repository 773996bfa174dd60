# shellcheck shell=bash
# On the swarm manager, whenever the swarm changed (SWARM_CA: its root CA's
# sha256): fails unless swarm service SERVICE exists in it.
#
# Why: a re-imaged first manager starts a new swarm (modules/swarm-cluster
# init.sh), which holds none of the stack's swarm services, while the stack
# still records them; @pulumi/docker would neither notice nor delete them (its
# delete fails on a service that is gone). A refresh drops the record, and the
# next up makes them in the new swarm.
set -euo pipefail
if ! docker service inspect "$SERVICE" >/dev/null 2>&1; then
  echo "swarm service $SERVICE is not in this swarm (a new swarm was started, its first manager re-imaged): run pulumi refresh, then pulumi up, to make it there again" >&2
  exit 1
fi
