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
# Ahead of the node's other work (nice -10): a lease of half a second lapses
# when the acknowledgements wait behind a busy node's CRIU dumps, archives and
# transfers, and the node then fences its copy for nothing (a demo's counter
# so, during a second pulumi up on a 2-core lab machine, with no stall of the
# agent itself). Corosync runs at real-time priority for the same reason; a
# container's cgroup has no real-time budget unless given one, so a niceness.
agent_command=(/usr/bin/nice -n -10 "$BINARY" -config "$CONFIG")
watchdog_command=(/usr/bin/nice -n -10 "$WATCHDOG" -watchdog -config "$CONFIG")
# What the services run is part of what changed: an older command line restarts them.
printf '%s\n' "${agent_command[*]}" "${watchdog_command[*]}" | write_if_changed "$CONFIG.command" 0644 && changed=1
service_install agent "${agent_command[@]}"
service_install watchdog "${watchdog_command[@]}"
if [ "$changed" = 1 ] || ! service_running agent; then service_restart agent; fi
if [ "$changed" = 1 ] || ! service_running watchdog; then service_restart watchdog; fi
echo "agent on $(hostname)"
