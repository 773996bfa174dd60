import { parseArgs } from "node:util";
import { loadInventory } from "../../lib/config/inventory";
import { UsageError, UserError } from "../../lib/log";
import { preflightProblems, probeHost, type LiveFacts } from "../../lib/host/preflight";

export const help = `Usage: edge-ha inventory check FILE [--live] [--json]

Validates an inventory file: every problem at once, each with the file, the
host and the field. Exits 0 when it is valid, 1 when it is not.

  --live   also asks every host over SSH, changing nothing, what it is
           (host/preflight.sh) and reports what would fail later: an arch
           that is not the host's, a login that is not root, a disabled
           memory cgroup (with the Raspberry Pi OS fix), less than 1 GiB free
           for checkpoints, a clock more than 1 s off this machine's, hosts of
           one arch with different page sizes (a checkpoint restores only on
           its own); and a host that does not answer
`;

/** `edge-ha inventory`. */
export async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: "boolean" }, live: { type: "boolean" }, help: { type: "boolean", short: "h" } } });
  const [command, file, ...extra] = positionals;
  if (values.help || !command) return void process.stdout.write(help);
  if (command !== "check") throw new UsageError(`unknown command "${command}" (see edge-ha inventory --help)`);
  if (!file || extra.length) throw new UsageError("inventory check takes one FILE");
  const inventory = loadInventory(file);
  const summary = { file, cluster: inventory.cluster, hosts: inventory.hosts.map((h) => ({ name: h.name, address: h.address, arch: h.arch, roles: h.roles })) };
  if (!values.live) {
    if (values.json) console.log(JSON.stringify(summary));
    else console.log(`${file}: valid, cluster ${inventory.cluster}, ${inventory.hosts.length} hosts (${inventory.hosts.map((h) => `${h.name} ${h.arch} ${h.roles.join("+")}`).join(", ")})`);
    return;
  }
  // Every host at once; one that does not answer is a problem like the others.
  const answers = await Promise.all(inventory.hosts.map((h) => probeHost(h).then((f) => f, (e: Error) => e)));
  const facts = answers.filter((a): a is LiveFacts => !(a instanceof Error));
  const problems = [...answers.filter((a): a is Error => a instanceof Error).map((e) => e.message), ...preflightProblems(inventory, facts)];
  if (values.json) console.log(JSON.stringify({ ...summary, facts, problems }));
  else {
    for (const f of facts) console.log(`${f.host}: ${f.machine}, kernel ${f.kernel}, ${f.pageSize / 1024}K pages, memory cgroup ${f.memoryCgroup ? "on" : "OFF"}, ${f.freeMb} MiB free, clock ${signed(f.clockOffsetMs)}..${signed(f.clockOffsetMs + f.clockSlackMs)} ms from this machine's`);
    if (!problems.length) console.log(`${file}: valid, and every host is ready for edge-ha`);
  }
  if (problems.length) throw new UserError(`${file}: ${problems.length} host problem${problems.length > 1 ? "s" : ""}:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
}

const signed = (n: number) => `${n >= 0 ? "+" : ""}${n}`;
