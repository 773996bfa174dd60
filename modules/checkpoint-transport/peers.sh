# shellcheck shell=bash
# The other hosts of the cluster, for this host's checkpoints sshd and its
# senders: AUTHORIZED_KEYS (their client keys, each bound to its address and
# to the rsync daemon's protocol), KNOWN_HOSTS (their sshd host keys), PORT.
# Then the switch: from now on this host sends its checkpoints over SSH.
set -euo pipefail
dir=$EDGE_HA_TRANSFER
printf '%s\n' "$AUTHORIZED_KEYS" | write_if_changed "$dir/authorized_keys" 0600 || true
printf '%s\n' "$KNOWN_HOSTS" | write_if_changed "$dir/known_hosts" 0644 || true
printf 'ssh %s\n' "$PORT" | write_if_changed "$EDGE_HA_TRANSFER_MODE" 0644 || true
echo "$(hostname) sends checkpoints over SSH (port $PORT) to $(grep -c . "$dir/known_hosts") hosts"
