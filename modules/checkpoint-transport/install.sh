# shellcheck shell=bash
# edge-ha's own sshd for checkpoints, supervised, and this host's two keys
# (made here once: the private halves never leave the host). Env: SSHD_CONFIG,
# PORT. Prints the public keys, "host-key TYPE KEY" and "client-key TYPE KEY",
# for the other hosts' known_hosts and authorized_keys (peers.sh).
set -euo pipefail
# rsync: the protocol run inside SSH; sshd and ssh: most hosts have them already.
apt_install rsync openssh-server openssh-client
dir=$EDGE_HA_TRANSFER
mkdir -p "$dir"
chmod 0700 "$dir"
for key in host_key client_key; do
  [ -s "$dir/$key" ] || ssh-keygen -q -t ed25519 -N '' -C "edge-ha $key $(hostname)" -f "$dir/$key"
done
[ -f "$dir/authorized_keys" ] || install -m 0600 /dev/null "$dir/authorized_keys"
changed=0
printf '%s\n' "$SSHD_CONFIG" | write_if_changed "$dir/sshd_config" 0600 && changed=1
# sshd wants its privilege separation folder, which is on /run: made at every start.
printf '#!/bin/sh\n# edge-ha: the checkpoints sshd (modules/checkpoint-transport).\nmkdir -p /run/sshd\nexec /usr/sbin/sshd -D -e -f %s/sshd_config\n' "$dir" |
  write_if_changed "$EDGE_HA_TRANSFER_SSHD" 0755 && changed=1
mkdir -p /run/sshd
/usr/sbin/sshd -t -f "$dir/sshd_config"
service_install transfer-sshd "$EDGE_HA_TRANSFER_SSHD"
if [ $changed = 1 ]; then service_restart transfer-sshd; else service_start transfer-sshd; fi
wait_for 10 "edge-ha's checkpoints sshd on port $PORT" ssh-keyscan -t ed25519 -p "$PORT" -T 1 127.0.0.1
echo "host-key $(cut -d' ' -f1,2 "$dir/host_key.pub")"
echo "client-key $(cut -d' ' -f1,2 "$dir/client_key.pub")"
