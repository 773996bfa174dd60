import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import * as path from "node:path";
import { $ } from "zx";
import { progress } from "../log";

/**
 * What a freshly flashed Pi image has: a shell, apt, sshd and basic network
 * tools. Deliberately no Docker, CRIU or rsync: provisioning installs those.
 */
const packages = ["openssh-server", "sudo", "iproute2", "iputils-ping", "ca-certificates", "procps", "kmod"];

/** The node's init, PID 1 of every lab node (a file beside this one, checked by shellcheck). */
const initFile = path.join(__dirname, "files", "node-init.sh");
/** Its reboot (/usr/local/sbin/reboot): a clean stop, then Docker's restart policy boots the node again. */
const rebootFile = path.join(__dirname, "files", "node-reboot.sh");

/** Image tag of a blank lab node; its suffix is a hash of what goes into it, so a change makes a new image. */
export const nodeImage = `edge-ha/lab-node:bookworm-${createHash("sha256").update(packages.join(",")).update(readFileSync(initFile)).update(readFileSync(rebootFile)).digest("hex").slice(0, 12)}`;

/** What the lab keeps on this machine between labs: images, Debian packages. */
export const cacheDir = process.env.EDGE_HA_CACHE ?? "/var/cache/edge-ha";

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
    for (const key of readdirSync(`${root}/etc/ssh`).filter((f) => f.startsWith("ssh_host_"))) rmSync(`${root}/etc/ssh/${key}`);
    copyFileSync(initFile, `${root}/usr/local/sbin/edge-ha-init`);
    chmodSync(`${root}/usr/local/sbin/edge-ha-init`, 0o755);
    copyFileSync(rebootFile, `${root}/usr/local/sbin/reboot`);
    chmodSync(`${root}/usr/local/sbin/reboot`, 0o755);
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
