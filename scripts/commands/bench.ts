import * as path from "node:path";
import { parseArgs } from "node:util";
import { migrationDrill, failoverDrill, swarmDrill, type DrillReport } from "../../lib/lab/drill";
import { loadInventory } from "../../lib/config/inventory";
import { labOptions } from "../../lib/lab/lab";
import { progress, UserError } from "../../lib/log";
import { table } from "../../lib/lab/report";
import { sshExec } from "../../lib/host/ssh";
import { checkpointsDir } from "../../lib/host/paths";
import { projectRoot } from "../../lib/toolchain";
import { writeReports } from "../../lib/lab/report";
import { dumpPaths, type DumpPath, type Transport } from "../../lib/ha/migration";
import { hostScript } from "../../lib/host/shell";

const help = `Usage: edge-ha bench [options]
       edge-ha bench provision [--runs N]   time pulumi up on 3 blank nodes (cold, no-op) and destroy
       edge-ha bench lab [--skip-cold]      time lab up
       edge-ha bench state [--mb 0,200]     migrations and a crash of redis-server with that much state
       edge-ha bench nemesis [--minutes 5]  random faults against a lab, then a checker (see its --help)

Repeats the drills on a provisioned lab stack (see edge-ha drill --help)
and prints medians and maxima side by side: client-visible downtime, failed
requests, state lost, and each drill's own numbers. For reference it measures
the physical floor: the time the lab link needs to carry one checkpoint of
the service (its size from the migrations, the link's rate with rsync, to
the daemon and over SSH).

Options:
  --migrations N     planned migrations (default 20), taking turns between
                     the dump paths
  --dump LIST        the dump paths the migrations take, comma-separated
                     (default runc,docker: the new one and the old one side by
                     side, each with its own rows; see lib/ha/migration.ts)
  --crashes N        crashes of the CRIU service's node, each restored by the
                     failover agents (failover "auto") or by the drill
                     ("manual"); the swarm service is watched through the same
                     crash (default 10)
  --swarm-crashes N  crashes of a node serving the swarm service alone (default 5)
  --service NAME     the CRIU service (default counter)
  --swarm-service NAME  the swarm service (default counter-swarm)
  --lab NAME         (default: $EDGE_HA_LAB or "lab")
  --inventory FILE   (default: inventory/<lab>.yaml)
  --out DIR          where the JSON and HTML reports go (default reports/)
  -h, --help         this text
`;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};
const max = (xs: number[]) => (xs.length ? Math.max(...xs) : NaN);
const fmt = (v: number) => (Number.isNaN(v) ? "-" : String(Math.round(v)));

