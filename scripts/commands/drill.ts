import * as path from "node:path";
import { parseArgs } from "node:util";
import { drillKinds, failoverDrill, migrationDrill, swarmDrill, type DrillKind, type DrillReport } from "../../lib/lab/drill";
import { loadInventory } from "../../lib/config/inventory";
import { labOptions } from "../../lib/lab/lab";
import { progress, UserError } from "../../lib/log";
import { renderTable, writeReports } from "../../lib/lab/report";
import { projectRoot } from "../../lib/toolchain";

export const help = `Usage: edge-ha drill [options]

Drills on the local lab, each while a client asks the service through its
endpoint every 10 ms: what a client saw (longest gap, failed requests,
latency), and the stateful counter's value before and after (state lost).

  migration  planned live migration of the CRIU service to its standby
  failover   crash of the CRIU service's node; it is restored on the standby
             from the newest synced checkpoint: by the failover agents when
             the service has failover "auto" (the drill only watches, through
             an endpoint that checks every host; with the swarm drill in the
             list the swarm service is watched through the same crash), else
             by the drill at the crash (no detection time); the crashed node
             boots and becomes the standby
  swarm      crash of the node serving the swarm service; the endpoint's
             health check moves clients to another replica; how long swarm
             takes to run its replicas again

Needs a provisioned lab stack with the services (edge-ha demo --keep, or
edge-ha lab up and pulumi up --stack lab).

Options:
  --drills LIST        comma-separated, in order (default: migration,failover,swarm)
  --service NAME       the CRIU service (default: counter)
  --swarm-service NAME the swarm service (default: counter-swarm)
  --inventory FILE     the lab's inventory (default: inventory/<lab>.yaml)
  --lab NAME           the lab whose nodes are crashed (default: $EDGE_HA_LAB or "lab")
  --out DIR            where the JSON and HTML reports go (default: reports/)
  --json               print the JSON report on stdout instead of the table
  -h, --help           this text
`;

export async function runDrills(kinds: DrillKind[], opts: { lab: string; inventory?: string; service: string; swarmService: string; watchSwarm?: boolean }): Promise<DrillReport[]> {
  const lab = labOptions({ name: opts.lab, ...(opts.inventory ? { inventoryFile: path.resolve(opts.inventory) } : {}) });
  const ctx = { lab, inventory: loadInventory(lab.inventoryFile) };
  const reports: DrillReport[] = [];
  for (const [i, kind] of kinds.entries()) {
    progress(`drill ${i + 1}/${kinds.length}: ${kind}`);
    if (kind === "migration") reports.push(await migrationDrill(ctx, opts.service));
    else if (kind === "failover") reports.push(await failoverDrill(ctx, opts.service, kinds.includes("swarm") || opts.watchSwarm ? opts.swarmService : undefined));
    else reports.push(await swarmDrill(ctx, opts.swarmService));
  }
  return reports;
}

export function parseKinds(list: string): DrillKind[] {
  const kinds = list.split(",").map((k) => k.trim()).filter(Boolean);
  for (const k of kinds) if (!drillKinds.includes(k as DrillKind)) throw new UserError(`--drills: expected some of ${drillKinds.join(", ")}, found "${k}"`);
  if (kinds.length === 0) throw new UserError(`--drills: expected some of ${drillKinds.join(", ")}, found nothing`);
  return kinds as DrillKind[];
}

/** `edge-ha drill`: runs the drills named by --drills and writes their reports. */
export async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      drills: { type: "string", default: drillKinds.join(",") },
      service: { type: "string", default: "counter" },
      "swarm-service": { type: "string", default: "counter-swarm" },
      inventory: { type: "string" },
      lab: { type: "string", default: process.env.EDGE_HA_LAB ?? "lab" },
      out: { type: "string", default: path.join(projectRoot, "reports") },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return void process.stdout.write(help);
  if (positionals.length) throw new UserError(`unexpected arguments: ${positionals.join(" ")} (see --help)`);
  const reports = await runDrills(parseKinds(values.drills!), { lab: values.lab!, inventory: values.inventory, service: values.service!, swarmService: values["swarm-service"]! });
  const files = writeReports(reports, values.out!);
  if (values.json) console.log(JSON.stringify({ reports: reports.map(({ probes, ...r }) => r), files }));
  else console.log(`${renderTable(reports)}\n\nreports: ${path.relative(process.cwd(), files.json)}, ${path.relative(process.cwd(), files.html)}`);
}
