# shellcheck shell=bash
# A service's virtual address (its vip: lib/config/settings.ts): held by the
# host that runs the service, as an extra /32 address on the host's
# interface in the site's subnet, and announced with gratuitous ARP so that
# clients and switches send to this host at once, not when their ARP entry
# for it expires. $EDGE_HA_VIPS/NAME, on every host the service may run on
# (modules/ha-service; no file: NAME has no vip), holds
#   address ADDRESS
#   port PROTO CONTAINER_ADDRESS CONTAINER_PORT HOST_PORT   (one a published port)
#
# A connection a live migration carries over (CRIU's tcp-established) is new
# to the target's connection tracking, and its first packet is the server's:
# Docker's masquerade would send it from the host's own address, which the
# client does not know (it answers with a reset). So the service's packets
# that leave by the LAN are sent from ADDRESS:HOST_PORT (vip_rules); a client's
# connection through the address goes on, on whichever host holds it.
#
# During a migration the source has dropped the address and the target not
# yet taken it, but clients still send to the source (their ARP entry): a
# new connection's SYN lost then is sent again by the client only a second
# later. So every host forwards what reaches it for the address back out to
# the LAN (vip_rules): it waits in the host's ARP queue, and goes to the
# target the moment the target's announcement answers that host's ARP
# request (a gratuitous ARP resolves a pending entry).
#
# Two hosts must never answer for one address: a copy that stops serving
# (fenced, dumped for a migration) drops it first, a copy that starts takes it
# last, and each change holds /run/edge-ha-vip-NAME.lock, so that the
# agents' reconciliation (edge-ha-ctl vips) never acts on a state that has
# just changed under it.

# vip_of NAME: prints NAME's virtual address, or nothing.
vip_of() {
  awk '$1 == "address" { print $2 }' "$EDGE_HA_VIPS/$1" 2>/dev/null || true
}

# vip_rules NAME ADDRESS DEV: the service's packets leaving by DEV are sent
# from ADDRESS and its published ports, and what reaches this host for
# ADDRESS while it does not hold it is forwarded back out by DEV (see above);
# each rule once, ahead of Docker's (its masquerade; its FORWARD policy
# drops). Checked at every take: a reboot clears them.
vip_rules() {
  local proto caddr cport hport comment=(-m comment --comment "edge-ha vip $1")
  iptables -C FORWARD -d "$2/32" -i "$3" -o "$3" -j ACCEPT "${comment[@]}" 2>/dev/null ||
    iptables -I FORWARD 1 -d "$2/32" -i "$3" -o "$3" -j ACCEPT "${comment[@]}" || return 1
  while read -r proto caddr cport hport; do
    set -- -s "$caddr" -o "$3" -p "$proto" --sport "$cport" -j SNAT --to-source "$2:$hport" "${comment[@]}"
    iptables -t nat -C POSTROUTING "$@" 2>/dev/null || iptables -t nat -I POSTROUTING 1 "$@" || return 1
  done < <(awk '$1 == "port" { print $2, $3, $4, $5 }' "$EDGE_HA_VIPS/$1")
}

# vip_device ADDRESS: the interface whose connected subnet holds ADDRESS
# (the kernel's own route for the LAN), or fails.
vip_device() {
  local dev
  dev=$(ip -o -4 route show to match "$1" scope link proto kernel 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }')
  [ -n "$dev" ] && echo "$dev"
}

# vip_held ADDRESS: prints the interface that holds ADDRESS here, or fails.
vip_held() {
  local dev
  dev=$(ip -o -4 addr show to "$1/32" 2>/dev/null | awk '{ print $2; exit }')
  [ -n "$dev" ] && echo "$dev"
}

# vip_ready NAME: NAME's rules are in place here (vip_rules), and this
# host's stale flows to its address forgotten (vip_forget_flows), before a
# restore starts it: a restored connection's first packet may leave the
# moment CRIU lets it go, and its tracking then keeps whatever address it
# left with. Nothing for a service without an address.
vip_ready() {
  local vip dev
  vip=$(vip_of "$1")
  [ -n "$vip" ] || return 0
  dev=$(vip_device "$vip") || return 0 # said by vip_add
  vip_rules "$1" "$vip" "$dev" && vip_forget_flows "$vip"
}

# vip_forget_flows ADDRESS: deletes this host's connection tracking entries
# for ADDRESS; called where the service does not run yet, so each is stale:
# a client's packets that reached this host after its copy left (their ARP
# entry still named it) were forwarded on (vip_rules) and tracked as
# CLIENT -> ADDRESS:PORT without NAT, for 5 minutes. A connection restored
# here within that time (moved back) clashes with that entry: the restored
# server's replies cannot take ADDRESS:PORT as their source, and the
# client's packets pass by the service. The lab saw a stream moved away and
# back within seconds go silent, never reset.
vip_forget_flows() {
  if ! command -v conntrack >/dev/null; then
    echo "conntrack is missing on $(hostname) (pulumi up installs it): a connection moved back here within 5 minutes of leaving may hang" >&2
    return 0
  fi
  # Exit status 1 when there was none to delete.
  conntrack -D --orig-dst "$1" >/dev/null 2>&1 || true
}

