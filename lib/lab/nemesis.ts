import { $ } from "zx";
import { runsServices, type Inventory } from "../config/inventory";
import { agentEvents, agentPaths, type AgentEvent } from "../ha/agent";
import { sshExec } from "../host/ssh";
import { Endpoint } from "../ha/endpoint";
import { syncOn } from "../ha/replication";
import { swarmNodesNotReady } from "../ha/swarm";
import { locate } from "../ha/service-container";
import { progress, UserError } from "../log";
import { boot, crash, heal, partition, pause, resume, starve, unstarve } from "./faults";
import { frozen, processesUnder, psTable, readText } from "./processes";
import { listNodes, type LabOptions } from "./lab";
import { check, type CheckResult, type FaultWindow, type Sample } from "./nemesis-check";
import { plan, resolveTarget, type FaultKind, type PlannedFault } from "./nemesis-plan";
import { Prober, summarize, type Probe, type ProbeSummary } from "./prober";

/*
 * The nemesis: for a while, a seeded random schedule of faults against a
 * provisioned lab while a client counts through an endpoint that follows the
 * service, and a sampler notes where the service's process runs. Then the
 * checker (nemesis-check) says what went wrong. A violation's seed replays
 * the same schedule.
 */

export interface NemesisOptions {
  lab: LabOptions;
  inventory: Inventory;
  /** The CRIU service with failover auto the client counts on (the counter demo, or one that answers like it). */
  service: string;
  /** Its published port. */
  port: number;
  seed: number;
  durationMs: number;
  kinds: readonly FaultKind[];
  /** After the last fault, how long the run goes on to see the service served again (default 20 s). */
  settleMs?: number;
  /** How often the sampler looks where the service runs (default 250 ms). */
  sampleEveryMs?: number;
}

