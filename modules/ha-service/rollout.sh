# shellcheck shell=bash
# On the primary, the update of SERVICE's start: when its container settings
# changed in the stack (RUN_ARGS: a new image, env, command, ports...), rolls
# the new version out in place of the one that runs here. The old one is
# checkpointed as it stops (its state kept for a rollback); the new one
# starts on the same volumes, address and ports, and must pass the service's
# health check (HEALTH_*, as the agents run it; with none, a connection to
# its port) within READY_SECONDS; then the old container and its checkpoint
# go. When the new one does not become healthy, it is removed and the old
# one restored from that checkpoint, with the state it had as it stopped,
# and the update fails, saying so. In-memory state does not cross to a new
# version (another program); its volumes do.
# Where SERVICE does not run here, this is its start (start.sh); with the
# settings it runs with, nothing is done.
# Env: SERVICE, RUN_ARGS, IMAGE (the new one, for messages), HOST_ADDRESS, HEALTH_KIND (tcp, http, command),
# HEALTH_PORT, HEALTH_PATH, HEALTH_COMMAND (one argument per line),
# HEALTH_TIMEOUT_MS, HEALTH_INTERVAL_MS, READY_SECONDS.
set -euo pipefail
state=$(docker container inspect -f '{{.State.Status}}' "$SERVICE" 2>/dev/null) || state=absent
# Gone from where it was started: the agents fenced it (its lease lapsed) or
# it was moved (migrate, drain, a failover), and may run elsewhere now or
# soon. Starting it here would make a second copy.
if [ "$state" = absent ] && [ -f "$EDGE_HA_STATE/started-$SERVICE" ]; then
  echo "$SERVICE on $(hostname): not rolled out: it no longer runs here, where it was started (the failover agents fenced it, or it was moved); 'edge-ha service status $SERVICE' tells where it runs: set its primary there (or move it back with 'edge-ha service migrate $SERVICE --to $(hostname)') and run pulumi up again" >&2
  exit 1
fi
# Not started here yet (a new primary, a re-imaged host), or a stopped copy start.sh refuses.
if [ "$state" != running ]; then
  edge_ha_create
  exit
fi
settings=$EDGE_HA_SERVICES/$SERVICE.run
if [ "$(cat "$settings" 2>/dev/null)" = "$RUN_ARGS" ]; then
  touch "$EDGE_HA_STATE/started-$SERVICE"
  echo adopted
  exit 0
fi
image_of() { docker container inspect -f '{{.Config.Image}}' "$1" 2>/dev/null || echo unknown; }
old_id=$(docker container inspect -f '{{.Id}}' "$SERVICE")
old_image=$(image_of "$SERVICE")
new_image=$IMAGE
checkpoint=rollout
old=$SERVICE-before-rollout

# The agents leave it alone meanwhile (it stops for a moment, and a new copy
# starts); its sync loop stops with its settings kept (a rollback starts it again).
touch "$EDGE_HA_MOVING_MARK$SERVICE"
# Its address stays here but answers nothing while no version serves
# (vip_hold): clients' connections wait (TCP sends again) instead of being
# refused or finding no host, and come in once one serves. Released on
# every way out.
trap 'vip_release "$SERVICE" || true; rm -f "$EDGE_HA_MOVING_MARK$SERVICE"' EXIT
service_stop "sync-$SERVICE"
# (Where the hold cannot be set, the address goes: clients then find no host after 3 s.)
vip_hold "$SERVICE" || vip_down "$SERVICE" >/dev/null 2>&1 || true
# Requests under way end first (up to 2 s): a new version cannot carry them on.
requests_done "$SERVICE" 2 || true
vip_hold_all "$SERVICE" || true
# (runc_checkpoint takes the service's checkpoint lock itself.)
if ! checkpoint_exit "$SERVICE" "$old_id" "/var/lib/docker/containers/$old_id/checkpoints/$checkpoint"; then
  now=$(docker container inspect -f '{{.State.Status}}' "$SERVICE" 2>/dev/null) || now=absent
  if [ "$now" = running ]; then vip_up "$SERVICE" >/dev/null 2>&1 || true; service_start "sync-$SERVICE"; else vip_down "$SERVICE" >/dev/null 2>&1 || true; fi
  echo "$SERVICE on $(hostname): not rolled out: its checkpoint (kept for a rollback) failed, and its container is $now; see /run/edge-ha-criu-$SERVICE/dump.log" >&2
  exit 1
fi
wait_for 10 "$SERVICE's container to stop" sh -c "[ \"\$(docker container inspect -f '{{.State.Running}}' $SERVICE)\" = false ]"
docker rename "$SERVICE" "$old"

# rollback WHY: the new version goes; the old one comes back with its state.
rollback() {
  local logs
  logs=$(docker logs --tail 3 "$SERVICE" 2>&1 | tr '\n' ' ' | cut -c1-300)
  docker rm -f "$SERVICE" >/dev/null 2>&1 || true
  docker rename "$old" "$SERVICE"
  local how="restored from the checkpoint taken as it stopped, with its state"
  if ! checkpoint_locked "$SERVICE" docker start --checkpoint "$checkpoint" "$SERVICE" >/dev/null 2>&1; then
    how="started afresh (its checkpoint did not restore: its in-memory state is lost; its volumes are as they were)"
    docker start "$SERVICE" >/dev/null 2>&1 || how="NOT running: neither its checkpoint nor a fresh start worked; 'edge-ha service failover $SERVICE' restores the standby's last synced checkpoint"
  fi
  docker checkpoint rm "$SERVICE" "$checkpoint" >/dev/null 2>&1 || true
  if [ "$(docker container inspect -f '{{.State.Running}}' "$SERVICE" 2>/dev/null)" = true ]; then
    vip_up "$SERVICE" >/dev/null 2>&1 || true
    service_start "sync-$SERVICE"
  else
    vip_down "$SERVICE" >/dev/null 2>&1 || true
  fi
  echo "$SERVICE on $(hostname): the new version ($new_image) $1${logs:+ (its last log lines: $logs)}; rolled back: the old version ($old_image) is $how" >&2
  exit 1
}

mapfile -t args <<<"$RUN_ARGS"
started=$(date +%s)
ensure_network
if ! err=$(docker run -d "${args[@]}" 2>&1 >/dev/null); then rollback "did not start: $err"; fi
mapfile -t command <<<"${HEALTH_COMMAND:-}"
while :; do
  if [ "$(docker container inspect -f '{{.State.Running}}' "$SERVICE" 2>/dev/null)" != true ]; then
    rollback "exited ($(docker container inspect -f 'code {{.State.ExitCode}}' "$SERVICE" 2>/dev/null || echo gone)) within $(($(date +%s) - started)) s of its start"
  fi
  if health_probe "$SERVICE" "$HOST_ADDRESS" "$HEALTH_TIMEOUT_MS" "$HEALTH_KIND" "$HEALTH_PORT" "${HEALTH_PATH:-/}" "${command[@]}"; then break; fi
  if [ $(($(date +%s) - started)) -ge "$READY_SECONDS" ]; then
    rollback "did not pass its $HEALTH_KIND health check within $READY_SECONDS s (readySeconds) of its start"
  fi
  sleep "$(awk "BEGIN { printf \"%.3f\", $HEALTH_INTERVAL_MS / 1000 }")"
done
docker rm -f "$old" >/dev/null
vip_up "$SERVICE" >/dev/null 2>&1 || true
touch "$EDGE_HA_STATE/started-$SERVICE"
echo "rolled out"