# vip_add NAME (the lock held): takes NAME's address unless this host has it;
# prints "took ADDRESS on DEV" when it did.
vip_add() {
  local vip dev
  vip=$(vip_of "$1")
  [ -n "$vip" ] || return 0
  vip_held "$vip" >/dev/null && return 0
  dev=$(vip_device "$vip") || {
    echo "$1's virtual address $vip is in no subnet of $(hostname)'s interfaces ($(ip -o -4 addr show scope global | awk '{ printf "%s %s; ", $2, $4 }')): set network.subnet in the inventory to the hosts' LAN" >&2
    return 1
  }
  vip_rules "$1" "$vip" "$dev" || return 1
  # A hold left by a handover from here (edge-ha-ctl) drops what comes for the address: not once it is ours again.
  vip_release "$1"
  ip -4 addr add "$vip/32" dev "$dev" || return 1
  # Two announcements a second apart (one may be lost), in the background: the
  # caller does not wait for the second. Its output goes nowhere, so that a
  # caller reading ours (the agent) is not held until arping ends.
  if command -v arping >/dev/null; then
    arping -q -U -c 2 -I "$dev" "$vip" </dev/null >/dev/null 2>&1 &
  else
    echo "arping is missing on $(hostname) (pulumi up installs iputils-arping): clients reach $vip here only once their ARP entry expires" >&2
  fi
  echo "took $vip on $dev"
}

# vip_del NAME (the lock held): drops NAME's address if this host has it;
# prints "dropped ADDRESS from DEV" when it did.
vip_del() {
  local vip dev
  vip=$(vip_of "$1")
  [ -n "$vip" ] || return 0
  dev=$(vip_held "$vip") || return 0
  ip -4 addr del "$vip/32" dev "$dev" || return 1
  echo "dropped $vip from $dev"
}

# vip_hold NAME / vip_release NAME: while no copy of NAME serves here for
# seconds (a roll-out waits for a new version's health check), its address
# stays here and new connections to it are dropped (TCP SYNs, and anything
# not TCP): clients send again (a SYN at 1, 3, 7 s) and get in once a copy
# serves, and connections under way go on to their end. With the address
# gone, clients' ARP would give up after 3 s (EHOSTUNREACH), as a lab's
# roll-out saw; with the new version's port answered, they would be
# refused. Both do nothing for a service without an address.
vip_hold() {
  vip_hold_rule -I "$1" -p tcp --syn && vip_hold_rule -I "$1" ! -p tcp
}
# vip_hold_all NAME: with the hold, connections still under way are
# dropped too, set just before their server is dumped: their packets must
# not reach a new version on its address meanwhile (it would reset them, or
# their tracking go astray: a lab's client hung 30 s so); they go on when
# the dumped copy is restored.
vip_hold_all() {
  vip_hold_rule -I "$1" -p tcp
}
vip_release() {
  vip_hold_rule -D "$1" -p tcp --syn
  vip_hold_rule -D "$1" ! -p tcp
  vip_hold_rule -D "$1" -p tcp
}

# vip_hold_rule -I|-D NAME MATCH...: puts in (once) or takes out (every copy
# of) the rule dropping MATCH to NAME's address, ahead of Docker's NAT;
# nothing for a service without an address.
vip_hold_rule() {
  local how=$1 name=$2 vip
  shift 2
  vip=$(vip_of "$name")
  [ -n "$vip" ] || return 0
  set -- PREROUTING -d "$vip/32" "$@" -j DROP -m comment --comment "edge-ha vip hold $name"
  if [ "$how" = -I ]; then
    iptables -t raw -C "$@" 2>/dev/null || iptables -t raw -I "$1" 1 "${@:2}"
  else
    while iptables -t raw -D "$@" 2>/dev/null; do :; done
  fi
}

# vip_up NAME / vip_down NAME: vip_add / vip_del under NAME's vip lock.
vip_up() {
  (flock -w 10 9 && vip_add "$1") 9>"/run/edge-ha-vip-$1.lock"
}
vip_down() {
  (flock -w 10 9 && vip_del "$1") 9>"/run/edge-ha-vip-$1.lock"
}

# vip_follow NAME (the lock held): NAME's address follows its container
# here: held while it runs (or is paused for a checkpoint), dropped otherwise;
# left as it is when the engine does not answer. Prints what it changed.
vip_follow() {
  local state
  if state=$(timeout 5 docker container inspect -f '{{.State.Status}}' "$1" 2>&1); then
    case "$state" in
      running | paused) vip_add "$1" ;;
      *) vip_del "$1" ;;
    esac
  elif printf '%s' "$state" | grep -q 'No such'; then
    vip_del "$1"
  fi
}

# vip_reconcile: every vip of this host follows its service's container
# (vip_follow). A service whose migration is under way is left to the
# migration, one whose lock is held to whoever holds it.
vip_reconcile() {
  local f s
  for f in "$EDGE_HA_VIPS"/*; do
    [ -f "$f" ] || continue
    s=$(basename "$f")
    ! moving "$s" || continue
    (flock -n 9 || exit 0; vip_follow "$s") 9>"/run/edge-ha-vip-$s.lock"
  done
}