export interface NemesisReport {
  seed: number;
  startedAt: string;
  durationMs: number;
  kinds: readonly FaultKind[];
  service: string;
  intervalMs: number;
  /** The service's maxLag (ms), when it declares one. */
  maxLagMs?: number;
  plan: PlannedFault[];
  /** The faults as they happened, on the client's clock (ms since its start). */
  faults: FaultWindow[];
  /** Where the service ran, every sampleEveryMs. */
  samples: Sample[];
  client: ProbeSummary;
  check: CheckResult;
  /** What the agents logged during the run. */
  agentEvents: AgentEvent[];
  probes: Probe[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs the schedule; undoes every fault whatever happens; returns what the checker found. */
export async function runNemesis(options: NemesisOptions): Promise<NemesisReport> {
  const { lab, inventory, service, port, seed, durationMs, kinds } = options;
  const settleMs = options.settleMs ?? 20000;
  const sampleEveryMs = options.sampleEveryMs ?? 250;
  const dataHosts = inventory.hosts.filter(runsServices);
  const labNodes = await listNodes(lab);
  const nodeNames = labNodes.map((n) => n.name);
  for (const h of inventory.hosts) {
    if (!nodeNames.includes(h.name)) throw new UserError(`${inventory.file} lists ${h.name}, which lab "${lab.name}" does not have: the nemesis runs on a lab's own inventory`);
  }
  const where = await locate(inventory, service);
  if (where.length !== 1) throw new UserError(`${service} runs on ${where.length ? where.map((h) => h.name).join(" and ") : "no host"}; the nemesis starts from one running copy`);
  const sync = await syncOn(where[0], service);
  if (!sync) throw new UserError(`${service} is not synced from ${where[0].name}: the nemesis needs a CRIU service with a standby (and failover auto)`);
  const intervalMs = Math.round(sync.intervalSeconds * 1000);
  // Its declared bound on what a failover loses, when it has one.
  const maxLagMs = sync.maxLagSeconds !== undefined ? Math.round(sync.maxLagSeconds * 1000) : undefined;
  const schedule = plan({ seed, durationMs, kinds });
  // Every service the agents fail over is watched (two copies, running nowhere); the client counts on one.
  const config = await sshExec(where[0], `cat ${agentPaths.config}`, { nothrow: true });
  const watched = config.exitCode === 0 ? (JSON.parse(config.stdout) as { services: { name: string }[] }).services.map((s) => s.name) : [];
  if (!watched.includes(service)) throw new UserError(`no failover agent on ${where[0].name} manages ${service}: the nemesis needs a service with failover auto (pulumi up installs the agents)`);

  const endpoint = new Endpoint({ listen: { host: "127.0.0.1", port: 0 }, healthCheck: { everyMs: 100, failures: 2 } });
  endpoint.setBackends(dataHosts.map((h) => ({ host: h.address, port })));
  await endpoint.start();
  const prober = new Prober({ host: "127.0.0.1", port: endpoint.port() }, 10);
  const samples: Sample[] = [];
  const faults: FaultWindow[] = [];
  const startedAt = new Date().toISOString();
  const startedMs = Date.now();
  let sampling = true;
  const containerNames = new Map<string, string>();
  const sampler = (async () => {
    while (sampling) {
      const at = prober.now();
      const found = await runningCopies(lab, watched, containerNames).catch(() => undefined);
      if (found) samples.push({ at, ...found });
      await sleep(sampleEveryMs);
    }
  })();
  prober.start();
  let current: { undo: () => Promise<void> } | undefined;
  try {
    for (const [i, fault] of schedule.entries()) {
      await sleep(Math.max(0, fault.at - prober.now()));
      const serving = samples.length ? (samples[samples.length - 1].copies[service] ?? []) : [];
      const { node, peer } = resolveTarget(fault, nodeNames, serving);
      const what = `${fault.kind} ${node}${peer ? ` from ${peer}` : ""}`;
      progress(`fault ${i + 1}/${schedule.length} at ${(prober.now() / 1000).toFixed(1)} s: ${what} for ${(fault.holdMs / 1000).toFixed(1)} s`);
      const start = prober.now();
      current = await inject(lab, fault.kind, node, peer).catch((err) => {
        progress(`fault ${i + 1} not injected: ${err.message}`);
        return undefined;
      });
      if (!current) continue;
      await sleep(fault.holdMs);
      // An undo that fails (a node that does not boot) is said, and the run goes on: undoAll retries at the end.
      await current.undo().catch((err) => progress(`undoing fault ${i + 1} failed: ${err.message}`));
      current = undefined;
      faults.push({ kind: fault.kind, node, ...(peer ? { peer } : {}), start, end: prober.now() });
    }
    progress(`faults done; ${settleMs / 1000} s more to see the service served again`);
    await sleep(settleMs);
  } finally {
    await current?.undo().catch(() => undefined);
    await undoAll(lab);
    await swarmWholeAgain(inventory);
    sampling = false;
    await sampler;
    await prober.stop();
    await endpoint.stop();
  }
  const probes = prober.probes;
  const events = (await agentEvents(inventory.hosts, 400).catch(() => [])).filter((e) => Date.parse(e.at) >= startedMs);
  return {
    seed,
    startedAt,
    durationMs,
    kinds,
    service,
    intervalMs,
    ...(maxLagMs !== undefined ? { maxLagMs } : {}),
    plan: schedule,
    faults,
    samples,
    client: summarize(probes),
    check: check(probes, samples, faults, { intervalMs, maxLagMs, service }),
    agentEvents: events,
    probes,
  };
}

/** Starts one fault; its undo ends it. */
async function inject(lab: LabOptions, kind: FaultKind, node: string, peer?: string): Promise<{ undo: () => Promise<void> }> {
  switch (kind) {
    case "crash":
      await crash(lab, node);
      return { undo: () => boot(lab, node) };
    case "partition":
      await partition(lab, node);
      return { undo: () => heal(lab, node) };
    case "pair-partition":
      await partition(lab, node, { from: peer });
      return { undo: () => heal(lab, node, peer) };
    case "one-way":
      await partition(lab, node, { oneWay: true });
      return { undo: () => heal(lab, node) };
    case "pause-node":
      await pause(lab, node);
      return { undo: () => resume(lab, node) };
    case "pause-agent":
      await pause(lab, node, true);
      return { undo: () => resume(lab, node) };
    case "starve-node":
      await starve(lab, node);
      return { undo: () => unstarve(lab, node) };
  }
}

/** Leaves the lab as the nemesis found it: every node healed, continued and powered on. */
async function undoAll(lab: LabOptions): Promise<void> {
  for (const n of await listNodes(lab)) {
    await heal(lab, n.name).catch(() => undefined);
    await unstarve(lab, n.name).catch(() => undefined);
    if (n.running) await resume(lab, n.name).catch(() => undefined);
    else await boot(lab, n.name).catch(() => undefined);
  }
}

/**
 * Waits up to 60 s for the swarm to be whole again (a lab with managers): a
 * leader, and every node ready as it lists them (lib/ha/swarm.ts). A manager
 * paused or crashed leaves the others electing a leader for seconds, and a
 * paused one, resumed, may start an election of its own. What follows a
 * nemesis (a test, a bench's next part) finds the lab as it was: CI's
 * dashboard test read the join token right after a nemesis whose last fault
 * paused a manager, and the engine said "The swarm does not have a leader".
 * Said when it does not come.
 */
async function swarmWholeAgain(inventory: Inventory): Promise<void> {
  if (!inventory.hosts.some((h) => h.roles.includes("manager"))) return;
  const started = Date.now();
  let missing = await swarmNodesNotReady(inventory);
  while (missing && Date.now() - started < 60_000) {
    await sleep(1000);
    missing = await swarmNodesNotReady(inventory);
  }
  const after = `${((Date.now() - started) / 1000).toFixed(1)} s after the faults were undone`;
  if (missing) progress(`the swarm is not whole ${after}: ${missing}`);
  else if (Date.now() - started > 1000) progress(`the swarm is whole again, ${after}`);
}

/**
 * Per service, the lab nodes where its container runs and is not stopped,
 * frozen or a zombie (with what was counted, for a violation's message),
 * read from this machine (one `ps` for all, and the node's own disk through
 * /proc/PID/root): it sees a node that is partitioned or paused, where SSH
 * and the node's dockerd would not answer. A container's first process is
 * the child of its containerd shim; its cgroup names the container, whose
 * name is in the node's engine's files (another container may run the same
 * program, as the counter's swarm twin does).
 */
async function runningCopies(lab: LabOptions, services: string[], names: Map<string, string>): Promise<Pick<Sample, "copies" | "seen">> {
  const copies: Record<string, string[]> = Object.fromEntries(services.map((s) => [s, []]));
  const seen: Record<string, string[]> = Object.fromEntries(services.map((s) => [s, []]));
  const nodes = (await listNodes(lab)).filter((n) => n.running);
  if (nodes.length === 0) return { copies, seen };
  const pids = (await $({ quiet: true })`docker container inspect -f ${"{{.State.Pid}}"} ${nodes.map((n) => n.container)}`).stdout.trim().split("\n").map(Number);
  const table = (await $({ quiet: true })`ps ${psTable}`).stdout;
  const containerName = (nodePid: number, pid: number) => {
    const id = /([0-9a-f]{64})\s*$/m.exec(readText(`/proc/${pid}/cgroup`))?.[1];
    if (!id) return undefined;
    if (!names.has(id)) {
      const name = /"Name":"\/([^"]+)"/.exec(readText(`/proc/${nodePid}/root/var/lib/docker/containers/${id}/config.v2.json`))?.[1];
      if (!name) return undefined;
      names.set(id, name);
    }
    return names.get(id);
  };
  nodes.forEach((n, i) => {
    if (!pids[i]) return;
    const processes = processesUnder(pids[i], table);
    const shims = new Set(processes.filter((p) => p.comm.startsWith("containerd-shim")).map((p) => p.pid));
    for (const p of processes) {
      if (!shims.has(p.ppid) || p.stopped || p.zombie || frozen(p.pid)) continue;
      const name = containerName(pids[i], p.pid);
      if (!name || !copies[name]) continue;
      if (!copies[name].includes(n.name)) copies[name].push(n.name);
      seen[name].push(`${n.name} pid ${p.pid} ${p.stat} ${p.comm}`);
    }
  });
  for (const s of services) copies[s].sort();
  return { copies, seen };
}
