# shellcheck shell=bash
# On the primary: starts SERVICE (docker run arguments RUN_ARGS, one per line)
# unless its container runs here; prints "started" or "adopted". A stopped
# copy is refused: it is what a migration or failover leaves behind.
set -euo pipefail
state=$(docker container inspect -f '{{.State.Status}}' "$SERVICE" 2>/dev/null) || state=absent
case "$state" in
  running) echo "adopted" ;;
  absent)
    mapfile -t args <<<"$RUN_ARGS"
    service_replace run "$SERVICE" "${args[@]}" >/dev/null
    echo "started" ;;
  *)
    echo "$SERVICE has a $state container on $(hostname): it was moved away (migrate/failover) or stopped; 'edge-ha service status $SERVICE' tells where it runs, set primary there" >&2
    exit 1 ;;
esac
