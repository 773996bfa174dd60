# shellcheck shell=bash
# The rsync daemon, supervised. Env: RSYNCD_CONF, DAEMON_USER, RSYNC_SECRET
# (the module user's password; also the client password file every host
# pushes with), PORT.
set -euo pipefail
apt_install rsync
mkdir -p "$EDGE_HA_CHECKPOINTS" "$EDGE_HA_ARTIFACTS"
changed=0
printf '%s' "$RSYNCD_CONF" | write_if_changed /etc/edge-ha/rsyncd.conf 0644 && changed=1
printf '%s:%s\n' "$DAEMON_USER" "$RSYNC_SECRET" | write_if_changed /etc/edge-ha/rsyncd.secrets 0600 && changed=1
printf '%s\n' "$RSYNC_SECRET" | write_if_changed "$RSYNC_PASSWORD_FILE" 0600 || true
# For the clients here (the sync loop, a migration's send): the port every host's daemon listens on.
printf '%s\n' "$PORT" | write_if_changed "$RSYNC_PORT_FILE" 0644 || true
service_install rsyncd /usr/bin/rsync --daemon --no-detach --config=/etc/edge-ha/rsyncd.conf
if [ $changed = 1 ]; then service_restart rsyncd; else service_start rsyncd; fi
wait_for 10 "the rsync daemon on port $PORT" rsync --list-only --port="$PORT" --password-file="$RSYNC_PASSWORD_FILE" "rsync://$DAEMON_USER@127.0.0.1/"
echo "$(hostname) rsync daemon on port $PORT"
