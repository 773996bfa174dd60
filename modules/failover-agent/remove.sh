# shellcheck shell=bash
# Stops the agent and its watchdog and removes their binaries, configuration,
# state, lease file and event log.
set -euo pipefail
service_remove watchdog
service_remove agent
rm -f "$BINARY" "$WATCHDOG" "$STAGED" "$CONFIG" "$CONFIG.sha256" "$CONFIG.command" "$STATE" "$LEASE" "$LEASE.tmp" "$EVENTS" "$EVENTS.1"
