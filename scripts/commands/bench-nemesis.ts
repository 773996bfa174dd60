import { mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { loadInventory } from "../../lib/config/inventory";
import { labOptions } from "../../lib/lab/lab";
import { runNemesis } from "../../lib/lab/nemesis";
import { faultKinds, type FaultKind } from "../../lib/lab/nemesis-plan";
import { renderNemesisHtml, renderNemesisText } from "../../lib/lab/nemesis-report";
import { UsageError, UserError } from "../../lib/log";
import { projectRoot } from "../../lib/toolchain";

export const help = `Usage: edge-ha bench nemesis [options]

For --minutes, a seeded random schedule of faults against a provisioned lab
(one at a time, each held 2-15 s, 3-12 s apart; half of them aimed at the
node that runs the service), while a client counts on the CRIU service
through an endpoint that follows it (every 10 ms, each write acknowledged)
and a sampler notes every 250 ms on which nodes each service the failover
agents manage runs. Then a checker reports:

  two copies        moments when two nodes ran one service (must be 0)
  lost writes       acknowledged writes lost that were acknowledged more than
                    the sync interval + 1 s before the fault that lost them:
                    the first on the node that acknowledged them in effect
                    then or begun since (must be 0)
  not served again  a fault after which the client was not served within
                    30 s, or a service that ran on no node for 30 s (or at
                    the end)

with, per kind of fault, the time until the client was served again after it
ended and the longest gap it caused. A run with a violation prints its seed:
the same seed replays the same schedule. Every fault is undone at the end,
whatever happens.

Faults (--faults, comma-separated; default all):
  crash           power a node off, boot it again
  partition       cut a node off from all others (and from this machine)
  pair-partition  cut a node off from one other node only
  one-way         drop only what a node sends
  pause-node      freeze a whole node (cgroup freezer: a stalled SD card)
  pause-agent     SIGSTOP only its failover agent
  starve-node     starve a whole node of CPU (5 % of a core per cgroup: all of it runs, late)
A node's clock cannot be jumped in the lab: the nodes are containers and
share this machine's wall clock (time namespaces offset only the monotonic
clocks, and only for processes started in them). The agents trust no wall
clock anyway: leases run on the monotonic clock, messages are ordered by
run and count.

Needs a provisioned lab stack with the service (failover auto), as
edge-ha demo --keep leaves one.

Options:
  --minutes N      how long faults are injected (default 5), then 20 s to settle
  --seed N         the schedule's seed (default: random, printed)
  --faults LIST    which faults (default: all of the above)
  --service NAME   the CRIU service the client counts on (default counter; it must
                   answer POST /incr with {"count": N} like the counter demo)
  --port N         its published port (default 18080)
  --lab NAME       (default: $EDGE_HA_LAB or "lab")
  --inventory FILE (default: inventory/<lab>.yaml)
  --out DIR        where the JSON and HTML reports go (default reports/)
  --json           print the report (without the probes) as JSON
  -h, --help       this text

Exit status: 0 no violation, 1 a violation (or a failure), 2 a wrong command line.
`;

export function parseFaults(list: string): FaultKind[] {
  const kinds = list.split(",").map((k) => k.trim()).filter(Boolean);
  const bad = kinds.filter((k) => !faultKinds.includes(k as FaultKind));
  if (bad.length || kinds.length === 0) throw new UsageError(`--faults: expected some of ${faultKinds.join(", ")}, found "${list}"`);
  return kinds as FaultKind[];
}

const whole = (flag: string, value: string, min: number) => {
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) throw new UsageError(`${flag}: expected a number of at least ${min}, found "${value}"`);
  return n;
};

/** `edge-ha bench nemesis`. */
export async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      minutes: { type: "string", default: "5" },
      seed: { type: "string" },
      faults: { type: "string", default: faultKinds.join(",") },
      service: { type: "string", default: "counter" },
      port: { type: "string", default: "18080" },
      lab: { type: "string", default: process.env.EDGE_HA_LAB ?? "lab" },
      inventory: { type: "string" },
      out: { type: "string", default: path.join(projectRoot, "reports") },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return void process.stdout.write(help);
  if (positionals.length) throw new UsageError(`unexpected arguments: ${positionals.join(" ")} (see --help)`);
  const minutes = whole("--minutes", values.minutes!, 0.1);
  const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : whole("--seed", values.seed, 0);
  const kinds = parseFaults(values.faults!);
  const lab = labOptions({ name: values.lab, ...(values.inventory ? { inventoryFile: path.resolve(values.inventory) } : {}) });
  let inventory;
  try {
    inventory = loadInventory(lab.inventoryFile);
  } catch (err) {
    throw new UserError(`${(err as Error).message}; the nemesis needs a provisioned lab (edge-ha demo --keep)`);
  }
  process.stderr.write(`nemesis: seed ${seed}, ${minutes} min, faults ${kinds.join(",")}\n`);
  const report = await runNemesis({ lab, inventory, service: values.service!, port: whole("--port", values.port!, 1), seed, durationMs: Math.round(minutes * 60000), kinds });
  mkdirSync(values.out!, { recursive: true });
  const name = `nemesis-${report.startedAt.replace(/[:.]/g, "-")}-seed${seed}`;
  const json = path.join(values.out!, `${name}.json`);
  const html = path.join(values.out!, `${name}.html`);
  writeFileSync(json, JSON.stringify(report, null, 2));
  writeFileSync(html, renderNemesisHtml(report));
  if (values.json) console.log(JSON.stringify({ ...report, probes: undefined, files: { json, html } }));
  else console.log(`${renderNemesisText(report)}\n\nreports: ${path.relative(process.cwd(), json)}, ${path.relative(process.cwd(), html)}`);
  if (report.check.violations.length) process.exitCode = 1;
}
