import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { parse, stringify } from "yaml";
import { $ } from "zx";
import { restoredSince } from "../../lib/ha/agent";
import { findHost, loadInventory, type Host } from "../../lib/config/inventory";
import { migrate } from "../../lib/ha/migration";
import { locate } from "../../lib/ha/service-container";
import { crash, boot } from "../../lib/lab/faults";
import { down, labOptions } from "../../lib/lab/lab";
import { freshLabStack } from "../../lib/lab/stack";
import { progress, UserError } from "../../lib/log";
import { PulumiStack } from "../../lib/pulumi";
import { projectRoot } from "../../lib/toolchain";

export const help = `Usage: edge-ha bench state [--mb LIST] [--migrations N] [--interval S]

How the size of a service's state moves its numbers: redis-server (built
from examples/redis) filled with each size of --mb in turn (default 0,200;
DEBUG POPULATE, 1 kB values), each time moved --migrations times (default 4)
between nodes, then its node crashed once with automatic failover. Prints,
per size: redis's RSS, the checkpoint's size, planned downtime and its
phases (median and max), and the crash: time until redis answers again, the
age of the checkpoint restored, and whether every key is back; then the
restore's steps on the target (manifest check, the container's files, the
CRIU images into Docker's folder, docker start --checkpoint). Uses its own
lab ("benchstate", 10.77.231.0/24) and stack, removed at the end.

Options:
  --mb LIST         state sizes in MB, comma-separated (default 0,200)
  --migrations N    planned migrations per size (default 4)
  --interval S      the service's sync interval in seconds (default 2)
  --keep            leave the lab and the stack for a look (edge-ha lab down --lab
                    benchstate --subnet 10.77.231 removes the lab)
  -h, --help        this text
`;

const port = 16379;

interface Row {
  mb: number;
  rssMb: number;
  checkpointMb: number;
  downtimes: number[];
  phases: { dump: number[]; transfer: number[]; restore: number[] };
  /** The restore's steps on the target (verify, files, images, start), ms, per migration. */
  restoreSteps: Record<string, number>[];
  crashToServing?: number;
  checkpointAgeMs?: number;
  keysBack?: string;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] ?? NaN;
const ms = (s: number) => Math.round(s * 1000);

