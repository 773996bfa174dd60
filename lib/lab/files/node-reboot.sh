#!/bin/sh
# The lab node's reboot, installed as /usr/local/sbin/reboot (before Debian's,
# which needs systemd). What a clean reboot does, as far as a container can:
# Docker's engine is stopped first (it stops its containers), then every other
# process, then the node's init ends with a failure status, and Docker's
# restart policy on this machine (on-failure, set by the lab; `lab crash` sets
# it off first) starts the node again: a new boot, /run and /tmp empty, the
# boot scripts run again. Like reboot(8), it returns at once and the node goes
# down a moment later (the caller's SSH session goes with it).
set -eu
if [ "${1:-}" != --now ]; then
  setsid "$0" --now </dev/null >/dev/null 2>&1 &
  echo "$(hostname): rebooting"
  exit 0
fi
sleep 0.5
# alive PIDS...: those of PIDS that still run.
alive() {
  for pid in "$@"; do if kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi; done
}
# stop_all PIDS...: SIGTERM, then up to 10 s for them to exit, then SIGKILL.
stop_all() {
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  i=0
  while [ $i -lt 50 ] && [ -n "$(alive "$@")" ]; do sleep 0.2; i=$((i + 1)); done
  # shellcheck disable=SC2046 # pids are words
  kill -KILL $(alive "$@") 2>/dev/null || true
}
# shellcheck disable=SC2046 # pids are words
stop_all $(pgrep -x dockerd || true)
# The node's init (PID 1) and the sshd it runs stay until the last step; this script too.
main=$(pgrep -P 1 -x sshd || true)
others=$(ps -e -o pid= | while read -r pid; do
  [ "$pid" = 1 ] || [ "$pid" = "$$" ] || [ "$pid" = "$main" ] || echo "$pid"
done)
# shellcheck disable=SC2086 # pids are words
stop_all $others
sync
# The init's child, the last process, ends by SIGKILL: the init then exits with 137, a failure
# Docker's restart policy answers (sshd ends a SIGTERM with status 0, and the node would stay off).
kill -KILL "$main"
