# shellcheck shell=bash
# Stops SERVICE's sync loop here (a no-op where none runs).
set -euo pipefail
sync_stop "$SERVICE"