/** `edge-ha bench state`. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { mb: { type: "string", default: "0,200" }, migrations: { type: "string", default: "4" }, interval: { type: "string", default: "2" }, keep: { type: "boolean" }, help: { type: "boolean", short: "h" } } });
  if (values.help) return void process.stdout.write(help);
  const sizes = values.mb.split(",").map(Number);
  if (sizes.some((n) => !Number.isInteger(n) || n < 0 || n > 4000)) throw new UserError(`--mb: expected whole numbers of MB from 0 to 4000, found "${values.mb}"`);
  const migrations = Number(values.migrations);
  if (!Number.isInteger(migrations) || migrations < 1) throw new UserError(`--migrations: expected a whole number from 1, found "${values.migrations}"`);
  const interval = Number(values.interval);

  const dir = mkdtempSync(path.join(tmpdir(), "edge-ha-bench-state-"));
  const lab = labOptions({ name: "benchstate", subnetPrefix: "10.77.231", inventoryFile: path.join(dir, "inventory.yaml") });
  const stack = new PulumiStack(projectRoot, "benchstate");
  const stackFile = path.join(projectRoot, "stacks", "Pulumi.benchstate.yaml");
  const inventory = () => loadInventory(lab.inventoryFile);
  const host = (name: string) => findHost(inventory(), name);
  const redis = async (h: Host, ...cmd: string[]) => (await $({ quiet: true, nothrow: true, timeout: "30s" })`redis-cli -h ${h.address} -p ${port} ${cmd}`).stdout.trim();
  const rows: Row[] = [];
  try {
    progress("a lab of 3 nodes and redis-server from examples/redis (about 3 minutes)");
    await freshLabStack(lab, stack, 3);
    const doc = parse(readFileSync(stackFile, "utf8"));
    doc.config["edge-ha:services"] = [
      { name: "kv", build: "examples/redis", ports: [`${port}:6379`], primary: "node1", standby: "node2", syncInterval: interval, command: ["redis-server", "--protected-mode", "no", "--save", "", "--appendonly", "no", "--enable-debug-command", "yes"] },
    ];
    writeFileSync(stackFile, stringify(doc));
    await stack.up();

    for (const mb of sizes) {
      const on = () => locate(inventory(), "kv").then((hs) => hs[0]);
      let where = await on();
      await redis(where, "FLUSHALL");
      if (mb > 0) await redis(where, "DEBUG", "POPULATE", String(mb * 1000), "key", "1000");
      const keys = Number(await redis(where, "DBSIZE"));
      const rssMb = Math.round(Number(/used_memory_rss:(\d+)/.exec(await redis(where, "INFO", "memory"))?.[1] ?? 0) / 1e6);
      progress(`${mb} MB of state (${keys} keys, RSS ${rssMb} MB): ${migrations} migrations`);
      const row: Row = { mb, rssMb, checkpointMb: 0, downtimes: [], phases: { dump: [], transfer: [], restore: [] }, restoreSteps: [] };
      for (let i = 0; i < migrations; i++) {
        const nodes = ["node1", "node2", "node3"];
        const to = nodes[(nodes.indexOf(where.name) + 1) % nodes.length];
        const r = await migrate(inventory(), "kv", to);
        row.downtimes.push(r.downtime);
        row.phases.dump.push(r.phases.dump);
        row.phases.transfer.push(r.phases.transfer);
        row.phases.restore.push(r.phases.restore);
        if (r.restoreSteps) row.restoreSteps.push(r.restoreSteps);
        row.checkpointMb = Math.round(r.bytes / 1e6);
        where = host(to);
      }
      // The sync goes on to the standby the agents keep; let it catch up, then crash the node.
      await new Promise((r) => setTimeout(r, Math.max(3 * interval, 5) * 1000));
      progress(`${mb} MB: crash of ${where.name}`);
      const crashedAt = await crash(lab, where.name);
      const others = { ...inventory(), hosts: inventory().hosts.filter((h) => h.name !== where.name) };
      let back: Host | undefined;
      for (const end = Date.now() + 60_000; !back && Date.now() < end; ) {
        const [h] = await locate(others, "kv");
        if (h && (await redis(h, "PING")) === "PONG") back = h;
        else await new Promise((r) => setTimeout(r, 100));
      }
      if (back) {
        row.crashToServing = Date.now() - crashedAt;
        row.checkpointAgeMs = (await restoredSince(back, "kv", crashedAt))?.ageMs;
        const after = Number(await redis(back, "DBSIZE"));
        row.keysBack = `${after}/${keys}`;
      }
      await boot(lab, where.name);
      await new Promise((r) => setTimeout(r, 15_000));
      rows.push(row);
    }
  } finally {
    if (values.keep) progress(`kept: lab benchstate (inventory ${lab.inventoryFile}) and stack benchstate`);
    else {
      progress("removing the bench's stack and lab");
      await stack.forget();
      await down(lab);
    }
  }
  const line = (cells: (string | number)[]) => cells.map((c) => String(c).padEnd(12)).join(" ");
  console.log(line(["state MB", "RSS MB", "checkpt MB", "downtime", "dump", "transfer", "restore", "crash→serve", "ckpt age", "keys back"]));
  for (const r of rows) {
    const mm = (xs: number[]) => `${ms(median(xs))}/${ms(Math.max(...xs))}`;
    console.log(line([r.mb, r.rssMb, r.checkpointMb, mm(r.downtimes), mm(r.phases.dump), mm(r.phases.transfer), mm(r.phases.restore), r.crashToServing ?? "not back", r.checkpointAgeMs ?? "-", r.keysBack ?? "-"]));
  }
  console.log(`(times in ms, median/max over ${migrations} migrations; sync interval ${interval} s; one crash per size)`);
  console.log("\nThe restore's steps on the target (median ms): checking the manifest, the container's files, the CRIU images into Docker's checkpoint folder, docker start --checkpoint");
  console.log(line(["state MB", "verify", "files", "images", "start"]));
  for (const r of rows) {
    const step = (k: string) => (r.restoreSteps.length ? ms(median(r.restoreSteps.map((s) => s[k] / 1000))) : "-");
    console.log(line([r.mb, step("verify"), step("files"), step("images"), step("start")]));
  }
}
