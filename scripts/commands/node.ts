import { parseArgs } from "node:util";
import { loadInventory } from "../../lib/config/inventory";
import { drainedNodes, drainNode, undrainNode, type DrainResult } from "../../lib/ha/drain";
import { UsageError, UserError } from "../../lib/log";
import { stackOptions } from "./options";

export const help = `Usage: edge-ha node <command> [options]

Maintenance of one node of a provisioned cluster, with no downtime.

Commands:
  drain NODE     mark NODE drained, then live-migrate every CRIU service off it (one at a time, to its
                 standby or the next node its placement allows, with its address), give the services
                 whose standby it was another standby, and drain its swarm tasks. The failover agents
                 make a drained node no standby and no failover target. A service that cannot move is
                 said and left running where it is. Exit 1 unless the node is empty.
  undrain NODE   lift the mark: NODE is a standby, a failover target and runs swarm tasks again.
                 Services stay where they run ('edge-ha service migrate SERVICE --to NODE' moves one back).
  list           every node of the inventory, and whether it is drained

Options:
  --inventory FILE   the fleet (default: inventory/lab.yaml)
  --json             print the result as JSON
  -h, --help         this text
`;

/** The `edge-ha` subcommand group of this file. */
export async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...stackOptions,
    },
  });
  const [command, node, ...extra] = positionals;
  if (values.help || !command) return void process.stdout.write(help);
  if (extra.length) throw new UsageError(`unexpected arguments: ${extra.join(" ")} (see --help)`);
  const inventory = loadInventory(values.inventory!);
  const print = (result: unknown, text: string) => console.log(values.json ? JSON.stringify(result) : text);

  switch (command) {
    case "drain": {
      if (!node) throw new UsageError("drain needs a node name (see --help)");
      const r = await drainNode(inventory, node);
      print(r, drainTable(r));
      if (!r.complete) throw new UserError(`${node} is marked drained but not empty: see above; fix what stopped each service, then run 'edge-ha node drain ${node}' again`);
      return;
    }
    case "undrain": {
      if (!node) throw new UsageError("undrain needs a node name (see --help)");
      const r = await undrainNode(inventory, node);
      return print(r, r.wasDrained ? `${node} is back in placement${r.swarm ? " and active in the swarm" : ""}; services stay where they run` : `${node} was not drained; it is in placement${r.swarm ? " and active in the swarm" : ""}`);
    }
    case "list": {
      if (node) throw new UsageError(`list takes no node (see --help)`);
      const drained = new Set(await drainedNodes(inventory));
      const rows = inventory.hosts.map((h) => ({ node: h.name, address: h.address, roles: h.roles, drained: drained.has(h.name) }));
      return print(rows, rows.map((r) => `${r.node.padEnd(12)} ${r.address.padEnd(15)} ${r.roles.join(",").padEnd(16)} ${r.drained ? "drained" : ""}`.trimEnd()).join("\n"));
    }
    default:
      throw new UsageError(`unknown command "${command}"; expected drain, undrain or list`);
  }
}

/** The drain's outcome, a line per service. */
export function drainTable(r: DrainResult): string {
  const lines = [`${r.node}: ${r.complete ? "drained, nothing runs there" : "marked drained, NOT EMPTY"}`];
  for (const m of r.moves) {
    lines.push(m.to ? `  ${m.service.padEnd(16)} -> ${m.to}, downtime ${m.downtimeMs} ms${m.standby ? `, standby ${m.standby}` : ""}${m.error ? ` (warning: ${m.error})` : ""}` : `  ${m.service.padEnd(16)} NOT MOVED: ${m.error}`);
  }
  for (const s of r.standbys) lines.push(s.standby ? `  ${s.service.padEnd(16)} on ${s.runsOn}: standby ${s.standby}` : `  ${s.service.padEnd(16)} on ${s.runsOn}: STANDBY NOT MOVED: ${s.error}`);
  if (r.moves.length === 0 && r.standbys.length === 0) lines.push("  no CRIU service ran there or synced to it");
  if (r.swarm) {
    lines.push(`  swarm: ${r.swarm.tasks} task(s) stopped there`);
    if (r.swarm.below.length) lines.push(`  swarm runs ${r.swarm.below.join(", ")}: the other nodes cannot take every task (a port published in host mode allows one per node); in full again after undrain`);
  }
  return lines.join("\n");
}
