import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import * as path from "node:path";
import { $ } from "zx";
import { progress } from "../log";

/** Image tag of a blank lab node; the suffix changes whenever what goes into it does. */
export const nodeImage = "edge-ha/lab-node:bookworm-1";

/**
 * What a freshly flashed Pi image has: a shell, apt, sshd and basic network
 * tools. Deliberately no Docker, CRIU or rsync: provisioning installs those.
 */
const packages = ["openssh-server", "iproute2", "iputils-ping", "ca-certificates", "procps", "kmod"];

/**
 * The node's init: boot scripts registered by provisioning run on every boot
 * (the lab's stand-in for systemd units), then sshd keeps the node alive.
 */
const init = `#!/bin/sh
ssh-keygen -A >/dev/null
mkdir -p /run/sshd /etc/edge-ha/boot.d
for script in /etc/edge-ha/boot.d/*; do
  [ -x "$script" ] && "$script" >>/var/log/edge-ha-boot.log 2>&1 &
done
exec /usr/sbin/sshd -D -e
`;

const cacheDir = process.env.EDGE_HA_CACHE ?? "/var/cache/edge-ha";

/** Builds the node image once (debootstrap, then docker import); cached by tag and by root file system tarball. */
export async function ensureNodeImage(): Promise<void> {
  const present = await $({ quiet: true, nothrow: true })`docker image inspect ${nodeImage}`;
  if (present.exitCode === 0) return;
  const tarball = path.join(cacheDir, `${nodeImage.replace(/[/:]/g, "_")}.tar`);
  if (!existsSync(tarball)) {
    progress("building the lab node image with debootstrap (about a minute, once)");
    mkdirSync(cacheDir, { recursive: true });
    const root = `${tarball}.rootfs`;
    rmSync(root, { recursive: true, force: true });
    await $({ quiet: true })`debootstrap --variant=minbase --include=${packages.join(",")} bookworm ${root} http://deb.debian.org/debian`;
    await $({ quiet: true })`chroot ${root} apt-get clean`;
    // Host keys are made at first boot so that every node gets its own.
    await $({ quiet: true })`sh -c ${`rm -f ${root}/etc/ssh/ssh_host_* && printf '%s' "$1" > ${root}/usr/local/sbin/edge-ha-init && chmod 755 ${root}/usr/local/sbin/edge-ha-init`} sh ${init}`;
    await $({ quiet: true })`tar -C ${root} -cf ${tarball}.tmp .`;
    renameSync(`${tarball}.tmp`, tarball);
    rmSync(root, { recursive: true, force: true });
  }
  progress(`importing ${nodeImage}`);
  await $({ quiet: true })`docker import --change ${"CMD [\"/usr/local/sbin/edge-ha-init\"]"} ${tarball} ${nodeImage}`;
}

/**
 * A Debian base image for off-the-shelf servers in the lab's tests and
 * examples (examples/: `FROM edge-ha/debian:bookworm`), made without any
 * public registry: debootstrap on this machine, then docker import. Cached
 * like the node image.
 */
export const baseImage = "edge-ha/debian:bookworm";

export async function ensureBaseImage(): Promise<void> {
  if ((await $({ quiet: true, nothrow: true })`docker image inspect ${baseImage}`).exitCode === 0) return;
  const tarball = path.join(cacheDir, `${baseImage.replace(/[/:]/g, "_")}.tar`);
  if (!existsSync(tarball)) {
    progress(`building ${baseImage} with debootstrap (about a minute, once)`);
    mkdirSync(cacheDir, { recursive: true });
    const root = `${tarball}.rootfs`;
    rmSync(root, { recursive: true, force: true });
    await $({ quiet: true })`debootstrap --variant=minbase bookworm ${root} http://deb.debian.org/debian`;
    await $({ quiet: true })`chroot ${root} apt-get clean`;
    await $({ quiet: true })`tar -C ${root} -cf ${tarball}.tmp .`;
    renameSync(`${tarball}.tmp`, tarball);
    rmSync(root, { recursive: true, force: true });
  }
  await $({ quiet: true })`docker import --change ${"CMD [\"bash\"]"} ${tarball} ${baseImage}`;
}
