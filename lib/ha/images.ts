import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync } from "node:fs";
import * as path from "node:path";
import { $ } from "zx";
import type { Arch, Host } from "../config/inventory";
import { progress, UserError } from "../log";
import { sshExec } from "../host/ssh";
import { projectRoot, toolsDir } from "../toolchain";
import type { ImageSource } from "../config/service-spec";
import { archFromDocker, fileSha256, readArchive } from "./image-archive";

/*
 * The services' images, made ready on this machine for the hosts of each
 * architecture (prepareImage): an archive in `docker save` format that every
 * host loads (a user's archive, or a Dockerfile built here), or a registry
 * reference every host pulls. Archives are checked by sha256 on the hosts and
 * loaded only where the engine lacks their image id. The demos are ordinary
 * builds (services/counter, services/web): nothing here knows them.
 */

/** An image as the hosts get it. */
export type PreparedImage =
  | {
      kind: "load";
      /** Image reference on the hosts, e.g. edge-ha/counter:3f2a9c0d1b2e (built from services/counter). */
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
    if (built.exitCode !== 0) {
      const said = (built.stdout + built.stderr).trim();
      // The one base image edge-ha's own Dockerfiles name, which no registry serves.
      const hint = /pull access denied for edge-ha\/debian/.test(said) ? "\nedge-ha/debian:bookworm (the base of services/ and examples/) is made on this machine by: edge-ha lab base-image" : "";
      throw new UserError(`${where}: docker build of ${source.context} failed:\n${said.split("\n").slice(-15).join("\n")}${hint}`);
    }
    await $({ quiet: true })`docker save -o ${archive}.tmp ${ref}`;
    renameSync(`${archive}.tmp`, archive);
  }
  const info = await readArchive(archive, where);
  return { kind: "load", ref, archive, sha256: await fileSha256(archive), id: info.id };
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
  await sshExec(host, "docker load -q", { input: readFileSync(image.archive) });
}
