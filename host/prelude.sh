# shellcheck shell=bash
# Shell functions shared by the provisioning scripts that run on the hosts:
# every host command of the modules starts with this file (lib/host/shell.ts
# hostScript), so package installs, service supervision and cleanup behave
# the same in every module. The EDGE_HA_* variables of lib/host/shell.ts are
# set before it.
#
# Two facts shape them:
# - Several components provision one host at the same time, so apt runs under
#   a lock.
# - A host may have systemd (a Pi, a VM) or not (a lab node, whose init runs
#   /etc/edge-ha/boot.d/* at every boot); a service must come back after a
#   reboot either way.
export DEBIAN_FRONTEND=noninteractive
: "${EDGE_HA_STATE:?edge-ha sets it before this file}"
mkdir -p "$EDGE_HA_STATE/installed" /etc/edge-ha
# Root's alone: checkpoints hold the services' memory (their secrets with it),
# /etc/edge-ha the cluster's secrets and the services' settings (their env).
chmod 0700 "$EDGE_HA_STATE" /etc/edge-ha

# apt_refresh: updates the package lists unless they are recent (call under the apt lock).
apt_refresh() {
  [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -360 2>/dev/null | head -n1)" ] && return 0
  apt-get update -qq >/dev/null || { echo "apt-get update failed on $(hostname)" >&2; return 1; }
}

# apt_locked COMMAND...: runs COMMAND holding the lock every apt use here shares.
apt_locked() { ( flock 9; "$@" ) 9>"$EDGE_HA_STATE/apt.lock"; }

# apt_install PKG...: installs the missing packages and remembers every package
# that came with them, so that removal takes away only what edge-ha brought.
apt_install() {
  missing=""
  for p in "$@"; do
    if ! dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed'; then missing="$missing $p"; fi
  done
  [ -z "$missing" ] && return 0
  (
    flock 9
    apt_refresh
    # Names without the ":amd64" that dpkg adds to multi-arch libraries, as apt prints them.
    installed_names() { dpkg --get-selections | awk '{sub(/:.*/, "", $1); print $1}' | sort -u; }
    installed_names >"$EDGE_HA_STATE/apt.before"
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/tmp/edge-ha-apt.log 2>&1 ||
      { tail -n 20 /tmp/edge-ha-apt.log >&2; echo "apt-get install$missing failed on $(hostname)" >&2; exit 1; }
    installed_names | comm -13 "$EDGE_HA_STATE/apt.before" - |
      while read -r p; do touch "$EDGE_HA_STATE/installed/$p"; done
  ) 9>"$EDGE_HA_STATE/apt.lock"
}

# apt_remove_ours PKG...: removes those of the packages that edge-ha installed,
# with the dependencies they brought, unless something else still needs them.
apt_remove_ours() {
  ours=""
  for p in "$@"; do if [ -e "$EDGE_HA_STATE/installed/$p" ]; then ours="$ours $p"; fi; done
  [ -z "$ours" ] && return 0
  (
    flock 9
    # shellcheck disable=SC2086
    apt-mark auto $ours >/dev/null 2>&1 || true
    # Only packages edge-ha installed and nothing needs any more; never the host's own orphans.
    # Soft dependencies (Suggests, Recommends) of the host's packages do not keep ours.
    gone=$(apt-get -s -o APT::AutoRemove::SuggestsImportant=false -o APT::AutoRemove::RecommendsImportant=false autoremove 2>/dev/null | awk '/^Remv /{print $2}' |
      while read -r p; do if [ -e "$EDGE_HA_STATE/installed/$p" ]; then echo "$p"; fi; done)
    if [ -n "$gone" ]; then
      # shellcheck disable=SC2086
      apt-get purge -y -qq $gone >/var/log/edge-ha-apt-remove.log 2>&1 ||
        { tail -n 20 /var/log/edge-ha-apt-remove.log >&2; echo "apt-get purge$ours failed on $(hostname)" >&2; exit 1; }
    fi
    for p in $gone; do rm -f "$EDGE_HA_STATE/installed/$p"; done
  ) 9>"$EDGE_HA_STATE/apt.lock"
}

has_systemd() { [ -d /run/systemd/system ]; }

# write_if_changed FILE MODE: writes stdin to FILE; status 0 when the content changed.
write_if_changed() {
  tmp="$1.edge-ha-new"
  cat >"$tmp"; chmod "$2" "$tmp"
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return 1; fi
  mv -f "$tmp" "$1"
}

