# shellcheck shell=bash
# Removes the CRIU binary, its configuration files and the packages edge-ha
# installed (a default.conf only if edge-ha wrote it).
set -euo pipefail
rm -f /usr/local/sbin/criu /etc/criu/runc.conf "$EDGE_HA_CRIU_LEAVE_RUNNING_CONF"
! criu_conf_ours /etc/criu/default.conf || rm -f /etc/criu/default.conf
rmdir /etc/criu 2>/dev/null || true
case "$ORIGIN" in distro*) apt_remove_ours criu ;; esac
# shellcheck disable=SC2086 # a list of package names
apt_remove_ours $RUNTIME_PACKAGES
