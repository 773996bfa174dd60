# shellcheck shell=bash
# Removes what install.sh put in place (the services using them are gone first),
# and a drain's mark (edge-ha node drain): a host provisioned again starts undrained.
set -euo pipefail
rm -f "$LIBRARY_PATH" "$EDGE_HA_SYNC" "$CTL_PATH" "$MARKER" "$EDGE_HA_STATE/drained"
rmdir "$(dirname "$LIBRARY_PATH")" 2>/dev/null || true
# A login through sudo got its copies in its home (modules/command stagingPath): the folders go, if empty.
if [ -n "${SUDO_USER:-}" ] && home=$(getent passwd "$SUDO_USER" | cut -d: -f6) && [ -n "$home" ]; then
  rmdir "$home/.edge-ha/staged" "$home/.edge-ha" 2>/dev/null || true
fi
