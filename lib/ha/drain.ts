import { findHost, runsServices, serviceHosts, votes, type Host, type Inventory } from "../config/inventory";
import { progress, UserError } from "../log";
import { drainedMark, hostStateDir, servicesDir } from "../host/paths";
import { sshExec } from "../host/ssh";
import { agentPaths, agentState } from "./agent";
import { migrate, type MigrationResult } from "./migration";
import { parseSyncLine, startSync, syncOn } from "./replication";
import { copyImage, locate, serviceLabel, specOf } from "./service-container";
import type { ServiceSettings } from "../config/settings";

/*
 * Node maintenance: a drained node runs nothing. `drainNode` marks it (a file
 * on the node, the only state: its failover agent says it in its heartbeats,
 * and the controllers make it no standby and no failover target), then moves
 * every CRIU service off it by live migration, one at a time, with their
 * addresses; gives the services whose standby it was another standby; and
 * drains its swarm tasks. A service that cannot move is said and left running
 * where it is: a drain never stops a service. `undrainNode` lifts the mark and
 * puts the node back in swarm's placement; services stay where they run.
 */

/** One CRIU service the drain moved, or tried to. */
export interface DrainMove {
  service: string;
  from: string;
  /** Where it runs now (undefined when it could not move: `error` says why and where it runs). */
  to?: string;
  /** The host its sync feeds now. */
  standby?: string;
  downtimeMs?: number;
  error?: string;
}

/** A service running elsewhere whose standby was the drained node. */
export interface DrainRestandby {
  service: string;
  runsOn: string;
  standby?: string;
  error?: string;
}

export interface DrainResult {
  node: string;
  moves: DrainMove[];
  standbys: DrainRestandby[];
  /** The node's swarm tasks, which swarm has stopped there; undefined when the node is in no swarm. */
  swarm?: SwarmDrain;
  /** Whether every CRIU service left and no swarm task is left there. */
  complete: boolean;
}

export interface SwarmDrain {
  /** How many ran on the node. */
  tasks: number;
  /**
   * Swarm services running fewer tasks than their replicas 8 s after the
   * drain ("NAME 2/3"): what the other nodes cannot take (a port published
   * in host mode allows one task per node; constraints). They run again in
   * full when the node is undrained.
   */
  below: string[];
}

export interface UndrainResult {
  node: string;
  /** Whether the node was marked drained before. */
  wasDrained: boolean;
  swarm: boolean;
}

/** The hosts of the inventory that are marked drained (those that answer; the others are not counted). */
export async function drainedNodes(inventory: Inventory): Promise<string[]> {
  const marked = await Promise.all(
    inventory.hosts.map(async (h) => ((await sshExec(h, `test -e ${drainedMark}`, { nothrow: true, connectTimeout: 3 })).exitCode === 0 ? h.name : "")),
  );
  return marked.filter(Boolean);
}

/** Empties `name` by live migration and marks it drained; see the top of this file. */
export async function drainNode(inventory: Inventory, name: string): Promise<DrainResult> {
  const node = findHost(inventory, name);
  if (!runsServices(node)) throw new UserError(`${name} is a witness in ${inventory.file}: it runs no services, so there is nothing to drain`);
  const reach = await sshExec(node, "true", { nothrow: true, connectTimeout: 5 });
  if (reach.exitCode !== 0) throw new UserError(`${name} does not answer over SSH (${reach.stderr.trim() || `exit ${reach.exitCode}`}): a node that is down has nothing to drain; its services are failed over (edge-ha service status SERVICE)`);

  // Marked first: from now on the agents place nothing there.
  await sshExec(node, `mkdir -p ${hostStateDir} && touch ${drainedMark}`);
  progress(`${name} is marked drained`);
  try {
    return await emptyNode(inventory, node);
  } catch (err) {
    // What moved stays where it runs now; the mark stays too, and the message says so.
    throw new UserError(`${(err as Error).message}; ${name} stays marked drained (what moved off it runs where it moved): 'edge-ha node drain ${name}' again once that is fixed, or 'edge-ha node undrain ${name}'`);
  }
}

