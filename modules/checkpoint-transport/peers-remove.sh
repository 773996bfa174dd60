# shellcheck shell=bash
# Back to the rsync daemon: the switch first, then whom this host trusted.
set -euo pipefail
rm -f "$EDGE_HA_TRANSFER_MODE" "$EDGE_HA_TRANSFER/known_hosts"
[ ! -d "$EDGE_HA_TRANSFER" ] || : >"$EDGE_HA_TRANSFER/authorized_keys"
