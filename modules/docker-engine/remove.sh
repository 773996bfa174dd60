# shellcheck shell=bash
# Stops and removes the engine only when edge-ha installed it (its first
# package is on edge-ha's list); /var/lib/docker (images, volumes) stays.
set -euo pipefail
# Logins that install.sh put in the docker group leave it.
for added in "$EDGE_HA_STATE"/docker-group/*; do
  [ -e "$added" ] || continue
  gpasswd -d "$(basename "$added")" docker >/dev/null 2>&1 || true
  rm -f "$added"
done
rmdir "$EDGE_HA_STATE/docker-group" 2>/dev/null || true
first=${PACKAGES%% *}
if [ -e "$EDGE_HA_STATE/installed/$first" ]; then
  if has_systemd; then systemctl disable -q --now docker docker.socket 2>/dev/null || true; else service_remove dockerd; fi
  rm -f /etc/docker/daemon.json
  # shellcheck disable=SC2086 # a list of package names
  apt_remove_ours $PACKAGES
fi
