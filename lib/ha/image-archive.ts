import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import * as path from "node:path";
import { $ } from "zx";
import { UserError } from "../log";

/*
 * Image archives in `docker save`'s format (manifest.json, the image's
 * config, one layer tarball per layer): what `docker load` takes on every
 * host, whichever way the image was made (a user's archive, or a Dockerfile
 * built and saved here). Read for the tag, architecture and id.
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
