import { agentManages, restoredSince } from "../ha/agent";
import { Endpoint, tcpAnswers, type Backend } from "../ha/endpoint";
import type { Host, Inventory } from "../config/inventory";
import { findHost } from "../config/inventory";
import { boot, crash } from "./faults";
import type { LabOptions } from "./lab";
import { progress, UserError } from "../log";
import { defaultDumpPath, migrate, type DumpPath, type Transport } from "../ha/migration";
import { gapAcross, Prober, servedAgainAfter, summarize, type Probe, type ProbeSummary } from "./prober";
import { failover, startSync, stopSync, syncOn, type SyncTiming } from "../ha/replication";
import { servicesDir } from "../host/paths";
import { locate, serviceLabel, soleHost, specOf, type ServiceSpec } from "../ha/service-container";
import { sshExec } from "../host/ssh";
import { vipHolders } from "../ha/vip";

/*
 * Drills on the lab: a fault or a move while a client (lib/prober) asks the
 * service through its endpoint every 10 ms; the probes say what a client saw.
 *
 *   migration  planned live migration with CRIU (the endpoint holds clients)
 *   failover   the primary's node crashes; the service is restored on its
 *              standby from the newest synced checkpoint. With failover
 *              "auto" the agents notice and restore it (the drill only
 *              watches: detection is included); with "manual" the drill issues
 *              the failover the moment it crashes the node (no detection)
 *   swarm      the node serving a replicated swarm service crashes; the
 *              endpoint's health check moves clients to another replica
 *              (which has its own state), swarm reschedules the lost one
 *
 * Each leaves the cluster ready for the next: the crashed node is booted,
 * drops its stale copy and becomes the standby.
 */

export type DrillKind = "migration" | "failover" | "swarm";
export const drillKinds: readonly DrillKind[] = ["migration", "failover", "swarm"];

export interface DrillReport {
  kind: DrillKind;
  service: string;
  from: string;
  to: string;
  startedAt: string;
  /** What the client saw: longest gap, failed requests, latency, counter values around the gap, increments lost. */
  client: ProbeSummary;
  /** Drill-specific numbers, in ms unless the name says otherwise (phases, restore, checkpoint age, swarm recovery). */
  details: Record<string, number | string>;
  /** What happened when, in ms on the prober's clock. */
  events: { at: number; what: string }[];
  probes: Probe[];
}

export interface DrillContext {
  lab: LabOptions;
  inventory: Inventory;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ms = (seconds: number) => Math.round(seconds * 1000);

/**
 * A client's view of one service: an endpoint in this process and a prober
 * asking it; and, when the service has a virtual address, a second prober
 * asking it there straight, with nothing of edge-ha in its path.
 */
async function watch(backends: Backend[], healthCheck?: boolean, vip?: Backend) {
  const endpoint = new Endpoint({ listen: { host: "127.0.0.1", port: 0 }, ...(healthCheck ? { healthCheck: { everyMs: 100, failures: 2 } } : {}) });
  endpoint.setBackends(backends);
  await endpoint.start();
  const prober = new Prober({ host: "127.0.0.1", port: endpoint.port() }, 10);
  const vipProber = vip ? new Prober(vip, 10) : undefined;
  const events: DrillReport["events"] = [];
  const mark = (what: string) => {
    events.push({ at: Math.round(prober.now()), what });
    progress(what);
  };
  prober.start();
  vipProber?.start();
  // Called on the way out and again in finally (for when a drill fails): it works once.
  let stopped: Promise<{ probes: Probe[]; client: ProbeSummary; vip?: { probes: Probe[]; client: ProbeSummary } }> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      const [probes, vipProbes] = await Promise.all([prober.stop(), vipProber?.stop()]);
      await endpoint.stop();
      return { probes, client: summarize(probes), ...(vipProbes ? { vip: { probes: vipProbes, client: summarize(vipProbes) } } : {}) };
    })());
  /** The VIP prober's clock at wall-clock time `wallMs` (undefined without a vip). */
  const vipClock = (wallMs: number) => (vipProber ? vipProber.now() - (Date.now() - wallMs) : undefined);
  return { endpoint, prober, events, mark, stop, vipClock };
}

