# shellcheck shell=bash
# On every node: installs the staged CRIU (pulled from the first node of the
# architecture's rsync daemon and checked against the sha256 it reported),
# or the distro's package, and runc's options for it. Prints the origin and
# the version. Env: ORIGIN, CRIU_SHA256, FROM_HOST (empty on the first node),
# RSYNC_PORT, RUNC_CONF, DEFAULT_CONF, LEAVE_RUNNING_CONF, RUNTIME_PACKAGES,
# STAGE.
set -euo pipefail
# shellcheck disable=SC2086 # a list of package names
apt_install $RUNTIME_PACKAGES
case "$ORIGIN" in
  distro*) apt_install criu; bin=$(command -v criu) ;;
  *)
    from=$STAGE/criu
    if [ -n "$FROM_HOST" ]; then
      apt_install rsync
      from=/var/tmp/edge-ha-criu.pulled
      rsync -q --port="$RSYNC_PORT" --password-file="$RSYNC_PASSWORD_FILE" "rsync://$RSYNC_USER@$FROM_HOST/$EDGE_HA_ARTIFACTS_MODULE/criu/criu" "$from" ||
        { echo "cannot pull CRIU from the rsync daemon of $FROM_HOST (port $RSYNC_PORT) to $(hostname)" >&2; exit 1; }
    fi
    install_staged "$from" /usr/local/sbin/criu "$CRIU_SHA256" 0755
    [ -z "$FROM_HOST" ] || rm -f "$from"
    bin=/usr/local/sbin/criu ;;
esac
out=$("$bin" check 2>&1) || { echo "$out" | tail -n 5 >&2; echo "CRIU ($ORIGIN) fails 'criu check' on $(hostname), kernel $(uname -r)" >&2; exit 1; }
mkdir -p /etc/criu
# CRIU reads default.conf, then CRIU_CONFIG_FILE (the sync's: no network lock), then runc.conf,
# each overriding the one before; so the network lock of Docker's dumps and restores goes in
# default.conf (modules/criu/index.ts says why). A default.conf that is not edge-ha's is left as
# it is, and the lock goes in runc.conf instead, where it holds for the sync's dumps too.
printf '%s' "$LEAVE_RUNNING_CONF" | write_if_changed "$EDGE_HA_CRIU_LEAVE_RUNNING_CONF" 0644 || true
if [ ! -e /etc/criu/default.conf ] || criu_conf_ours /etc/criu/default.conf; then
  printf '%s' "$DEFAULT_CONF" | write_if_changed /etc/criu/default.conf 0644 || true
  printf '%s' "$RUNC_CONF" | write_if_changed /etc/criu/runc.conf 0644 || true
else
  echo "warning: /etc/criu/default.conf on $(hostname) is not edge-ha's: left as it is, and the network lock set in runc.conf, so the sync's checkpoints drop new connections while they dump (clients resend a SYN 1 s later)" >&2
  { printf '%s' "$RUNC_CONF"; printf '%s' "$DEFAULT_CONF" | grep '^network-lock'; } | write_if_changed /etc/criu/runc.conf 0644 || true
fi
echo "$ORIGIN"
"$bin" --version | sed -n 1p
