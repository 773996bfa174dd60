# shellcheck shell=bash
# Stops the agent and removes its binary, configuration, state and event log.
set -euo pipefail
service_remove agent
rm -f "$BINARY" "$STAGED" "$CONFIG" "$CONFIG.sha256" "$STATE" "$EVENTS" "$EVENTS.1"
