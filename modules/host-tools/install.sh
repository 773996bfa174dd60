# shellcheck shell=bash
# Installs edge-ha's host library and the commands built on it (edge-ha-sync,
# edge-ha-ctl) from LIBRARY, SYNC and CTL, each replaced by rename only when
# its content changed. The sync loops running here hold the old functions in
# memory, so they restart when the library or the loop changed. Writes the
# host's edge-ha marker (HOST_ID at MARKER; lib/host/identity.ts) and prints
# it, then a digest of the files.
set -euo pipefail
mkdir -p "$(dirname "$LIBRARY_PATH")" "$EDGE_HA_SERVICES"
changed=0
printf '%s' "$LIBRARY" | write_if_changed "$LIBRARY_PATH" 0644 && changed=1
printf '%s' "$SYNC" | write_if_changed "$EDGE_HA_SYNC" 0755 && changed=1
printf '%s' "$CTL" | write_if_changed "$CTL_PATH" 0755 || true
if [ "$changed" = 1 ]; then
  for f in "$EDGE_HA_SERVICES"/*.sync; do
    [ -e "$f" ] || continue
    s=$(basename "$f" .sync)
    if service_running "sync-$s"; then service_restart "sync-$s"; fi
  done
fi
printf '%s\n' "$HOST_ID" | write_if_changed "$MARKER" 0644 || true
echo "$HOST_ID"
sha256sum "$LIBRARY_PATH" "$EDGE_HA_SYNC" "$CTL_PATH" | cut -d' ' -f1 | sha256sum | cut -c1-12
