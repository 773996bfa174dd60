#!/bin/sh
# The lab node's init (PID 1 of a lab node): boot scripts registered by
# provisioning run on every boot (the lab's stand-in for systemd units), then
# sshd keeps the node alive. Plain sh: a blank node image is all it may assume.
# Host keys are made here, at first boot, so that every node gets its own.
ssh-keygen -A >/dev/null
mkdir -p /run/sshd /etc/edge-ha/boot.d
for script in /etc/edge-ha/boot.d/*; do
  [ -x "$script" ] && "$script" >>/var/log/edge-ha-boot.log 2>&1 &
done
exec /usr/sbin/sshd -D -e
