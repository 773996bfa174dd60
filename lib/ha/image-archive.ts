import { createHash } from "node:crypto";
import { createReadStream, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { $ } from "zx";
import type { Arch } from "../config/inventory";
import { UserError } from "../log";

/*
 * Image archives in `docker save`'s format (manifest.json, the image's
 * config, one layer tarball per layer): what `docker load` takes on every
 * host, whichever way the image was made. Written here for the images
 * edge-ha builds from a root file system (no Docker needed on this machine,
 * any architecture); read for the archives users give.
 */

/** What a host needs to know of an archive: the tag it loads as, its architecture and its image id. */
export interface ArchiveInfo {
  ref: string;
  arch: string;
  /** The image id (sha256 of its config), which `docker image inspect` gives once loaded. */
  id: string;
}

export async function fileSha256(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

export interface RootfsImage {
  /** A tarball of the root file system: the image's one layer. */
  rootfs: string;
  ref: string;
  arch: Arch;
  entrypoint: string[];
  exposedPorts: string[];
}

/** Writes `out` (atomically) as a one-layer docker-save archive of `image`; returns its info. */
export async function writeRootfsArchive(image: RootfsImage, out: string): Promise<ArchiveInfo> {
  const diffId = await fileSha256(image.rootfs);
  const config = JSON.stringify({
    architecture: image.arch === "armhf" ? "arm" : image.arch,
    ...(image.arch === "armhf" ? { variant: "v7" } : {}),
    os: "linux",
    config: { Entrypoint: image.entrypoint, ExposedPorts: Object.fromEntries(image.exposedPorts.map((p) => [p, {}])), Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] },
    rootfs: { type: "layers", diff_ids: [`sha256:${diffId}`] },
    history: [{ created_by: "edge-ha (lib/ha/images)" }],
  });
  const configId = createHash("sha256").update(config).digest("hex");
  const dir = `${out}.parts`;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(path.join(dir, diffId), { recursive: true });
  writeFileSync(path.join(dir, `${configId}.json`), config);
  writeFileSync(path.join(dir, "manifest.json"), JSON.stringify([{ Config: `${configId}.json`, RepoTags: [image.ref], Layers: [`${diffId}/layer.tar`] }]));
  // A hard link, not a copy: the layer is the root file system tarball itself.
  await $({ quiet: true })`ln -f ${image.rootfs} ${path.join(dir, diffId, "layer.tar")}`;
  await $({ quiet: true })`tar -C ${dir} -cf ${out}.tmp manifest.json ${configId}.json ${diffId}`;
  renameSync(`${out}.tmp`, out);
  rmSync(dir, { recursive: true, force: true });
  return { ref: image.ref, arch: image.arch, id: `sha256:${configId}` };
}

/** An architecture as Docker and OCI name it (armhf is "arm") as edge-ha's inventory does. */
export const archFromDocker = (arch: string): string => (arch === "arm" ? "armhf" : arch);

/** Reads the tag, architecture and id of a docker-save archive; `where` (file and key) is named in errors. */
export async function readArchive(file: string, where: string): Promise<ArchiveInfo> {
  const member = async (name: string) => (await $({ quiet: true, nothrow: true })`tar -xOf ${file} ${name}`);
  const manifest = await member("manifest.json");
  if (manifest.exitCode !== 0) throw new UserError(`${where}: expected a docker save archive (a tar with a manifest.json) at ${file}; tar says: ${manifest.stderr.trim()}`);
  const entries = JSON.parse(manifest.stdout) as { Config: string; RepoTags?: string[] | null }[];
  if (entries.length !== 1) throw new UserError(`${where}: expected one image in ${file}, found ${entries.length} (docker save one NAME:TAG per archive)`);
  const [entry] = entries;
  const ref = entry.RepoTags?.[0];
  if (!ref) throw new UserError(`${where}: the image in ${file} has no tag; save it by name (docker save NAME:TAG -o ${path.basename(file)}), not by id`);
  const config = JSON.parse((await member(entry.Config)).stdout) as { architecture: string };
  const id = `sha256:${path.basename(entry.Config, ".json").replace(/^blobs\/sha256\//, "")}`;
  return { ref, arch: archFromDocker(config.architecture), id };
}