# service_install NAME COMMAND...: a supervised service that starts at boot
# and is restarted when it exits (systemd unit, or a boot.d script with a
# restart loop where there is no systemd).
service_install() {
  name=$1; shift
  if has_systemd; then
    printf '[Unit]\nDescription=edge-ha %s\nAfter=network-online.target\n\n[Service]\nExecStart=%s\nRestart=always\nRestartSec=1\n\n[Install]\nWantedBy=multi-user.target\n' \
      "$name" "$*" | write_if_changed "/etc/systemd/system/edge-ha-$name.service" 0644 && systemctl daemon-reload
    systemctl enable -q "edge-ha-$name"
  else
    mkdir -p /etc/edge-ha/boot.d
    # At the usual priority whoever starts it: the agent (nice -10) starts sync loops, whose
    # dumps and transfers must not compete with it at its own priority (as systemd's units do not).
    printf '#!/bin/sh\n# edge-ha service %s: restarted whenever it exits.\necho $$ > /run/edge-ha-%s.supervisor.pid\nrenice -n 0 -p $$ >/dev/null 2>&1 || true\nwhile :; do %s; sleep 1; done\n' \
      "$name" "$name" "$*" | write_if_changed "/etc/edge-ha/boot.d/$name" 0755 || true
  fi
}

service_running() {
  if has_systemd; then systemctl is-active -q "edge-ha-$1"; else
    pid=$(cat "/run/edge-ha-$1.supervisor.pid" 2>/dev/null) && kill -0 "$pid" 2>/dev/null
  fi
}

# service_restart NAME: (re)starts the service under its supervisor. Without
# systemd the supervisor goes too: it has its command line parsed already, and
# restarting only its child would keep the old arguments.
service_restart() {
  if has_systemd; then systemctl restart "edge-ha-$1"; return; fi
  service_stop "$1"
  # A clean environment, as systemd gives: the caller's may hold secrets (provisioning passes them in it).
  setsid env -i PATH="$PATH" HOME=/root LANG=C.UTF-8 "/etc/edge-ha/boot.d/$1" >>/var/log/edge-ha-boot.log 2>&1 </dev/null &
}

# service_stop NAME (no systemd): stops the supervisor, then the service, found
# before the supervisor goes (afterwards it has another parent).
service_stop() {
  if pid=$(cat "/run/edge-ha-$1.supervisor.pid" 2>/dev/null) && kill -0 "$pid" 2>/dev/null; then
    children=$(pgrep -P "$pid" || true)
    kill "$pid" 2>/dev/null || true
    for child in $children; do
      kill -TERM "$child" 2>/dev/null || true
      wait_for 30 "$1 to stop" sh -c "! kill -0 $child" || kill -KILL "$child" 2>/dev/null || true
    done
  fi
  rm -f "/run/edge-ha-$1.supervisor.pid"
}

# service_start NAME: starts the service unless it runs.
service_start() { service_running "$1" || service_restart "$1"; }

# service_remove NAME: stops the service and removes its unit or boot script.
service_remove() {
  if has_systemd; then
    systemctl disable -q --now "edge-ha-$1" 2>/dev/null || true
    rm -f "/etc/systemd/system/edge-ha-$1.service"; systemctl daemon-reload
  else
    service_stop "$1"
    rm -f "/etc/edge-ha/boot.d/$1" "/run/edge-ha-$1.supervisor.pid"
  fi
}

# retry N COMMAND...: runs COMMAND up to N times, a second apart (for swarm
# updates that race with the node's own status changes: "update out of sequence").
retry() {
  n=$1; shift
  until "$@"; do n=$((n - 1)); [ "$n" -gt 0 ] || return 1; sleep 1; done
}

# wait_for SECONDS WHAT COMMAND...: polls COMMAND until it succeeds.
wait_for() {
  limit=$1 what=$2; shift 2
  i=0
  until "$@" >/dev/null 2>&1; do
    i=$((i + 1))
    [ "$i" -ge $((limit * 5)) ] && { echo "timed out after $limit s waiting for $what on $(hostname)" >&2; return 1; }
    sleep 0.2
  done
}

# check_sha256 FILE WANT: fails, naming both checksums, unless FILE's sha256 is WANT.
check_sha256() {
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  [ "$got" = "$2" ] || { echo "$1 on $(hostname) has sha256 $got, expected $2: the copy is damaged; nothing was installed" >&2; return 1; }
}

# install_staged FROM TO WANT MODE: checks that the staged file FROM has the
# sha256 WANT, then puts it at TO with MODE by rename (a running binary at TO
# is replaced, not written over). A damaged copy installs nothing.
install_staged() {
  check_sha256 "$1" "$3" || return 1
  install -m "$4" "$1" "$2.edge-ha-new" && mv -f "$2.edge-ha-new" "$2"
}
