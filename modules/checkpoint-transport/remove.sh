# shellcheck shell=bash
# Removes the checkpoints sshd, this host's keys and its open connections to the others.
set -euo pipefail
service_remove transfer-sshd
transfer_close_all
rm -rf "$EDGE_HA_TRANSFER" "$EDGE_HA_TRANSFER_SSHD"
apt_remove_ours openssh-server openssh-client
