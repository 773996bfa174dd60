# shellcheck shell=bash
# What a host is, for `edge-ha inventory check --live` (lib/host/preflight.ts):
# read-only, plain shell, run before anything of edge-ha is on the host (not
# part of the host library). Runs as the login, not through sudo: it tells
# whether sudo works. Prints KEY=VALUE lines.
set -u
echo "user=$(id -u)"
echo "machine=$(uname -m)"
echo "kernel=$(uname -r)"
echo "pagesize=$(getconf PAGESIZE)"
# The memory cgroup: cgroup v2 lists its controllers; v1 says per controller whether it is enabled.
if [ -r /sys/fs/cgroup/cgroup.controllers ]; then
  if grep -qw memory /sys/fs/cgroup/cgroup.controllers; then echo "memcg=1"; else echo "memcg=0"; fi
else
  echo "memcg=$(awk '$1 == "memory" { print $4; found = 1 } END { if (!found) print 0 }' /proc/cgroups)"
fi
# Raspberry Pi OS keeps the kernel's command line here (the fix for a disabled memory cgroup).
for f in /boot/firmware/cmdline.txt /boot/cmdline.txt; do
  if [ -f "$f" ]; then echo "cmdline=$f"; break; fi
done
# Free space where checkpoints go (its nearest existing parent), in KiB.
d=/var/lib/edge-ha
while [ ! -d "$d" ]; do d=$(dirname "$d"); done
echo "freekb=$(df -Pk "$d" | awk 'NR == 2 { print $4 }')"
# Whether sudo gives root to a login that is not root (BECOME: sudo, without a
# prompt; sudo-password, with the password on the first line of stdin).
if [ -n "${BECOME:-}" ]; then
  if ! command -v sudo >/dev/null; then
    echo "sudo=missing"
  elif [ "$BECOME" = sudo-password ]; then
    IFS= read -r password || true
    if printf '%s\n' "$password" | sudo -S -k -p '' true 2>/dev/null; then echo "sudo=1"; else echo "sudo=0"; fi
  else
    if sudo -n true 2>/dev/null; then echo "sudo=1"; else echo "sudo=0"; fi
  fi
fi
echo "clock=$(date +%s%3N)"
