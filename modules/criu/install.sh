# shellcheck shell=bash
# On every node: installs the staged CRIU (pulled from the first node of the
# architecture's rsync daemon and checked against the sha256 it reported),
# or the distro's package, and runc's options for it. Prints the origin and
# the version. Env: ORIGIN, CRIU_SHA256, FROM_HOST (empty on the first node),
# RSYNC_PORT, RUNC_CONF, RUNTIME_PACKAGES, STAGE.
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
printf '%s' "$RUNC_CONF" | write_if_changed /etc/criu/runc.conf 0644 || true
echo "$ORIGIN"
"$bin" --version | sed -n 1p
