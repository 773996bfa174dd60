import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { createInterface } from "node:readline/promises";
import { parseArgs } from "node:util";
import { parse, stringify } from "yaml";
import { $ } from "zx";
import { architectures, loadInventory, parseInventory, unameMachines, type Arch, type Host } from "../../lib/config/inventory";
import { defaultMachineStore, machinesInventory, readMachineStore, type Kept, type Machine } from "../../lib/config/docker-machine";
import { hostKeyFrom, knownHostsName } from "../../lib/host/known-hosts";
import { sshExec } from "../../lib/host/ssh";
import { progress, UsageError, UserError } from "../../lib/log";
import { preflightProblems, probeHost, type LiveFacts } from "../../lib/host/preflight";

export const help = `Usage: edge-ha inventory check FILE [--live] [--json]
       edge-ha inventory from-docker-machine [--store DIR] [--out FILE]
                 [--known-hosts FILE] [--cluster NAME] [--json]

Validates an inventory file: every problem at once, each with the file, the
host and the field. Exits 0 when it is valid, 1 when it is not.

  --live   also asks every host over SSH, changing nothing, what it is
           (host/preflight.sh) and reports what would fail later: an arch
           that is not the host's, a login that is not root, a disabled
           memory cgroup (with the Raspberry Pi OS fix), less than 1 GiB free
           for checkpoints, a clock more than 1 s off this machine's, hosts of
           one arch with different page sizes (a checkpoint restores only on
           its own); and a host that does not answer

from-docker-machine writes an inventory of a docker-machine store's machines
(machines/NAME/config.json: address, SSH user, port and key): their host
keys verified, their architecture asked over SSH. Nothing is written unless
every machine answered. Run again, it rewrites the file only when a machine
changed, and keeps the roles and labels given to its hosts since.

  --store DIR         the store (default $MACHINE_STORAGE_PATH, else
                      ~/.docker/machine)
  --out FILE          the inventory to write (default inventory/docker-machine.yaml)
  --known-hosts FILE  the machines' host keys, checked by hand; without it,
                      known_hosts beside --out: keys it has are trusted, and
                      each new one is collected (ssh-keyscan) and shown with
                      its fingerprint for you to confirm (a terminal is needed)
  --cluster NAME      the cluster's name (default: the one --out has, else
                      "edge")
  --json              the result as JSON
`;

