# shellcheck shell=bash
# Removes the CRIU binary, runc's options and the packages edge-ha installed.
set -euo pipefail
rm -f /usr/local/sbin/criu /etc/criu/runc.conf
rmdir /etc/criu 2>/dev/null || true
case "$ORIGIN" in distro*) apt_remove_ours criu ;; esac
# shellcheck disable=SC2086 # a list of package names
apt_remove_ours $RUNTIME_PACKAGES
