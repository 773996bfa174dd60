# shellcheck shell=bash
# Installs the agent binary staged at STAGED (checked against AGENT_SHA256)
# and its configuration AGENT_CONFIG (secret), and (re)starts the agent when
# either changed or it is not running; the same binary as WATCHDOG runs the
# agent's watchdog (agent/watchdog.go), a process of its own so that it fences
# when the agent does not run. Env also: BINARY, CONFIG.
set -euo pipefail
changed=0
if [ -f "$STAGED" ]; then
  install_staged "$STAGED" "$BINARY" "$AGENT_SHA256" 0755
  rm -f "$STAGED"
fi
echo "$AGENT_SHA256" | write_if_changed "$CONFIG.sha256" 0644 && changed=1
printf '%s' "$AGENT_CONFIG" | write_if_changed "$CONFIG" 0600 && changed=1
# A copy, not a link: the watchdog's process gets its own name (ps, pkill, the lab's pause --agent).
if ! cmp -s "$BINARY" "$WATCHDOG"; then
  install -m 0755 "$BINARY" "$WATCHDOG.new" && mv -f "$WATCHDOG.new" "$WATCHDOG"
  changed=1
fi
service_install agent "$BINARY" -config "$CONFIG"
service_install watchdog "$WATCHDOG" -watchdog -config "$CONFIG"
if [ "$changed" = 1 ] || ! service_running agent; then service_restart agent; fi
if [ "$changed" = 1 ] || ! service_running watchdog; then service_restart watchdog; fi
echo "agent on $(hostname)"
