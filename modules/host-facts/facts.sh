# shellcheck shell=bash
# Prints the host's name, kernel and machine, and fails when the machine is
# not one of MACHINES (the `uname -m` names of the inventory's ARCH for
# HOST). Runs before anything of edge-ha is on the host: plain shell.
set -euo pipefail
hostname
uname -r
m=$(uname -m)
echo "$m"
case " $MACHINES " in
  *" $m "*) ;;
  *) echo "$HOST is $m, but the inventory says arch: $ARCH; fix hosts[].arch for ${HOST%% *}" >&2; exit 1 ;;
esac
