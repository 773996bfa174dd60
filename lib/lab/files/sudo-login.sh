#!/bin/sh
# A lab node that lets edge-ha in as Raspberry Pi OS and cloud images do: a
# user (USER, with KEY authorized) who reaches root through sudo, without a
# password (LOGIN sudo) or with PASSWORD (sudo-password), and no root login.
# Run by `lab up` through the container runtime; idempotent. Plain sh.
# Args: USER KEY LOGIN [PASSWORD]
set -eu
user=$1 key=$2 login=$3 password=${4:-}
id -u "$user" >/dev/null 2>&1 || useradd -m -s /bin/bash "$user"
home=$(getent passwd "$user" | cut -d: -f6)
install -d -m 700 -o "$user" -g "$user" "$home/.ssh"
grep -qxF "$key" "$home/.ssh/authorized_keys" 2>/dev/null || echo "$key" >>"$home/.ssh/authorized_keys"
chown "$user:$user" "$home/.ssh/authorized_keys"
chmod 600 "$home/.ssh/authorized_keys"
if [ "$login" = sudo-password ]; then
  echo "$user:$password" | chpasswd
  echo "$user ALL=(ALL:ALL) ALL" >/etc/sudoers.d/edge-ha-lab
else
  echo "$user ALL=(ALL:ALL) NOPASSWD: ALL" >/etc/sudoers.d/edge-ha-lab
fi
chmod 440 /etc/sudoers.d/edge-ha-lab
# No root login at all, and no key of root's.
rm -f /root/.ssh/authorized_keys
conf=/etc/ssh/sshd_config.d/edge-ha-lab.conf
if [ "$(cat "$conf" 2>/dev/null)" != "PermitRootLogin no" ]; then
  echo "PermitRootLogin no" >"$conf"
  # The listening sshd (the oldest) reads its configuration again.
  pid=$(pgrep -o -x sshd || true)
  [ -z "$pid" ] || kill -HUP "$pid"
fi
