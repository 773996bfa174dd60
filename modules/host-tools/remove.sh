# shellcheck shell=bash
# Removes what install.sh put in place (the services using them are gone first).
set -euo pipefail
rm -f "$LIBRARY_PATH" "$EDGE_HA_SYNC" "$CTL_PATH" "$MARKER"
rmdir "$(dirname "$LIBRARY_PATH")" 2>/dev/null || true
