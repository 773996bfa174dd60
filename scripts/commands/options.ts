import * as path from "node:path";
import { UsageError } from "../../lib/log";
import { projectRoot } from "../../lib/toolchain";

/** The options of every command that acts on a provisioned stack: --inventory, --json and --help (node:util parseArgs). */
export const stackOptions = {
  inventory: { type: "string", default: path.join(projectRoot, "inventory", "lab.yaml") },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/** A port given as `flag` (0: any free one), or a UsageError naming the flag and what was found. */
export function portOption(flag: string, value: string | undefined): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`${flag}: expected a port number 0-65535, found "${value}"`);
  return port;
}