/** `edge-ha bench`: the drills repeated; `bench provision` and `bench lab` time provisioning and the lab. */
export async function main(args: string[]): Promise<void> {
  if (args[0] === "provision") return (require("./bench-provision") as typeof import("./bench-provision")).main(args.slice(1));
  if (args[0] === "state") return (require("./bench-state") as typeof import("./bench-state")).main(args.slice(1));
  if (args[0] === "nemesis") return (require("./bench-nemesis") as typeof import("./bench-nemesis")).main(args.slice(1));
  if (args[0] === "lab") return (require("./bench-lab") as typeof import("./bench-lab")).main(args.slice(1));
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      migrations: { type: "string", default: "20" },
      dump: { type: "string", default: dumpPaths.join(",") },
      transport: { type: "string", default: "ssh,rsyncd" },
      crashes: { type: "string", default: "10" },
      "swarm-crashes": { type: "string", default: "5" },
      service: { type: "string", default: "counter" },
      "swarm-service": { type: "string", default: "counter-swarm" },
      lab: { type: "string", default: process.env.EDGE_HA_LAB ?? "lab" },
      inventory: { type: "string" },
      out: { type: "string", default: path.join(projectRoot, "reports") },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return void process.stdout.write(help);
  if (positionals.length) throw new UserError(`unexpected arguments: ${positionals.join(" ")} (see --help)`);
  const count = (flag: "migrations" | "crashes" | "swarm-crashes") => {
    const n = Number(values[flag]);
    if (!Number.isInteger(n) || n < 0) throw new UserError(`--${flag}: expected a whole number, found "${values[flag]}"`);
    return n;
  };
  const paths = values.dump!.split(",").map((p) => p.trim());
  const unknown = paths.filter((p) => !dumpPaths.includes(p as DumpPath));
  if (unknown.length || !paths.length) throw new UserError(`--dump: expected a comma-separated list of ${dumpPaths.join(", ")}, found "${values.dump}"`);
  const transports = values.transport!.split(",").map((p) => p.trim());
  if (!transports.length || transports.some((p) => p !== "ssh" && p !== "rsyncd")) throw new UserError(`--transport: expected a comma-separated list of ssh, rsyncd, found "${values.transport}"`);
  const lab = labOptions({ name: values.lab, ...(values.inventory ? { inventoryFile: path.resolve(values.inventory) } : {}) });
  const ctx = { lab, inventory: loadInventory(lab.inventoryFile) };
  const plan: [string, () => Promise<DrillReport>][] = [
    ...Array.from({ length: count("migrations") }, (_, i) => {
      // Every dump path with every transport, in turns.
      const dump = paths[i % paths.length] as DumpPath;
      const transport = transports[Math.floor(i / paths.length) % transports.length] as Transport;
      return [`migration (${dump} dump, ${transport})`, () => migrationDrill(ctx, values.service!, undefined, dump, transport)] as [string, () => Promise<DrillReport>];
    }),
    ...Array.from({ length: count("crashes") }, () => ["failover", () => failoverDrill(ctx, values.service!, values["swarm-service"]!)] as [string, () => Promise<DrillReport>]),
    ...Array.from({ length: count("swarm-crashes") }, () => ["swarm", () => swarmDrill(ctx, values["swarm-service"]!)] as [string, () => Promise<DrillReport>]),
  ];
  const reports: DrillReport[] = [];
  for (const [i, [kind, run]] of plan.entries()) {
    progress(`bench ${i + 1}/${plan.length}: ${kind}`);
    reports.push(await run());
  }

  const body: string[][] = [];
  // Migrations by dump path and transport (the one they took), each its own group of rows.
  const group = (r: DrillReport) => (r.kind === "migration" ? `migration/${r.details.dumpPath}/${r.details.transport}` : r.kind);
  for (const kind of [...paths.flatMap((p) => transports.map((tr) => `migration/${p}/${tr}`)), "failover", "swarm"]) {
    const of = reports.filter((r) => group(r) === kind);
    if (!of.length) continue;
    const row = (what: string, xs: number[]) => body.push([kind, what, String(xs.length), fmt(median(xs)), fmt(max(xs))]);
    row("client downtime (longest gap, ms)", of.map((r) => r.client.longestGapMs));
    row("failed requests", of.map((r) => r.client.failed));
    row("increments lost", of.map((r) => r.client.lostIncrements ?? NaN));
    for (const key of Object.keys(of[0].details)) {
      const xs = of.map((r) => r.details[key]).filter((v): v is number => typeof v === "number");
      // Counts and sizes have no unit; every other figure is in ms.
      if (xs.length) row(`${key}${/Bytes$|^replicas$|Failed$|Requests$|Lost$/.test(key) ? "" : " (ms)"}`, xs);
    }
  }

  // The floor: one checkpoint's bytes over the lab link, with each transport.
  const migrations = reports.filter((r) => r.kind === "migration");
  if (migrations.length) {
    const [a, b] = ctx.inventory.hosts;
    const mb = 64;
    const bytes = median(migrations.map((r) => Number(r.details.checkpointBytes)));
    for (const transport of transports) {
      // The migrations' own send (host/service.sh send_checkpoint), its connection opened first as theirs is.
      const t = await sshExec(
        a,
        hostScript(
          `export CHECKPOINT_TRANSPORT=${transport}; f=/var/tmp/edge-ha-floor; head -c ${mb}M /dev/urandom > $f; transfer_warm ${b.address}; ` +
            `s=$(date +%s%N); send_checkpoint 5 $f ${b.address} floor-test --whole-file; e=$(date +%s%N); echo "$(transfer_mode) $(( (e - s) / 1000000 ))"; rm -f $f`,
        ),
      );
      await sshExec(b, `rm -f ${checkpointsDir}/floor-test`, { nothrow: true });
      const [took, msText] = t.stdout.trim().split(" ");
      const rate = (mb * 1024 * 1024) / (Number(msText) / 1000);
      body.push(["floor", `link ${a.name} -> ${b.name}, ${took} (MB/s)`, "1", fmt(rate / 1e6), ""]);
      body.push(["floor", `one checkpoint over it, ${took} (ms)`, "1", (bytes / rate * 1000).toFixed(1), ""]);
    }
  }
  const files = writeReports(reports, values.out!, `bench-${new Date().toISOString().replace(/[:.]/g, "-")}`);
  console.log(table(["drill", "measure", "runs", "median", "max"], body));
  console.log(`\nreports: ${path.relative(process.cwd(), files.json)}, ${path.relative(process.cwd(), files.html)}`);
}
