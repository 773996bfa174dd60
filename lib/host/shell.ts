import { readFileSync } from "node:fs";
import * as path from "node:path";
import { hostStateDir } from "./paths";

/** A file of host/ (the shell that runs on the hosts, checked by shellcheck), as text. */
export function hostFile(name: string): string {
  return readFileSync(path.join(__dirname, "..", "..", "host", name), "utf8");
}

/** host/prelude.sh (the functions every host command starts with), after the one value it needs. */
export const prelude = `EDGE_HA_STATE=${hostStateDir}\n${hostFile("prelude.sh")}`;

/** A host script: the prelude, then `body`. */
export function hostScript(body: string): string {
  return `${prelude}\n${body.trim()}\n`;
}

/** Quotes a value for a POSIX shell. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