/** The service's virtual address and port, when it has one (the drills probe it beside the endpoint). */
async function vipOf(ctx: DrillContext, spec: ServiceSpec): Promise<Backend | undefined> {
  const { address } = await vipHolders(ctx.inventory, spec.name);
  return address ? { host: address, port: spec.hostPort } : undefined;
}

/** What the client at the virtual address saw, as drill details (none without one). */
function vipDetails(seen: { client: ProbeSummary } | undefined): Record<string, number> {
  return seen ? { vipLongestGap: Math.round(seen.client.longestGapMs), vipFailed: seen.client.failed, vipRequests: seen.client.requests } : {};
}

/** (a) Planned migration of `service` to `toName` (default: its standby, else the next host). */
export async function migrationDrill(ctx: DrillContext, service: string, toName?: string, dump?: DumpPath, transport?: Transport): Promise<DrillReport> {
  const source = await soleHost(ctx.inventory, service);
  const sync = await syncOn(source, service);
  const target = toName ? findHost(ctx.inventory, toName) : sync ? findHost(ctx.inventory, sync.standby) : ctx.inventory.hosts.find((h) => h.name !== source.name)!;
  const spec = await specOf(source, service);
  const startedAt = new Date().toISOString();
  const w = await watch([{ host: source.address, port: spec.hostPort }], false, await vipOf(ctx, spec));
  try {
    await sleep(1000);
    w.mark(`migrating ${service} ${source.name} -> ${target.name}`);
    const startedWall = Date.now();
    const r = await migrate(ctx.inventory, service, target.name, { endpoint: w.endpoint, dump, transport });
    w.mark(`${service} serves on ${target.name}`);
    await sleep(1000);
    const { probes, client, vip } = await w.stop();
    // At the virtual address: the gap across the frozen window (from the dump's start to the restore's end), not
    // one of the sync's checkpoints before or after it (hosts whose CRIU keeps the network lock for them drop SYNs meanwhile: README).
    const frozenFrom = startedWall + ms(r.phases.prepare);
    const vipWindow = vip && gapAcross(vip.probes, w.vipClock(frozenFrom)!, w.vipClock(frozenFrom + ms(r.downtime))!);
    const details = {
      dumpPath: dump ?? defaultDumpPath, transport: r.transport, prepare: ms(r.phases.prepare), dump: ms(r.phases.dump), transfer: ms(r.phases.transfer), restore: ms(r.phases.restore), switch: ms(r.phases.switch), downtime: ms(r.downtime), checkpointBytes: r.bytes,
      ...vipDetails(vip),
      ...(vip ? { vipGap: Math.round(vipWindow!) } : {}),
    };
    return { kind: "migration", service, from: source.name, to: target.name, startedAt, client, details, events: w.events, probes };
  } finally {
    await w.stop();
  }
}

/** (b) The primary's node crashes; the service is restored on its standby; the old primary comes back as the standby. */
export async function failoverDrill(ctx: DrillContext, service: string, swarmService?: string): Promise<DrillReport> {
  const primary = await soleHost(ctx.inventory, service);
  const sync = await syncOn(primary, service);
  if (!sync) throw new UserError(`${service} has no checkpoint sync on ${primary.name}; declare its standby and syncInterval in the stack (edge-ha:services) or run: edge-ha service sync ${service} --standby NODE`);
  const standby = findHost(ctx.inventory, sync.standby);
  const spec = await specOf(primary, service);
  if (await agentManages(primary, service)) return automaticFailover(ctx, spec, primary, sync.intervalSeconds, swarmService);
  const startedAt = new Date().toISOString();
  const w = await watch([{ host: primary.address, port: spec.hostPort }], false, await vipOf(ctx, spec));
  let crashed = false;
  try {
    // Several syncs happen while the client counts.
    await sleep(Math.max(2000, 2.5 * sync.intervalSeconds * 1000));
    w.mark(`crash ${primary.name}`);
    const crashedWall = await crash(ctx.lab, primary.name);
    crashed = true;
    await w.endpoint.hold();
    w.mark(`failover ${service} to ${standby.name}`);
    // The drill's operator acts once the lab has the node off (Docker notices a death a while after the kill).
    const reaction = (Date.now() - crashedWall) / 1000;
    const r = await failover(ctx.inventory, service, standby.name);
    await w.endpoint.switchTo({ host: standby.address, port: spec.hostPort });
    const sinceCrash = (Date.now() - crashedWall) / 1000;
    w.mark(`${service} serves on ${standby.name}`);
    await sleep(1000);
    const { probes, client, vip } = await w.stop();
    const vipBack = vip && servedAgainAfter(vip.probes, w.vipClock(crashedWall)!);
    const details = {
      mode: "manual",
      ...vipDetails(vip),
      ...(vip ? { vipCrashToServing: vipBack !== undefined ? Math.round(vipBack) : "never" } : {}),
      crashToServing: ms(sinceCrash),
      crashToCommand: ms(reaction),
      restore: ms(r.restore),
      // When each failover step was done, from its start: where a slow failover spends its time.
      checked: ms(r.steps.checked),
      prepared: ms(r.steps.prepared),
      checkpointAgeAtCrash: ms(Math.max(0, r.checkpointAge - (sinceCrash - r.restore))),
      syncInterval: ms(sync.intervalSeconds),
    };
    return { kind: "failover", service, from: primary.name, to: standby.name, startedAt, client, details, events: w.events, probes };
  } finally {
    await w.stop();
    if (crashed) await rejoinAsStandby(ctx, primary, standby, spec, sync);
  }
}

