# shellcheck shell=bash
# Drops SERVICE's virtual address here and forgets it; the last one takes
# arping and conntrack with it (when edge-ha installed them).
set -euo pipefail
vip_down "$SERVICE"
# Its rules (host/vip.sh vip_rules), by their comment; highest number first:
# a deletion renumbers the rules after it.
for chain in "nat POSTROUTING" "filter FORWARD"; do
  read -r table name <<<"$chain"
  iptables -t "$table" -L "$name" -n --line-numbers 2>/dev/null | awk -v c="/* edge-ha vip $SERVICE */" 'index($0, c) { print $1 }' | sort -rn |
    while read -r n; do iptables -t "$table" -D "$name" "$n"; done
done
# A hold a handover or roll-out left (host/vip.sh vip_hold), by the address the file names.
vip_release "$SERVICE"
rm -f "$EDGE_HA_VIPS/$SERVICE"
if rmdir "$EDGE_HA_VIPS" 2>/dev/null; then apt_remove_ours iputils-arping conntrack; fi