/** The drain's work once the node is marked: its services moved, its standbys, its swarm tasks. */
async function emptyNode(inventory: Inventory, node: Host): Promise<DrainResult> {
  const name = node.name;
  await agentsSee(inventory, name, true);
  const drained = new Set([...(await drainedNodes(inventory)), name]);

  const moves: DrainMove[] = [];
  for (const service of await servicesOn(node)) {
    const order = await placementOf(inventory, node, service);
    const sync = (await syncOn(node, service))?.standby;
    const eligible = (h: string) => h !== name && !drained.has(h);
    // Its standby first: it holds the image and a recent checkpoint; then its placement.
    const to = [sync, ...order].find((h): h is string => !!h && eligible(h));
    if (!to) {
      moves.push({ service, from: name, error: `no other node may run it (placement ${order.join(", ")}; drained: ${[...drained].join(", ")}): it still runs on ${name}` });
      progress(`${service}: no node to move it to; it still runs on ${name}`);
      continue;
    }
    const standby = order.find((h) => eligible(h) && h !== to);
    progress(`${service}: ${name} -> ${to}${standby ? `, then synced to ${standby}` : ""}`);
    try {
      const r: MigrationResult = await migrate(inventory, service, to, { standby });
      moves.push({ service, from: name, to, standby: sync ? standby : undefined, downtimeMs: Math.round(r.downtime * 1000), ...(r.warning ? { error: r.warning } : {}) });
    } catch (err) {
      // The migration has said what is true (it runs on the source again, or where it is).
      moves.push({ service, from: name, error: (err as Error).message });
      progress(`${service}: ${(err as Error).message}`);
    }
  }

  const standbys = await restandby(inventory, node, drained);
  const swarm = await drainSwarm(inventory, node);
  const left = await servicesOn(node);
  return { node: name, moves, standbys, swarm, complete: left.length === 0 && moves.every((m) => m.to) && standbys.every((s) => s.standby) };
}

/** Lifts the drain mark of `name` and makes it active in the swarm again; services stay where they run. */
export async function undrainNode(inventory: Inventory, name: string): Promise<UndrainResult> {
  const node = findHost(inventory, name);
  const wasDrained = (await sshExec(node, `test -e ${drainedMark} && rm -f ${drainedMark} && echo yes`, { nothrow: true })).stdout.trim() === "yes";
  await agentsSee(inventory, name, false);
  const swarm = await swarmAvailability(inventory, node, "active");
  return { node: name, wasDrained, swarm: swarm !== undefined };
}

/** The CRIU services running on `host` (edge-ha's label). */
async function servicesOn(host: Host): Promise<string[]> {
  const r = await sshExec(host, `docker ps --filter label=${serviceLabel} --format '{{.Names}}'`);
  return r.stdout.split("\n").filter(Boolean).sort();
}

/**
 * Where `service` may run, best first, as the failover agents have it (their
 * configuration on `host`: the stack's primary, standby, then the others), so
 * that the drain picks what the agents would; for a service they do not
 * manage, the inventory's hosts of `host`'s architecture.
 */
async function placementOf(inventory: Inventory, host: Host, service: string): Promise<string[]> {
  const r = await sshExec(host, `cat ${agentPaths.config} 2>/dev/null`, { nothrow: true });
  try {
    const config = JSON.parse(r.stdout) as { services?: { name: string; nodes: string[] }[] };
    const nodes = config.services?.find((s) => s.name === service)?.nodes;
    if (nodes?.length) return nodes;
  } catch {
    // No agent here: the inventory's order.
  }
  return serviceHosts(inventory)
    .filter((h) => h.arch === host.arch)
    .map((h) => h.name);
}

/** Every service running elsewhere whose sync fed `node` syncs to another host now. */
async function restandby(inventory: Inventory, node: Host, drained: Set<string>): Promise<DrainRestandby[]> {
  const result: DrainRestandby[] = [];
  for (const owner of inventory.hosts.filter((h) => h.name !== node.name && runsServices(h))) {
    const r = await sshExec(owner, `cd ${servicesDir} 2>/dev/null && grep -H . *.sync 2>/dev/null`, { nothrow: true, connectTimeout: 3 });
    for (const line of r.stdout.split("\n").filter(Boolean)) {
      const [, service, rest] = /^(.+)\.sync:(.*)$/.exec(line) ?? [];
      const sync = parseSyncLine(rest ?? "");
      if (sync?.standby !== node.name) continue;
      const running = (await sshExec(owner, `docker container inspect -f '{{.State.Running}}' ${service} 2>/dev/null`, { nothrow: true })).stdout.trim() === "true";
      if (!running) continue;
      const next = (await placementOf(inventory, owner, service)).find((h) => h !== owner.name && h !== node.name && !drained.has(h));
      if (!next) {
        result.push({ service, runsOn: owner.name, error: `no other node may be its standby: its sync still feeds ${node.name}` });
        continue;
      }
      try {
        const spec = await specOf(owner, service);
        const standby = findHost(inventory, next);
        await copyImage(owner, standby, spec.image);
        await startSync(owner, standby, spec, sync);
        progress(`${service} on ${owner.name}: synced to ${next} now, not ${node.name}`);
        result.push({ service, runsOn: owner.name, standby: next });
      } catch (err) {
        result.push({ service, runsOn: owner.name, error: (err as Error).message });
      }
    }
  }
  return result;
}

