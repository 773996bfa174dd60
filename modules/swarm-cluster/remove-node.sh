# shellcheck shell=bash
# On the first manager: drains node NODE_ID, waits for its tasks to move,
# demotes it if it is a manager and removes it from the swarm.
set -euo pipefail
docker node inspect "$NODE_ID" >/dev/null 2>&1 || exit 0
retry 5 docker node update --availability drain "$NODE_ID" >/dev/null
tasks_gone() { [ -z "$(docker node ps -q --filter desired-state=running "$NODE_ID")" ]; }
wait_for 60 "the tasks of $NODE_ID to move away" tasks_gone || true
if [ "$(docker node inspect -f '{{.Spec.Role}}' "$NODE_ID")" = manager ]; then retry 5 docker node demote "$NODE_ID" >/dev/null; fi
retry 5 docker node rm --force "$NODE_ID" >/dev/null
