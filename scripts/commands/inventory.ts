import { parseArgs } from "node:util";
import { loadInventory } from "../../lib/config/inventory";
import { UsageError } from "../../lib/log";

export const help = `Usage: edge-ha inventory check FILE [--json]

Validates an inventory file: every problem at once, each with the file, the
host and the field. Exits 0 when it is valid, 1 when it is not.
`;

/** `edge-ha inventory`. */
export async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: "boolean" }, help: { type: "boolean", short: "h" } } });
  const [command, file, ...extra] = positionals;
  if (values.help || !command) return void process.stdout.write(help);
  if (command !== "check") throw new UsageError(`unknown command "${command}" (see edge-ha inventory --help)`);
  if (!file || extra.length) throw new UsageError("inventory check takes one FILE");
  const inventory = loadInventory(file);
  const summary = { file, cluster: inventory.cluster, hosts: inventory.hosts.map((h) => ({ name: h.name, address: h.address, arch: h.arch, roles: h.roles })) };
  if (values.json) console.log(JSON.stringify(summary));
  else console.log(`${file}: valid, cluster ${inventory.cluster}, ${inventory.hosts.length} hosts (${inventory.hosts.map((h) => `${h.name} ${h.arch} ${h.roles.join("+")}`).join(", ")})`);
}
