# shellcheck shell=bash
# Installs the agent binary staged at STAGED (checked against AGENT_SHA256)
# and its configuration AGENT_CONFIG (secret), and (re)starts the agent when
# either changed or it is not running. Env also: BINARY, CONFIG.
set -euo pipefail
changed=0
if [ -f "$STAGED" ]; then
  install_staged "$STAGED" "$BINARY" "$AGENT_SHA256" 0755
  rm -f "$STAGED"
fi
echo "$AGENT_SHA256" | write_if_changed "$CONFIG.sha256" 0644 && changed=1
printf '%s' "$AGENT_CONFIG" | write_if_changed "$CONFIG" 0600 && changed=1
service_install agent "$BINARY" -config "$CONFIG"
if [ "$changed" = 1 ] || ! service_running agent; then service_restart agent; fi
echo "agent on $(hostname)"
