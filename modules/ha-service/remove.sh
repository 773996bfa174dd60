# shellcheck shell=bash
# Removes SERVICE from this host: its sync loop, its container and its checkpoints.
set -euo pipefail
sync_stop "$SERVICE"
docker rm -f "$SERVICE" >/dev/null 2>&1 || true
rm -rf "${EDGE_HA_CHECKPOINTS:?}/$SERVICE"
rm -f "$EDGE_HA_STATE/started-$SERVICE"
