import * as path from "node:path";
import { projectRoot } from "../../lib/toolchain";

/** The options of every command that acts on a provisioned stack: --inventory, --json and --help (node:util parseArgs). */
export const stackOptions = {
  inventory: { type: "string", default: path.join(projectRoot, "inventory", "lab.yaml") },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;
