import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";

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
  const env: NodeJS.ProcessEnv = { ...base };
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^export ([A-Z_]+)="?(.*?)"?$/.exec(line.trim());
    if (!m) continue;
    env[m[1]] = m[2].replace(/\$PATH/g, base.PATH ?? "");
  }
  return env;
}
