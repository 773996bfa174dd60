import { votes, type Inventory } from "../config/inventory";
import type { HostSample } from "./sample";

/*
 * The dashboard's picture of the fleet, made from the newest sample of each
 * node (sample.ts) and nothing else: what the page shows, and what its
 * alerts say. Pure, so that the rules below are unit-tested.
 *
 * Up or down is the failover agents' word, not a ping of ours: each
 * controller's state (written every heartbeat) says how long ago it heard
 * each node; a node is down when a majority of the controllers had not heard
 * it for downAfterMs, the rule the agents themselves fail over by
 * (agent/controller.go). Their figures are taken as written, not aged by
 * the time since: the node may have been heard since, and an aged figure
 * said "down" of live nodes. A controller whose state is older than
 * staleStateMs is not counted: its agent does not run, and what it last
 * heard says nothing now.
 */

/** A controller's state older than this (ms, on its own clock) is not counted. */
export const staleStateMs = 3000;

export type Seen = "up" | "down" | "unknown";

export interface NodeView {
  name: string;
  address: string;
  roles: string[];
  arch?: string;
  docker?: string;
  criu?: string;
  /** As the failover agents see it (see the top of this file). */
  agents: Seen;
  /** Whether this node answered the dashboard's last sample (SSH). */
  answers: boolean;
  load?: number;
  memoryUsedPercent?: number;
  /** Its agent's lease (ms left; 0 or less: none), whether it fenced its copies, and whether it is the acting controller. */
  leaseMs?: number;
  fenced?: boolean;
  acting?: boolean;
  drained: boolean;
  /** Its agent's early warnings (agent/signals.go): firmware flags, memory pressure, disk, file-system errors. */
  signals?: { name: string; level: string; message: string }[];
}

export interface ServiceView {
  name: string;
  mode: "criu" | "swarm";
  /** CRIU services: the nodes whose copy runs now (one when all is well). */
  runningOn: string[];
  /** Swarm services: "2/3"-style replicas, and published ports. */
  replicas?: string;
  endpoint?: string;
  vip?: { address: string; holders: string[] };
  standby?: string;
  intervalSeconds?: number;
  /** Age of the standby's newest whole checkpoint now (ms). */
  checkpointAgeMs?: number;
  /** Its maxLag (s), when it has one; and since when (this machine's clock, ms) its lag guard holds it paused. */
  maxLagSeconds?: number;
  pausedSince?: number;
  failover?: "auto" | "manual";
  /** Its healthcheck's verdict where it runs (agent/health.go), when it has one. */
  health?: string;
}

export interface Alert {
  kind: "node-down" | "stale-checkpoint" | "runs-nowhere" | "two-copies" | "early-warning" | "paused";
  message: string;
  node?: string;
  service?: string;
}

export interface FleetView {
  at: number;
  nodes: NodeView[];
  services: ServiceView[];
  alerts: Alert[];
}

/**
 * The view at `now` (this machine's clock, ms) from the newest sample of each
 * node (a missing one: it never answered). `known` holds the CRIU services
 * seen before, so that one that runs nowhere now still shows, with an alert.
 */