/**
 * The failover agents' drill: crash the primary and only watch. The endpoint
 * checks every host that may run the service and sends clients to the one
 * that answers, so it follows the service with no command either.
 */
async function automaticFailover(ctx: DrillContext, spec: ServiceSpec, primary: Host, intervalSeconds: number, swarmService?: string): Promise<DrillReport> {
  const service = spec.name;
  const startedAt = new Date().toISOString();
  const others = ctx.inventory.hosts.filter((h) => h.name !== primary.name);
  const w = await watch([primary, ...others].map((h) => ({ host: h.address, port: spec.hostPort })), true, await vipOf(ctx, spec));
  // The swarm service, if any, through an endpoint of its own: the same crash, side by side.
  const swarm = swarmService ? await watchSwarm(ctx, swarmService, primary) : undefined;
  let crashed = false;
  try {
    await sleep(Math.max(2000, 2.5 * intervalSeconds * 1000));
    w.mark(`crash ${primary.name} (the agents restore ${service})`);
    const crashedWall = await crash(ctx.lab, primary.name);
    crashed = true;
    // The prober's clock at the crash (its signals, not crash's return: Docker notices a death late).
    const crashedAt = w.prober.now() - (Date.now() - crashedWall);
    let on: Host | undefined;
    while (!on && w.prober.now() - crashedAt < 30_000) {
      const hosts = await locate({ ...ctx.inventory, hosts: others }, service);
      if (hosts.length === 1 && (await tcpAnswers(hosts[0].address, spec.hostPort, 300))) on = hosts[0];
      else await sleep(100);
    }
    if (!on) throw new UserError(`the agents did not restore ${service} within 30 s of ${primary.name}'s crash; 'edge-ha service status ${service}' shows their events`);
    w.mark(`${service} serves on ${on.name}`);
    await sleep(1000);
    const { probes, client, vip } = await w.stop();
    const back = servedAgainAfter(probes, crashedAt);
    const restored = await restoredSince(on, service, crashedWall);
    const vipBack = vip && servedAgainAfter(vip.probes, w.vipClock(crashedWall)!);
    const details: Record<string, number | string> = {
      mode: "auto",
      crashToServing: back !== undefined ? Math.round(back) : "never",
      ...(vip ? { vipCrashToServing: vipBack !== undefined ? Math.round(vipBack) : "never", ...vipDetails(vip) } : {}),
      checkpointAgeAtCrash: restored?.ageMs ?? "unknown",
      syncInterval: ms(intervalSeconds),
    };
    if (swarm) {
      const seen = (await swarm.stop()).client;
      Object.assign(details, { swarmService: swarmService!, swarmHadReplicaOnCrashedNode: swarm.onVictim ? "yes" : "no", swarmGap: Math.round(seen.longestGapMs), swarmFailed: seen.failed, swarmLost: seen.lostIncrements ?? 0 });
    }
    return { kind: "failover", service, from: primary.name, to: on.name, startedAt, client, details, events: w.events, probes };
  } finally {
    await w.stop();
    await swarm?.stop();
    if (crashed) {
      progress(`boot ${primary.name}; the agents remove its stale copy and keep ${service} synced to a standby`);
      await boot(ctx.lab, primary.name);
      progress(`${service} syncs to ${await untilSettled(ctx, service, primary)}`);
    }
  }
}

