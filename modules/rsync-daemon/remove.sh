# shellcheck shell=bash
# Removes the daemon, its settings, and the checkpoints and artifacts it held.
set -euo pipefail
service_remove rsyncd
rm -rf /etc/edge-ha/rsyncd.conf /etc/edge-ha/rsyncd.secrets "$RSYNC_PASSWORD_FILE" "$RSYNC_PORT_FILE" "$EDGE_HA_CHECKPOINTS" "$EDGE_HA_ARTIFACTS"
apt_remove_ours rsync