export function fleetView(inventory: Inventory, samples: Map<string, HostSample>, now: number, known: Set<string> = new Set()): FleetView {
  const fresh = (s: HostSample | undefined) => !!s && now - s.receivedAt < staleStateMs;
  const controllers = inventory.hosts.filter(votes).map((h) => h.name);
  const majority = Math.floor(controllers.length / 2) + 1;

  const seen = (node: string): Seen => {
    let down = 0;
    let up = 0;
    for (const c of controllers) {
      const s = samples.get(c);
      const heard = s?.agent?.heardMsAgo?.[node];
      if (!fresh(s) || !s!.agent || heard === undefined || !s!.downAfterMs) continue;
      // Its state's age on its own clock when sampled.
      const stateAge = s!.nodeNow - Date.parse(s!.agent.at);
      if (stateAge > staleStateMs) continue;
      if (heard > s!.downAfterMs) down++;
      else up++;
    }
    return down >= majority ? "down" : up > 0 ? "up" : "unknown";
  };

  const nodes: NodeView[] = inventory.hosts.map((h) => {
    const s = samples.get(h.name);
    const answers = fresh(s);
    const drainedBy = controllers.some((c) => samples.get(c)?.agent?.drained?.includes(h.name));
    return {
      name: h.name,
      address: h.address,
      roles: h.roles,
      arch: s?.arch ?? h.arch,
      docker: s?.docker,
      criu: s?.criu,
      agents: seen(h.name),
      answers,
      ...(answers && s
        ? {
            load: s.load[0],
            memoryUsedPercent: s.memory.totalKb ? Math.round((100 * (s.memory.totalKb - s.memory.availableKb)) / s.memory.totalKb) : undefined,
            leaseMs: s.agent?.leaseMs,
            fenced: s.agent?.fenced,
            acting: s.agent?.acting,
            signals: s.agent?.signals,
          }
        : {}),
      drained: drainedBy || !!(answers && s?.agent?.drained?.includes(h.name)),
    };
  });
  const down = new Set(nodes.filter((n) => n.agents === "down").map((n) => n.name));

  // CRIU services: every container edge-ha runs, where it runs.
  const names = new Set(known);
  const answering = [...samples.values()].filter(fresh);
  for (const s of answering) for (const c of s.containers ?? []) names.add(c.service);
  for (const s of answering) for (const name of s.agent?.services ?? []) names.add(name);
  const services: ServiceView[] = [...names].sort().map((name) => {
    // A node the agents call down serves nobody, whatever its last answer said. "paused" is a
    // copy CRIU froze for a checkpoint (--leave-running): it runs on a moment later (edge-ha-ctl report).
    const runningOn = answering.filter((s) => !down.has(s.node) && s.containers?.some((c) => c.service === name && (c.state === "running" || c.state === "paused"))).map((s) => s.node);
    const where = runningOn.map((n) => samples.get(n)!);
    const sync = where.flatMap((s) => s.syncs.filter((y) => y.service === name))[0];
    const standbySample = sync ? samples.get(sync.standby) : undefined;
    const newest = fresh(standbySample) ? standbySample!.newest.find((n) => n.service === name) : undefined;
    const vipHosts = answering.flatMap((s) => s.vips.filter((v) => v.service === name).map((v) => ({ ...v, node: s.node })));
    const port = where.flatMap((s) => s.containers ?? []).find((c) => c.service === name)?.hostPort;
    const health = where.map((s) => s.agent?.local?.find((l) => l.name === name)?.health).find(Boolean);
    const auto = answering.some((s) => s.agent?.services?.includes(name));
    // On this machine's clock, as the checkpoint's age is.
    const paused = where.flatMap((s) => s.paused.filter((p) => p.service === name).map((p) => p.since - s.nodeNow + s.receivedAt))[0];
    return {
      name,
      mode: "criu" as const,
      runningOn,
      ...(port && runningOn.length === 1 ? { endpoint: `${inventory.hosts.find((h) => h.name === runningOn[0])!.address}:${port}` } : {}),
      ...(vipHosts.length ? { vip: { address: vipHosts[0].address, holders: vipHosts.filter((v) => v.held).map((v) => v.node) } } : {}),
      ...(sync ? { standby: sync.standby, intervalSeconds: sync.intervalSeconds, ...(sync.maxLagSeconds !== undefined ? { maxLagSeconds: sync.maxLagSeconds } : {}) } : {}),
      ...(paused !== undefined ? { pausedSince: paused } : {}),
      ...(newest ? { checkpointAgeMs: Math.max(0, standbySample!.nodeNow - newest.takenAt + (now - standbySample!.receivedAt)) } : {}),
      failover: auto ? ("auto" as const) : ("manual" as const),
      ...(health ? { health } : {}),
    };
  });
  // Swarm services, as a manager lists them (the newest full sample that has them).
  const swarmList = answering.filter((s) => s.swarmServices).sort((a, b) => b.receivedAt - a.receivedAt)[0]?.swarmServices ?? [];
  for (const s of swarmList) services.push({ name: s.name, mode: "swarm", runningOn: [], replicas: s.replicas, ...(s.ports ? { endpoint: s.ports } : {}) });

  const alerts: Alert[] = [];
  for (const n of nodes) if (n.agents === "down") alerts.push({ kind: "node-down", node: n.name, message: `${n.name} is down: the failover agents have not heard it` });
  for (const n of nodes) for (const s of n.signals ?? []) if (s.level === "critical") alerts.push({ kind: "early-warning", node: n.name, message: `${n.name}: ${s.name}: ${s.message}` });
  for (const s of services.filter((s) => s.mode === "criu")) {
    if (s.runningOn.length === 0) alerts.push({ kind: "runs-nowhere", service: s.name, message: `${s.name} runs nowhere` });
    if (s.runningOn.length > 1) alerts.push({ kind: "two-copies", service: s.name, message: `${s.name} runs on ${s.runningOn.join(" and ")}: two copies` });
    if (s.pausedSince !== undefined) {
      alerts.push({ kind: "paused", service: s.name, message: `${s.name} is paused (for ${((now - s.pausedSince) / 1000).toFixed(1)} s): its standby ${s.standby ?? ""} lags more than its maxLag of ${s.maxLagSeconds ?? "?"} s; it resumes when a checkpoint gets there` });
    }
    if (s.intervalSeconds && s.checkpointAgeMs !== undefined && s.checkpointAgeMs > 2 * s.intervalSeconds * 1000) {
      alerts.push({ kind: "stale-checkpoint", service: s.name, message: `${s.name}: the newest checkpoint on ${s.standby} is ${(s.checkpointAgeMs / 1000).toFixed(1)} s old, more than twice its ${s.intervalSeconds} s interval` });
    }
    if (s.intervalSeconds && s.standby && s.checkpointAgeMs === undefined && s.runningOn.length === 1 && fresh(samples.get(s.standby))) {
      alerts.push({ kind: "stale-checkpoint", service: s.name, message: `${s.name}: ${s.standby} holds no whole checkpoint of it` });
    }
  }
  return { at: now, nodes, services, alerts };
}
