#!/usr/bin/env bash
# Samples this node for `edge-ha dashboard` until its SSH session ends: a
# round every quarter second, each ended by "@end" (lib/dashboard/sample.ts
# reads them): the clock, load and memory, the failover agent's state and its
# new events; every other round also edge-ha's service containers, the syncs
# that leave from here, the virtual addresses and the newest whole checkpoint
# here of each service synced to this node; every 40th round the architecture,
# the Docker and CRIU versions and the swarm's services, read in the
# background and printed with the first round after they are in: a swarm
# without a leader (its managers lost, or electing one) holds `docker service
# ls` for its 5 s timeout, and held in the round it held the agent's state
# with it: a crashed node was shown down 6.6 s after the crash, not within 2.
# One session for all rounds: no new connection, shell or sshd session each
# time.
# It changes nothing, and prints no secret: of the agent's configuration
# (which holds the heartbeat secret) it reads downAfterMs only.
#
# Usage: sample.sh
# Environment: AGENT_STATE, AGENT_EVENTS, AGENT_CONFIG, AGENT_CTL,
# SERVICES_DIR, CHECKPOINTS_DIR, VIPS_DIR, LAG_PAUSE_MARK, SERVICE_LABEL, PORT_LABEL
# (lib/dashboard/sample.ts).
set -euo pipefail

# The events log from this byte on; -1: its last 200 lines first.
from=-1
round=0

versions() {
  echo "@arch $(uname -m)"
  echo "@docker $(timeout 5 docker version -f '{{.Server.Version}}' 2>/dev/null || echo -)"
  echo "@criu $( (criu --version 2>/dev/null || echo 'Version: -') | awk '/^Version:/ {print $2; exit}')"
  if [ -r "$AGENT_CONFIG" ]; then
    echo "@downAfterMs $(grep -o '"downAfterMs":[0-9]*' "$AGENT_CONFIG" | cut -d: -f2)"
  fi
  # Only on a manager of a swarm; elsewhere the engine refuses at once.
  echo "@swarm-list"
  timeout 5 docker service ls --format '@swarm {{.Name}}	{{.Replicas}}	{{.Ports}}' 2>/dev/null || true
}

services() {
  echo "@services"
  timeout 5 docker ps -a --filter "label=$SERVICE_LABEL" --format "@container {{.Label \"$SERVICE_LABEL\"}}	{{.State}}	{{.Label \"$PORT_LABEL\"}}	{{.Status}}" 2>/dev/null || echo "@engine down"
  local f d name address held newest
  for f in "$SERVICES_DIR"/*.sync; do
    [ -e "$f" ] || continue
    echo "@sync $(basename "$f" .sync) $(cat "$f")"
  done
  # A copy its sync loop's lag guard holds paused: since when (ms; host/edge-ha-sync).
  for f in "$LAG_PAUSE_MARK"*; do
    [ -f "$f" ] || continue
    echo "@paused ${f#"$LAG_PAUSE_MARK"} $(cut -d' ' -f1 "$f")"
  done
  # A service's virtual address, and whether an interface here holds it (host/vip.sh).
  for f in "$VIPS_DIR"/*; do
    [ -f "$f" ] || continue
    address=$(awk '$1 == "address" { print $2 }' "$f")
    [ -n "$address" ] || continue
    held=-
    if [ -n "$(ip -o -4 addr show to "$address/32" 2>/dev/null)" ]; then held=held; fi
    echo "@vip $(basename "$f") $address $held"
  done
  for d in "$CHECKPOINTS_DIR"/*/; do
    [ -d "$d" ] || continue
    name=$(basename "$d")
    newest=$("$AGENT_CTL" newest "$name" 2>/dev/null || true)
    if [ -n "$newest" ]; then echo "@newest $name $newest"; fi
  done
}

events() {
  [ -r "$AGENT_EVENTS" ] || return 0
  # Up to the size read first: lines the agent adds meanwhile come with the next round.
  local size
  size=$(stat -c %s "$AGENT_EVENTS")
  if [ "$size" -lt "$from" ]; then from=0; fi # a new log: from its start
  if [ "$from" -lt 0 ]; then
    head -c "$size" "$AGENT_EVENTS" | tail -n 200
  elif [ "$from" -lt "$size" ]; then
    tail -c +"$((from + 1))" "$AGENT_EVENTS" | head -c "$((size - from))"
  fi | sed 's/^/@event /'
  from=$size
}

# The background reading of versions (its process, and the file it writes).
slow_pid=""
slow_out=$(mktemp /tmp/edge-ha-sample.XXXXXX)
trap 'if [ -n "$slow_pid" ]; then kill "$slow_pid" 2>/dev/null || true; fi; rm -f "$slow_out"' EXIT

while true; do
  echo "@now $(date +%s%3N)"
  echo "@load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "@mem $(awk '/^MemTotal:/ {t=$2} /^MemAvailable:/ {a=$2} END {print t, a}' /proc/meminfo)"
  if [ $((round % 40)) = 0 ] && [ -z "$slow_pid" ]; then
    versions >"$slow_out" 2>/dev/null &
    slow_pid=$!
  fi
  if [ -n "$slow_pid" ] && ! kill -0 "$slow_pid" 2>/dev/null; then
    wait "$slow_pid" || true
    cat "$slow_out"
    slow_pid=""
  fi
  if [ $((round % 2)) = 0 ]; then services; fi
  if [ -r "$AGENT_STATE" ]; then echo "@state $(cat "$AGENT_STATE")"; fi
  events
  echo "@end"
  round=$((round + 1))
  sleep 0.25
done
