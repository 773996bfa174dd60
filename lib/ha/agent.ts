import * as path from "node:path";
import { runsServices, serviceHosts, votes, type Arch, type Host, type Inventory } from "../config/inventory";
import { checkpointsDir, drainedMark, hostTools } from "../host/paths";
import type { FailoverSettings, ServiceSettings } from "../config/settings";
import { sshExec } from "../host/ssh";
import { goBuild, toolsDir } from "../toolchain";

/*
 * The failover agent (agent/) on every node, as the operator's commands see
 * it: its paths, its configuration, its events. It acts on the node's
 * services through host/edge-ha-ctl (installed by modules/host-tools).
 */

/** Where the agent keeps things on a host. */
export const agentPaths = {
  binary: "/usr/local/sbin/edge-ha-agent",
  /** The same binary run with -watchdog (agent/watchdog.go): a process of its own, named apart. */
  watchdog: "/usr/local/sbin/edge-ha-watchdog",
  /** The agent's lease, written for the watchdog (agent/watchdog.go leaseFile). */
  lease: "/run/edge-ha-agent.lease",
  ctl: hostTools.ctl,
  config: "/etc/edge-ha/agent.json",
  events: "/var/log/edge-ha-events.jsonl",
  state: "/run/edge-ha-agent.json",
} as const;

/** Builds the agent for an architecture (static Go binary); returns its path on this machine. */
export async function buildAgent(arch: Arch): Promise<string> {
  const binary = path.join(toolsDir, "agent", arch, "edge-ha-agent");
  await goBuild("agent", arch, binary);
  return binary;
}

/** The agent's configuration on `host` (agent/main.go Config); `secret` signs every message and order. */
export function agentConfig(host: Host, inventory: Inventory, failover: FailoverSettings, services: ServiceSettings[], secret: string): string {
  const auto = services.filter((s) => s.mode === "criu" && s.failover === "auto");
  return JSON.stringify({
    self: host.name,
    port: failover.port,
    secret,
    heartbeatMs: failover.heartbeatMs,
    downAfterMs: failover.downAfterMs,
    leaseMs: failover.leaseMs,
    noQuorum: failover.noQuorum,
    // "manager": a voter, and a controller (the swarm managers and the witnesses); "witness": it runs no services.
    nodes: inventory.hosts.map((h) => ({ name: h.name, address: h.address, manager: votes(h), witness: !runsServices(h) })),
    services: auto.map((s) => ({ name: s.name, nodes: placement(s, inventory), syncInterval: s.syncInterval, ...(s.maxLag !== undefined ? { maxLag: s.maxLag } : {}), ...(s.health ? { health: s.health } : {}) })),
    ctl: agentPaths.ctl,
    events: agentPaths.events,
    state: agentPaths.state,
    drained: drainedMark,
    ...(failover.earlyWarnings.policy === "off"
      ? {}
      : {
          signals: {
            policy: failover.earlyWarnings.policy,
            throttledFile: failover.earlyWarnings.throttledFile,
            pressureFile: failover.earlyWarnings.pressureFile,
            diskPath: checkpointsDir,
            diskMinFreePercent: failover.earlyWarnings.diskMinFreePercent,
            fsErrorsGlob: "/sys/fs/ext4/*/errors_count",
          },
        }),
  });
}

/** Where a service may run, best first: its primary, its standby, then the other hosts of its architecture. */
export function placement(s: Pick<ServiceSettings, "primary" | "standby">, inventory: Inventory): string[] {
  const arch = inventory.hosts.find((h) => h.name === s.primary)?.arch;
  const rest = serviceHosts(inventory).filter((h) => h.arch === arch && h.name !== s.primary && h.name !== s.standby).map((h) => h.name);
  return [s.primary!, s.standby!, ...rest];
}

/** One thing an agent did or decided (agent/main.go Event). */
export interface AgentEvent {
  at: string;
  node: string;
  kind: string;
  service?: string;
  message: string;
}

/** The events the agents on `hosts` logged, oldest first (from every host that answers; the newest `limit` of each). */
export async function agentEvents(hosts: Host[], limit = 50): Promise<AgentEvent[]> {
  const all = await Promise.all(
    hosts.map(async (h) => {
      const r = await sshExec(h, `tail -n ${limit} ${agentPaths.events} 2>/dev/null`, { nothrow: true, connectTimeout: 2 });
      return r.stdout
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as AgentEvent);
    }),
  );
  return all.flat().sort((a, b) => a.at.localeCompare(b.at));
}

/**
 * The checkpoint the agent on `host` restored `service` from at or after
 * `sinceMs` (epoch ms), and how old it was at `sinceMs`: the state a fault at
 * that moment lost; `undefined` when no such restore was logged there.
 */
export async function restoredSince(host: Host, service: string, sinceMs: number): Promise<{ checkpoint: string; ageMs: number } | undefined> {
  const events = await agentEvents([host]);
  const restored = events.reverse().find((e) => e.kind === "restored" && e.service === service && Date.parse(e.at) >= sinceMs - 1000);
  // Named after the time it was taken: a synced one (s<ns>), or a migration's (m<ms>) when its source died after the transfer.
  const taken = /from checkpoint (([sm])(\d+))/.exec(restored?.message ?? "");
  if (!taken) return undefined;
  const takenMs = taken[2] === "s" ? Number(BigInt(taken[3]) / 1_000_000n) : Number(taken[3]);
  return { checkpoint: taken[1], ageMs: sinceMs - takenMs };
}

/** What the failover agent on a host says of itself (agent/events.go writeState), the fields edge-ha reads. */
export interface AgentState {
  node: string;
  at: string;
  services?: string[];
  /** This node's copies of its services: health is starting, healthy, failing or unhealthy (agent/health.go), absent without a healthcheck. */
  local?: { name: string; state?: string; health?: string }[];
  /** The controller this one backs as the acting one, and whether a majority backs this one (agent/actor.go). */
  backs?: string;
  acting?: boolean;
  /** How long its lease still runs (ms; 0 or less: it holds none), and whether it fenced its copies when the lease lapsed. */
  leaseMs?: number;
  fenced?: boolean;
  /** The nodes the controller knows are drained (agent/drain.go); on another node, itself when it is. */
  drained?: string[];
  /** This node's early warnings (agent/signals.go). */
  signals?: { name: string; level: string; message: string }[];
}

/** The state the failover agent on `host` last wrote; undefined when the host or its agent does not answer. */
export async function agentState(host: Host): Promise<AgentState | undefined> {
  const r = await sshExec(host, `cat ${agentPaths.state} 2>/dev/null`, { nothrow: true, connectTimeout: 2 });
  try {
    return JSON.parse(r.stdout) as AgentState;
  } catch {
    return undefined;
  }
}

/** Whether the failover agent on `host` runs and restores `service` (failover "auto"). */
export async function agentManages(host: Host, service: string): Promise<boolean> {
  const state = await agentState(host);
  return !!state && ((state.services ?? []).includes(service) || (state.local ?? []).some((l) => l.name === service));
}

/** Whether the failover agents manage `service`, as any of `hosts`' agents says (it may run nowhere now). */
export async function agentsManage(hosts: Host[], service: string): Promise<boolean> {
  const answers = await Promise.all(hosts.map((h) => agentManages(h, service)));
  return answers.some(Boolean);
}