/** Waits (at most 10 s) until the failover agents' controllers say `name` is drained, or not; nothing when no agent runs. */
async function agentsSee(inventory: Inventory, name: string, drained: boolean): Promise<void> {
  const managers = inventory.hosts.filter(votes);
  for (let i = 0; i < 100; i++) {
    const states = (await Promise.all(managers.map(agentState))).filter((s) => s !== undefined);
    if (states.length === 0) return;
    if (states.every((s) => (s!.drained ?? []).includes(name) === drained)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  progress(`the failover agents have not said within 10 s that ${name} is ${drained ? "drained" : "back"}; 'edge-ha service status SERVICE' shows their events`);
}

/**
 * Drains `node`'s swarm tasks: waits until none runs there (at most 60 s),
 * then up to 8 s for swarm to run every service at its replicas elsewhere
 * (it starts a task within a second or two where it has room),
 * and says which it cannot. Undefined when the node is in no swarm.
 */
async function drainSwarm(inventory: Inventory, node: Host): Promise<SwarmDrain | undefined> {
  const swarm = await swarmAvailability(inventory, node, "drain");
  if (!swarm) return undefined;
  const { manager, id, before } = swarm;
  progress(`swarm: ${before} task(s) on ${node.name} stop there and start elsewhere`);
  // Its tasks' actual states, not only what swarm wants: right after the update both still say running.
  const onNode = async () => (await sshExec(manager, `docker node ps ${id} --format '{{.CurrentState}}'`, { nothrow: true })).stdout.split("\n").filter((l) => /^(Running|Starting|Preparing|Assigned|Accepted|Ready|Pending)/.test(l)).length;
  for (let i = 0; (await onNode()) > 0; i++) {
    if (i >= 120) throw new UserError(`swarm still runs tasks on ${node.name} 60 s after it was drained ('docker node ps ${node.name}' on ${manager.name} says which); ${node.name} stays drained`);
    await new Promise((r) => setTimeout(r, 500));
  }
  let below: string[] = [];
  for (let i = 0; i < 16; i++) {
    const r = await sshExec(manager, `docker service ls --format '{{.Name}} {{.Replicas}}'`, { nothrow: true });
    below = r.stdout
      .split("\n")
      .map((l) => /^(\S+) (\d+)\/(\d+)/.exec(l))
      .filter((m): m is RegExpExecArray => !!m && m[2] !== m[3])
      .map((m) => `${m[1]} ${m[2]}/${m[3]}`);
    if (r.exitCode === 0 && below.length === 0) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  if (below.length) progress(`swarm runs ${below.join(", ")} without ${node.name}: the other nodes cannot take every task (a port published in host mode allows one per node); in full again after undrain`);
  return { tasks: before, below };
}

/**
 * Sets `node`'s swarm availability on a manager that answers; its swarm node
 * id, the manager, and how many tasks ran on it before. Undefined when the
 * node is in no swarm.
 */
async function swarmAvailability(inventory: Inventory, node: Host, availability: "drain" | "active"): Promise<{ manager: Host; id: string; before: number } | undefined> {
  const info = (await sshExec(node, `docker info -f '{{.Swarm.LocalNodeState}} {{.Swarm.NodeID}}'`, { nothrow: true })).stdout.trim().split(" ");
  if (info[0] !== "active" || !info[1]) return undefined;
  const id = info[1];
  for (const manager of inventory.hosts.filter((h) => h.roles.includes("manager"))) {
    const r = await sshExec(
      manager,
      `n=$(docker node ps ${id} --filter desired-state=running -q | wc -l) && docker node update --availability ${availability} ${id} >/dev/null && echo "$n"`,
      { nothrow: true, connectTimeout: 3 },
    );
    if (r.exitCode === 0) return { manager, id, before: Number(r.stdout.trim()) };
  }
  throw new UserError(`no swarm manager of ${inventory.file} answered to set ${node.name}'s availability to ${availability}`);
}

/**
 * pulumi up starts nothing new on a drained node: a CRIU service whose
 * primary is drained and which runs nowhere yet (pulumi up would start it
 * there) is named with the fix, before any change. One that runs elsewhere
 * (the drain moved it) is adopted where it runs, as any moved service.
 */
export async function checkDrainedPrimaries(
  services: Pick<ServiceSettings, "name" | "mode" | "primary">[],
  inventory: Inventory,
  stackFile: string,
  marked: (inventory: Inventory) => Promise<string[]> = drainedNodes,
  where: (inventory: Inventory, service: string) => Promise<{ name: string }[]> = locate,
): Promise<void> {
  const drained = new Set(await marked(inventory));
  if (drained.size === 0) return;
  const problems: string[] = [];
  await Promise.all(
    services.map(async (s, i) => {
      if (s.mode !== "criu" || !s.primary || !drained.has(s.primary)) return;
      if ((await where(inventory, s.name)).length > 0) return;
      problems.push(
        `${stackFile}: edge-ha:services[${i}].primary: ${s.primary} is drained (edge-ha node drain) and ${s.name} runs nowhere yet, so pulumi up would start it there. ` +
          `Set another primary, or run 'edge-ha node undrain ${s.primary}' first`,
      );
    }),
  );
  if (problems.length) throw new UserError(problems.sort().join("\n"));
}