/** A client of a swarm service through a health-checked endpoint over its replicas (`victim`'s first, when it has one). */
async function watchSwarm(ctx: DrillContext, service: string, victim: Host) {
  const manager = ctx.inventory.hosts.find((h) => h.roles.includes("manager") && h.name !== victim.name);
  if (!manager) throw new UserError(`watching ${service} needs a manager other than ${victim.name}`);
  const port = await swarmPort(manager, service);
  // Just after pulumi up (or a boot) its tasks may still be starting.
  let nodes = await swarmTasks(manager, service);
  for (let i = 0; i < 40 && nodes.length === 0; i++) {
    await sleep(500);
    nodes = await swarmTasks(manager, service);
  }
  if (!port || nodes.length === 0) throw new UserError(`${service} is not a running swarm service with a published port (docker service ps ${service} on ${manager.name})`);
  const onVictim = nodes.includes(victim.name);
  const ordered = [...nodes.filter((n) => n === victim.name), ...nodes.filter((n) => n !== victim.name)];
  const w = await watch(ordered.map((n) => ({ host: findHost(ctx.inventory, n).address, port })), true);
  return { onVictim, stop: w.stop };
}

/**
 * Waits (up to 150 s) until the agents have settled after `host` came back:
 * its stale copy is gone and the service syncs to a standby that is up (the
 * returning node itself when the service's placement prefers it).
 */
async function untilSettled(ctx: DrillContext, service: string, host: Host): Promise<string> {
  for (let i = 0; i < 300; i++) {
    const [primary] = await locate(ctx.inventory, service);
    const standby = primary && (await syncOn(primary, service))?.standby;
    const stale = (await sshExec(host, `docker container inspect ${service} >/dev/null 2>&1 || test -f ${servicesDir}/${service}.sync`, { nothrow: true })).exitCode === 0;
    if (standby && standby !== primary.name && !stale && (await sshExec(findHost(ctx.inventory, standby), "true", { nothrow: true, connectTimeout: 2 })).exitCode === 0) return standby;
    await sleep(500);
  }
  throw new UserError(`the agents did not settle ${service} within 150 s of ${host.name}'s boot (a stale copy there, or no standby that is up); 'edge-ha service status ${service}' shows their events`);
}

/** Boots a crashed primary; its stale copy goes and it becomes the standby of the service's new primary. */
async function rejoinAsStandby(ctx: DrillContext, old: Host, primary: Host, spec: ServiceSpec, sync: SyncTiming): Promise<void> {
  const service = spec.name;
  progress(`boot ${old.name}; it becomes the standby of ${service}`);
  await boot(ctx.lab, old.name);
  await stopSync(old, service);
  await sshExec(old, `docker rm -f ${service} >/dev/null 2>&1 || true`);
  if ((await locate(ctx.inventory, service)).some((h) => h.name === primary.name)) await startSync(primary, old, spec, sync);
}

/** The port a swarm service publishes (0 when none), as the swarm manager `on` says. */
async function swarmPort(on: Host, service: string): Promise<number> {
  return Number((await sshExec(on, `docker service inspect -f '{{range .Endpoint.Ports}}{{.PublishedPort}}{{end}}' ${service}`)).stdout.trim());
}

/** The nodes where a swarm service's tasks run, as the swarm manager `on` sees them. */
async function swarmTasks(on: Host, service: string): Promise<string[]> {
  return (await sshExec(on, `docker service ps ${service} --filter desired-state=running --format '{{.Node}} {{.CurrentState}}'`, { connectTimeout: 2 })).stdout
    .trim()
    .split("\n")
    .filter((l) => / Running /.test(` ${l} `))
    .map((l) => l.split(" ")[0]);
}