/** `edge-ha inventory`. */
export async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: {
      json: { type: "boolean" },
      live: { type: "boolean" },
      store: { type: "string" },
      out: { type: "string" },
      "known-hosts": { type: "string" },
      cluster: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  const [command, file, ...extra] = positionals;
  if (values.help || !command) return void process.stdout.write(help);
  if (command === "from-docker-machine") {
    if (file) throw new UsageError(`inventory from-docker-machine takes no FILE (found "${file}"); the inventory goes to --out`);
    return fromDockerMachine(values);
  }
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

type Options = { json?: boolean; store?: string; out?: string; "known-hosts"?: string; cluster?: string };

/** `edge-ha inventory from-docker-machine`: see the help. */
async function fromDockerMachine(values: Options): Promise<void> {
  const store = path.resolve(values.store ?? defaultMachineStore());
  const out = path.resolve(values.out ?? path.join("inventory", "docker-machine.yaml"));
  const machines = readMachineStore(store);
  const given = values["known-hosts"] !== undefined;
  const knownHostsFile = path.resolve(values["known-hosts"] ?? path.join(path.dirname(out), "known_hosts"));
  if (given && !existsSync(knownHostsFile)) throw new UserError(`--known-hosts ${knownHostsFile}: no such file`);
  const known = existsSync(knownHostsFile) ? readFileSync(knownHostsFile, "utf8") : "";
  const unknown = machines.filter((m) => !hostKeyFrom(known, m.address, m.port));
  if (unknown.length && given) {
    throw new UserError(
      `${knownHostsFile} has no key for ${unknown.map((m) => `${m.name} (${knownHostsName(m.address, m.port)})`).join(", ")}: add each, checked by hand ` +
        `(ssh-keyscan, and its fingerprint compared with the machine's console), or leave out --known-hosts to collect and confirm them here`,
    );
  }
  if (unknown.length) await confirmHostKeys(unknown, knownHostsFile, known);

  const arch = await machineArchitectures(machines, knownHostsFile);
  const previous = existsSync(out) ? (parse(readFileSync(out, "utf8")) as { cluster?: string; hosts?: ({ name?: string } & Kept)[] } | null) : null;
  const kept = Object.fromEntries((previous?.hosts ?? []).filter((h) => typeof h?.name === "string").map((h) => [h.name!, { roles: h.roles, labels: h.labels }]));
  const cluster = values.cluster ?? previous?.cluster ?? "edge";
  const doc = machinesInventory(machines, { cluster, outDir: path.dirname(out), knownHostsFile, arch, kept });
  const drivers = [...new Set(machines.map((m) => m.driver))].join(", ");
  const text = `# Written by \`edge-ha inventory from-docker-machine\` (${machines.length} machines, driver ${drivers}).\n# Roles and labels given to its hosts here are kept by the next import.\n${stringify(doc)}`;
  // Checked as any inventory is before it is written: an import never leaves a file pulumi up would refuse.
  parseInventory(text, out);
  const changed = !existsSync(out) || readFileSync(out, "utf8") !== text;
  if (changed) {
    mkdirSync(path.dirname(out), { recursive: true });
    writeFileSync(out, text);
  }
  const hosts = machines.map((m) => ({ name: m.name, address: m.address, arch: arch[m.name], user: m.user, port: m.port }));
  if (values.json) return void console.log(JSON.stringify({ file: out, cluster, changed, knownHostsFile, hosts }));
  for (const h of hosts) console.log(`${h.name}: ${h.user}@${h.address}:${h.port}, ${h.arch}`);
  console.log(changed ? `${out}: written, cluster ${cluster}, ${hosts.length} hosts` : `${out}: unchanged`);
}

/**
 * Collects each machine's host key with ssh-keyscan, shows its fingerprint
 * and asks whether to trust it; appends the trusted ones to `file`. A key not
 * confirmed stops the import with nothing written.
 */
async function confirmHostKeys(machines: Machine[], file: string, known: string): Promise<void> {
  if (!process.stdin.isTTY) {
    throw new UserError(
      `no host key yet for ${machines.map((m) => m.name).join(", ")}, and no terminal to confirm them on: give --known-hosts FILE with their keys (checked by hand)`,
    );
  }
  const lines: string[] = [];
  const ask = createInterface({ input: process.stdin, output: process.stderr });
  try {
    for (const m of machines) {
      const scan = await $({ quiet: true, nothrow: true })`ssh-keyscan -T 5 -p ${m.port} ${m.address}`;
      const key = hostKeyFrom(scan.stdout, m.address, m.port);
      if (!key) throw new UserError(`${m.name} (${knownHostsName(m.address, m.port)}) did not show a host key: ${scan.stderr.trim().split("\n").pop() || "no answer"}`);
      const line = `${knownHostsName(m.address, m.port)} ${key}`;
      const fingerprint = (await $({ quiet: true, input: line })`ssh-keygen -lf -`).stdout.trim();
      const answer = await ask.question(`${m.name} (${knownHostsName(m.address, m.port)}) shows ${fingerprint}\nIs that its key (compare it with the machine's console)? [y/N] `);
      if (!/^y(es)?$/i.test(answer.trim())) throw new UserError(`${m.name}'s host key was not confirmed: nothing written`);
      lines.push(line);
    }
  } finally {
    ask.close();
  }
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `${known}${known && !known.endsWith("\n") ? "\n" : ""}${lines.join("\n")}\n`);
  progress(`trusted ${lines.length} host key${lines.length > 1 ? "s" : ""}, in ${file}`);
}

/** Each machine's architecture, asked over SSH with its host key verified; all problems at once, nothing written. */
async function machineArchitectures(machines: Machine[], knownHostsFile: string): Promise<Record<string, Arch>> {
  const byUname = new Map(architectures.flatMap((a) => unameMachines[a].map((u) => [u, a] as const)));
  const problems: string[] = [];
  const arch: Record<string, Arch> = {};
  await Promise.all(
    machines.map(async (m) => {
      const host: Host = { name: m.name, address: m.address, arch: "amd64", roles: ["worker"], labels: {}, ssh: { user: m.user, port: m.port, privateKeyFile: m.keyFile, knownHostsFile } };
      const r = await sshExec(host, "uname -m", { nothrow: true });
      const found = byUname.get(r.stdout.trim());
      if (r.exitCode !== 0) problems.push(`${m.name} (${m.user}@${knownHostsName(m.address, m.port)}): ${r.stderr.trim().split("\n").pop() || `ssh exit ${r.exitCode}`}`);
      else if (!found) problems.push(`${m.name}: uname -m says "${r.stdout.trim()}", not an architecture edge-ha runs on (${architectures.join(", ")})`);
      else arch[m.name] = found;
    }),
  );
  if (problems.length) throw new UserError(`could not ask every machine its architecture (nothing written):\n${problems.map((p) => `  - ${p}`).join("\n")}`);
  return arch;
}
