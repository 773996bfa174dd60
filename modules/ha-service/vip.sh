# shellcheck shell=bash
# On every host SERVICE may run on: keeps its virtual address VIP ("" for
# none) and its published ports VIP_PORTS (lines of PROTO CONTAINER_ADDRESS
# CONTAINER_PORT HOST_PORT) in $EDGE_HA_VIPS (host/vip.sh), and holds the
# address here exactly when SERVICE runs here. Prints what it changed.
set -euo pipefail
if [ -z "$VIP" ]; then
  vip_down "$SERVICE"
  rm -f "$EDGE_HA_VIPS/$SERVICE"
  exit 0
fi
# arping announces the address where it is taken; conntrack forgets a
# host's stale flows to it before a restore there (host/vip.sh vip_forget_flows).
apt_install iputils-arping conntrack
mkdir -p "$EDGE_HA_VIPS"
(
  flock -w 10 9
  # A changed address: the old one goes before the file forgets it.
  if [ -n "$(vip_of "$SERVICE")" ] && [ "$(vip_of "$SERVICE")" != "$VIP" ]; then vip_del "$SERVICE"; fi
  awk -v vip="$VIP" 'BEGIN { print "address " vip } NF { print "port " $0 }' <<<"$VIP_PORTS" >"$EDGE_HA_VIPS/$SERVICE.tmp" && mv -f "$EDGE_HA_VIPS/$SERVICE.tmp" "$EDGE_HA_VIPS/$SERVICE"
  case "$(docker container inspect -f '{{.State.Status}}' "$SERVICE" 2>/dev/null)" in
    running | paused) vip_add "$SERVICE" ;;
    *) vip_del "$SERVICE" ;;
  esac
) 9>"/run/edge-ha-vip-$SERVICE.lock"
