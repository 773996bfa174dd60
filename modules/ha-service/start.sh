# shellcheck shell=bash
# On the primary: starts SERVICE (docker run arguments RUN_ARGS, one per line)
# unless its container runs here; prints "started" or "adopted". A stopped
# copy is refused: it is what a migration or failover leaves behind.
# $EDGE_HA_STATE/started-SERVICE says it was started here (rollout.sh).
set -euo pipefail
state=$(docker container inspect -f '{{.State.Status}}' "$SERVICE" 2>/dev/null) || state=absent
case "$state" in
  running)
    touch "$EDGE_HA_STATE/started-$SERVICE"
    echo "adopted" ;;
  absent)
    mapfile -t args <<<"$RUN_ARGS"
    service_replace run "$SERVICE" "${args[@]}" >/dev/null
    # Remembered: an update that finds it gone from here does not start a second copy (rollout.sh).
    touch "$EDGE_HA_STATE/started-$SERVICE"
    echo "started" ;;
  *)
    echo "$SERVICE has a $state container on $(hostname): it was moved away (migrate/failover) or stopped; 'edge-ha service status $SERVICE' tells where it runs, set primary there" >&2
    exit 1 ;;
esac
