import { parseArgs } from "node:util";
import { loadInventory } from "../../lib/config/inventory";
import { defaultUpgradeCommand, rebootChoices, upgradeFleet, type RebootWhen, type UpgradeResult } from "../../lib/ha/upgrade";
import { UsageError, UserError } from "../../lib/log";
import { stackOptions } from "./options";

export const help = `Usage: edge-ha fleet <command> [options]

The whole fleet at once, one node at a time.

Commands:
  upgrade        a rolling upgrade with the services served throughout: for each node in turn, drain
                 it (edge-ha node drain: its services move away live), run the upgrade command, reboot
                 it when needed, wait until it is whole again (SSH, Docker's engine, 'criu check', its
                 failover agent holding its lease), undrain it, then the next. Stops at the first node
                 that fails a step, saying where: that node stays drained, the next ones are untouched.

Options:
  --command CMD        what runs on each node (default: ${defaultUpgradeCommand})
  --reboot WHEN        needed (the default: when /var/run/reboot-required says so), always, or never
  --nodes A,B,...      these nodes, in this order (default: every node, in the inventory's order)
  --boot-timeout S     how long a node may take to come back whole (default 300)
  --inventory FILE     the fleet (default: inventory/lab.yaml)
  --json               print the result as JSON
  -h, --help           this text
`;

/** The `edge-ha` subcommand group of this file. */
export async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...stackOptions,
      command: { type: "string" },
      reboot: { type: "string", default: "needed" },
      nodes: { type: "string" },
      "boot-timeout": { type: "string", default: "300" },
    },
  });
  const [command, ...extra] = positionals;
  if (values.help || !command) return void process.stdout.write(help);
  if (extra.length) throw new UsageError(`unexpected arguments: ${extra.join(" ")} (see --help)`);
  if (command !== "upgrade") throw new UsageError(`unknown command "${command}"; expected upgrade`);
  if (!rebootChoices.includes(values.reboot as RebootWhen)) throw new UsageError(`--reboot: expected one of ${rebootChoices.join(", ")}, found "${values.reboot}"`);
  const bootTimeout = Number(values["boot-timeout"]);
  if (!Number.isInteger(bootTimeout) || bootTimeout < 10) throw new UsageError(`--boot-timeout: expected whole seconds from 10, found "${values["boot-timeout"]}"`);
  if (values.command !== undefined && !values.command.trim()) throw new UsageError("--command: expected a command, found an empty one");
  const inventory = loadInventory(values.inventory!);
  const nodes = values.nodes?.split(",").map((n) => n.trim()).filter(Boolean);
  const r = await upgradeFleet(inventory, { command: values.command, reboot: values.reboot as RebootWhen, nodes, bootTimeoutSeconds: bootTimeout });
  console.log(values.json ? JSON.stringify(r) : upgradeTable(r));
  if (r.stopped) throw new UserError(`the upgrade stopped at ${r.stopped.node} (${r.stopped.step}): ${r.stopped.error}`);
}

/** A line per node upgraded, and where it stopped. */
export function upgradeTable(r: UpgradeResult): string {
  const lines = r.upgraded.map((u) => {
    const moved = u.drain?.moves.filter((m) => m.to).map((m) => `${m.service} -> ${m.to} (${m.downtimeMs} ms)`) ?? [];
    return `${u.node.padEnd(12)} upgraded in ${u.seconds.toFixed(0)} s${u.rebooted ? `, rebooted (up again in ${((u.backAfterMs ?? 0) / 1000).toFixed(1)} s)` : ", no reboot"}${moved.length ? `; moved ${moved.join(", ")}` : ""}`;
  });
  if (r.stopped) lines.push(`${r.stopped.node.padEnd(12)} STOPPED at ${r.stopped.step}: ${r.stopped.error}`);
  return lines.join("\n") || "no node to upgrade";
}
