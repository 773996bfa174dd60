import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import * as path from "node:path";
import { $ } from "zx";
import type { Arch, Host } from "./inventory";
import { progress, UserError } from "./log";
import { sshArgs, sshExec } from "./ssh";
import { projectRoot, toolsDir } from "./toolchain";

/*
 * Demo services as images made without a registry: a static Go binary built
 * here (cross-compiled for the node's architecture) in a root file system of
 * its own, imported by each node's Docker engine (`docker import`), tagged by
 * content so that a node that has it is left alone.
 */

export interface ServiceImage {
  /** Image reference on the nodes, e.g. edge-ha/counter:3f2a9c0d1b2e. */
  ref: string;
  /** Root file system tarball on this machine. */
  rootfs: string;
}

/** The services edge-ha ships, by name: folder under services/, port inside the container. */
export const demoServices = { counter: { port: 8080 } } as const;
export type DemoService = keyof typeof demoServices;

/** Builds (once per content and architecture) the root file system of a demo service. */
export async function buildServiceImage(service: DemoService, arch: Arch): Promise<ServiceImage> {
  const source = path.join(projectRoot, "services", service);
  if (!existsSync(source)) throw new UserError(`no service "${service}" in ${path.join(projectRoot, "services")}`);
  const goarch = { amd64: "amd64", arm64: "arm64", armhf: "arm" }[arch];
  const dir = path.join(toolsDir, "images", `${service}-${arch}`);
  mkdirSync(dir, { recursive: true });
  const binary = path.join(dir, service);
  // Go caches the build; this is quick when nothing changed.
  await $({ quiet: true, cwd: source, env: { ...process.env, CGO_ENABLED: "0", GOARCH: goarch, ...(arch === "armhf" ? { GOARM: "7" } : {}) } })`go build -trimpath -ldflags=${"-s -w"} -o ${binary} .`;
  const digest = createHash("sha256").update(readFileSync(binary)).digest("hex").slice(0, 12);
  const rootfs = path.join(dir, `${digest}.tar`);
  if (!existsSync(rootfs)) {
    const root = path.join(dir, "rootfs");
    rmSync(root, { recursive: true, force: true });
    mkdirSync(path.join(root, "tmp"), { recursive: true });
    await $({ quiet: true })`cp ${binary} ${path.join(root, service)}`;
    await $({ quiet: true })`tar -C ${root} -cf ${rootfs}.tmp .`;
    renameSync(`${rootfs}.tmp`, rootfs);
    rmSync(root, { recursive: true, force: true });
  }
  return { ref: `edge-ha/${service}:${digest}`, rootfs };
}

/** Imports the image into a host's engine unless it has it already. */
export async function ensureImageOn(host: Host, service: DemoService, image: ServiceImage): Promise<void> {
  if ((await sshExec(host, `docker image inspect ${image.ref} >/dev/null 2>&1`, { nothrow: true })).exitCode === 0) return;
  progress(`importing ${image.ref} on ${host.name}`);
  const changes = [`ENTRYPOINT ["/${service}"]`, `EXPOSE ${demoServices[service].port}`];
  const importCmd = `docker import ${changes.map((c) => `--change '${c}'`).join(" ")} - ${image.ref} >/dev/null`;
  await $({ quiet: true, input: readFileSync(image.rootfs) })`ssh ${sshArgs(host)} ${importCmd}`;
}
