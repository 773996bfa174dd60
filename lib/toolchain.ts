import { existsSync, mkdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { $ } from "zx";
import type { Arch } from "./config/inventory";

/** The project's root folder (where Pulumi.yaml is). */
export const projectRoot = path.resolve(__dirname, "..");

/** Per-checkout tools folder written by scripts/setup. */
export const toolsDir = process.env.EDGE_HA_TOOLS ?? path.join(projectRoot, ".tools");

/**
 * The environment under which the Pulumi CLI uses the project's own toolchain
 * and local backend: read from the file scripts/setup writes, so there is one
 * source of truth for it.
 */
export function pulumiEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const file = path.join(toolsDir, "env");
  if (!existsSync(file)) {
    throw new Error(`${file} not found: the Pulumi toolchain is not set up. Run: bash scripts/setup`);
  }
  // A program run from another checkout of the project (a GitOps pipeline's fresh tree) uses this
  // one's tools too: the same agent binaries and image archives, at the same paths, so that a
  // preview shows only what the commit changes, not every copied file again.
  const env: NodeJS.ProcessEnv = { EDGE_HA_TOOLS: toolsDir, ...base };
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^export ([A-Z_]+)="?(.*?)"?$/.exec(line.trim());
    if (!m) continue;
    env[m[1]] = m[2].replace(/\$PATH/g, base.PATH ?? "");
  }
  return env;
}

/**
 * Cross-compiles the Go program in `source` (a folder of the project) for a
 * host architecture into `binary`: static (no cgo), stripped. Go caches the
 * build, so this is quick when nothing changed.
 */
export async function goBuild(source: string, arch: Arch, binary: string): Promise<void> {
  const goarch = { amd64: "amd64", arm64: "arm64", armhf: "arm" }[arch];
  mkdirSync(path.dirname(binary), { recursive: true });
  await $({ quiet: true, cwd: path.join(projectRoot, source), env: { ...process.env, CGO_ENABLED: "0", GOARCH: goarch, ...(arch === "armhf" ? { GOARM: "7" } : {}) } })`go build -trimpath -ldflags=${"-s -w"} -o ${binary} .`;
}