/** (c) The node serving a swarm service crashes; the endpoint's health check moves clients, swarm reschedules. */
export async function swarmDrill(ctx: DrillContext, service: string): Promise<DrillReport> {
  const managers = ctx.inventory.hosts.filter((h) => h.roles.includes("manager"));
  const manager = managers[0];
  if (!manager) throw new UserError(`${ctx.inventory.file} has no manager to ask the swarm`);
  const tasks = (on: Host) => swarmTasks(on, service);
  const replicas = Number((await sshExec(manager, `docker service inspect -f '{{.Spec.Mode.Replicated.Replicas}}' ${service}`, { nothrow: true })).stdout.trim());
  if (!replicas) throw new UserError(`${service} is not a replicated swarm service on ${manager.name} (declare it with mode: swarm in edge-ha:services)`);
  const port = await swarmPort(manager, service);
  // Swarm's view lags behind a node that just crashed or booted: wait until the replicas it calls running answer.
  let running = await tasks(manager);
  for (let i = 0; i < 40; i++) {
    const answering = await Promise.all(running.map((n) => tcpAnswers(findHost(ctx.inventory, n).address, port, 300)));
    if (running.length >= replicas && answering.every(Boolean)) break;
    await sleep(500);
    running = await tasks(manager);
  }
  if (running.length < replicas) {
    // Swarm does not move replicas back to a node that returned: spread them again.
    progress(`${service} runs ${running.length} of ${replicas} replicas; rebalancing (docker service update --force)`);
    await sshExec(manager, `docker service update --quiet --force ${service} >/dev/null`);
    running = await tasks(manager);
  }
  if (running.length < 1) throw new UserError(`${service} has no running replica; docker service ps ${service} on ${manager.name} tells why`);
  // Crash a node that runs no CRIU-managed service: this drill is about swarm's recovery, not theirs.
  const hosts = running.map((n) => findHost(ctx.inventory, n));
  // (Or, when there is none, one whose CRIU services the failover agents restore by themselves.)
  const criuServices = await Promise.all(hosts.map(async (h) => (await sshExec(h, `docker ps --filter label=${serviceLabel} --format '{{.Names}}'`)).stdout.split("\n").filter(Boolean)));
  let victim = hosts.find((_, i) => criuServices[i].length === 0);
  for (const [i, h] of hosts.entries()) {
    if (victim) break;
    if ((await Promise.all(criuServices[i].map((s) => agentManages(h, s)))).every(Boolean)) victim = h;
  }
  if (!victim) throw new UserError(`every node that runs ${service} (${hosts.map((h) => h.name).join(", ")}) also runs a CRIU service with failover "manual"; the swarm drill would crash that too`);
  // Clients are on the victim when it goes.
  const serving = [victim, ...hosts.filter((h) => h !== victim)];
  const observer = managers.find((m) => m.name !== victim.name);
  if (!observer) throw new UserError(`the swarm drill needs a second manager to watch the swarm while ${victim.name} is down`);
  const startedAt = new Date().toISOString();
  const w = await watch(serving.map((h) => ({ host: h.address, port })), true);
  let crashed = false;
  try {
    await sleep(1000);
    w.mark(`crash ${victim.name}`);
    const crashedAt = await crash(ctx.lab, victim.name);
    crashed = true;
    // Swarm's own recovery: as many running replicas as wanted, none on the dead node.
    let recovered: number | undefined;
    while (Date.now() - crashedAt < 90_000) {
      const now = await tasks(observer).catch(() => [] as string[]);
      if (now.length >= Math.min(replicas, ctx.inventory.hosts.length - 1) && !now.includes(victim.name)) {
        recovered = Date.now() - crashedAt;
        w.mark(`swarm runs ${now.length} replicas again, on ${now.join(", ")}`);
        break;
      }
      await sleep(250);
    }
    await sleep(1000);
    const { probes, client } = await w.stop();
    const detected = w.endpoint.events.find((e) => !e.up);
    const details: Record<string, number | string> = {
      endpointDetected: detected ? detected.at - crashedAt : "never",
      swarmRecovered: recovered ?? "not within 90 s",
      replicas,
    };
    return { kind: "swarm", service, from: victim.name, to: serving.slice(1).map((h) => h.name).join(",") || "-", startedAt, client, details, events: w.events, probes };
  } finally {
    await w.stop();
    if (crashed) {
      progress(`boot ${victim.name}`);
      await boot(ctx.lab, victim.name);
    }
  }
}
