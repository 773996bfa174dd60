# shellcheck shell=bash
# On the primary: (re)starts SERVICE's checkpoint sync to STANDBY_NAME at
# STANDBY_ADDRESS every INTERVAL_MS, with its settings (SPEC_JSON, RUN_ARGS)
# in every checkpoint, paused while the standby lags by more than MAX_LAG_MS
# (0: never). Refused where the service does not run, or cannot be
# checkpointed (trial_checkpoint says why).
set -euo pipefail
[ "$(docker container inspect -f '{{.State.Running}}' "$SERVICE" 2>/dev/null)" = true ] ||
  { echo "$SERVICE does not run on $(hostname), so it cannot sync from there; set primary to where it runs ('edge-ha service status $SERVICE')" >&2; exit 1; }
trial_checkpoint "$SERVICE"
sync_settings "$SERVICE" "$SPEC_JSON" "$RUN_ARGS"
sync_start "$SERVICE" "$STANDBY_NAME" "$STANDBY_ADDRESS" "$INTERVAL_MS" "$MAX_LAG_MS"
