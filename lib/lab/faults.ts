import { $ } from "zx";
import { UserError } from "../log";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { findNode, labFiles, LabOptions, powerOff, rebootPolicy, removeRules, waitForSsh } from "./lab";
import { cpuQuotaOf, freezerOf, processesUnder, psTable, readText, type NodeProcess } from "./processes";

/*
 * Fault injection on lab nodes, each with its undo. Rules and queues live on
 * this machine, outside the node, so that nothing on the node can undo them.
 */

const sh = $({ quiet: true });

/**
 * Instant power-off: SIGKILL to everything in the node, no clean shutdown. Its
 * disk is kept. Returns the moment (epoch ms) the signals went out: when the
 * node's state stopped changing. That, not the return (Docker notices the
 * death a while later), is the crash a measurement of lost state starts from.
 */
export async function crash(lab: LabOptions, name: string): Promise<number> {
  const node = await findNode(lab, name);
  if (!node.running) throw new UserError(`${name} is already down; to power it on: lab boot ${name}`);
  return (await powerOff(node.container)) ?? Date.now();
}

/** Powers a node on again; its init runs the boot scripts provisioning registered. */
export async function boot(lab: LabOptions, name: string): Promise<void> {
  const node = await findNode(lab, name);
  if (node.running) throw new UserError(`${name} is already running`);
  await sh`docker start ${node.container}`;
  await sh`docker update --restart ${rebootPolicy} ${node.container}`;
  await waitForSsh(node.container);
}

const partitionTag = (lab: LabOptions, name: string, from?: string, oneWay?: boolean) =>
  `edge-ha-lab:${lab.name}:partition:${name}${from ? `:from:${from}` : ""}${oneWay ? ":out" : ""}`;

export interface PartitionOptions {
  /** Cut it off from this node only (the others still hear both: what a broken cable between two switches does). */
  from?: string;
  /** Drop only what the node sends: it still hears the others, they no longer hear it (a half-dead link, a bad transceiver). */
  oneWay?: boolean;
}

/**
 * Cuts a node off from the other nodes (both directions, unless one-way), or
 * from one node only; it keeps running. The gateway (this machine) is in the
 * lab's subnet: the operator's commands and clients lose it too, as at a
 * site whose switch port died.
 */
export async function partition(lab: LabOptions, name: string, options: PartitionOptions = {}): Promise<void> {
  const { from, oneWay } = options;
  const node = await findNode(lab, name);
  const other = from === undefined ? undefined : await findNode(lab, from);
  if (other && other.name === node.name) throw new UserError(`--from: expected another node than ${name}`);
  const tag = partitionTag(lab, name, other?.name, oneWay);
  const undo = `lab heal ${name}${other ? ` --from ${other.name}` : ""}`;
  const rules = (await sh`iptables -S DOCKER-USER`).stdout;
  // The whole tag, not a prefix of a pair's: a comment ends in a space or a quote.
  if (rules.includes(`${tag} `) || rules.includes(`${tag}"`))
    throw new UserError(`${name} is already partitioned${other ? ` from ${other.name}` : ""}${oneWay ? " one way" : ""}; to undo: ${undo}`);
  const peers = other ? other.address : `${lab.subnetPrefix}.0/24`;
  await sh`iptables -I DOCKER-USER -s ${node.address} -d ${peers} -j DROP -m comment --comment ${tag}`;
  if (!oneWay) await sh`iptables -I DOCKER-USER -s ${peers} -d ${node.address} -j DROP -m comment --comment ${tag}`;
  // Established flows (an open SSH session, swarm gossip) must break too.
  if (other) {
    await $({ quiet: true, nothrow: true })`conntrack -D -s ${node.address} -d ${other.address}`;
    await $({ quiet: true, nothrow: true })`conntrack -D -s ${other.address} -d ${node.address}`;
  } else {
    await $({ quiet: true, nothrow: true })`conntrack -D -s ${node.address}`;
    await $({ quiet: true, nothrow: true })`conntrack -D -d ${node.address}`;
  }
}

/**
 * Drops the TCP connections from node `name` to node `to`'s `ports` only
 * (what a firewall change, or a daemon hung on `to`, does to them), open ones
 * included; heartbeats and everything else pass, so no node is suspected.
 * Undone by `heal(lab, name, to)` (or `heal(lab, name)`).
 */
export async function blockPorts(lab: LabOptions, name: string, to: string, ports: number[]): Promise<void> {
  const node = await findNode(lab, name);
  const other = await findNode(lab, to);
  const tag = `${partitionTag(lab, name, to)}:ports`;
  for (const port of ports) await sh`iptables -I DOCKER-USER -s ${node.address} -d ${other.address} -p tcp --dport ${port} -j DROP -m comment --comment ${tag}`;
  await $({ quiet: true, nothrow: true })`conntrack -D -s ${node.address} -d ${other.address} -p tcp`;
}

/** Undoes `partition` (with `from`, only that pair's, either way; without, every partition of the node). */
export async function heal(lab: LabOptions, name: string, from?: string): Promise<void> {
  await findNode(lab, name);
  if (from !== undefined) await findNode(lab, from);
  await removeRules(partitionTag(lab, name, from));
}

/** The failover agent's process name on a node (agentPaths.binary). */
const agentProcess = "edge-ha-agent";

/**
 * Stops a node as a stalled SD card, memory pressure or a hung hypervisor
 * does on a real one: nothing of it runs, nothing is lost, its sockets stay
 * open. The whole node is frozen with the cgroup freezer (its own cgroup and
 * its containers'), as the kernel would leave it: no signal reaches its
 * processes (a SIGSTOP would, and CRIU, ptracing a service it is dumping,
 * takes that signal for its own and hangs). With `agentOnly`, only its
 * failover agent stops (SIGSTOP), and its services go on. Returns the moment
 * (epoch ms). Undo: resume.
 */
export async function pause(lab: LabOptions, name: string, agentOnly = false): Promise<number> {
  const node = await findNode(lab, name);
  if (!node.running) throw new UserError(`${name} is down; boot it before pausing it`);
  const processes = await nodeProcesses(node.container);
  if (agentOnly) {
    const agents = processes.filter((p) => p.comm === agentProcess);
    if (agents.length === 0) throw new UserError(`no ${agentProcess} runs on ${name}: provision it with pulumi up (a service with failover auto) first`);
    const at = Date.now();
    for (const p of agents) signal(p.pid, "SIGSTOP");
    return at;
  }
  if (existsSync(pausedFile(lab, name))) throw new UserError(`${name} is already paused; to undo: lab resume ${name}`);
  // Only cgroups that run now: one CRIU froze for a dump stays as CRIU wants it.
  const ours = [...new Set(processes.map((p) => freezerOf(p.pid)).filter((f): f is string => !!f))].filter((f) => readText(f) === "THAWED");
  mkdirSync(path.dirname(pausedFile(lab, name)), { recursive: true });
  writeFileSync(pausedFile(lab, name), ours.join("\n"));
  const at = Date.now();
  for (const f of ours) writeFileSync(f, "FROZEN");
  return at;
}

/** Undoes `pause`: thaws the cgroups it froze, and SIGCONT to every process of the node (harmless where none is stopped). */
export async function resume(lab: LabOptions, name: string): Promise<void> {
  const node = await findNode(lab, name);
  const file = pausedFile(lab, name);
  if (existsSync(file)) {
    for (const f of readFileSync(file, "utf8").split("\n").filter(Boolean)) {
      try {
        writeFileSync(f, "THAWED");
      } catch {
        // Gone with its container meanwhile.
      }
    }
    rmSync(file, { force: true });
  }
  if (!node.running) return;
  for (const p of await nodeProcesses(node.container)) signal(p.pid, "SIGCONT");
}

/** Where pause notes the cgroups it froze (beside the lab's keys), so that resume thaws only those. */
const pausedFile = (lab: LabOptions, name: string) => path.join(labFiles(lab).dir, `paused-${name}`);

/** Every process of a lab node (its init and all under it), read from this machine's process table. */
export async function nodeProcesses(container: string): Promise<NodeProcess[]> {
  const pid = Number((await sh`docker container inspect -f {{.State.Pid}} ${container}`).stdout.trim());
  if (!pid) return [];
  return processesUnder(pid, (await sh`ps ${psTable}`).stdout);
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Gone meanwhile: nothing to stop or continue.
  }
}

/**
 * Starves a node of CPU, as a Pi whose cores something else took (a runaway
 * process, thermal throttling at its worst): every cgroup of its processes
 * (the node's own, where its agent, sshd and dockerd run, and each of its
 * containers', which are this machine's) may use `cpus` of one core (CFS
 * quota), so each runs in short bursts with long waits between. Unlike a
 * pause, its processes still run: late, never not at all. Returns the moment
 * (epoch ms). Undo: unstarve.
 */
export async function starve(lab: LabOptions, name: string, cpus = 0.05): Promise<number> {
  if (!(cpus >= 0.01 && cpus <= 1)) throw new UserError(`--cpus: expected a share of one core from 0.01 to 1, found ${cpus}`);
  const node = await findNode(lab, name);
  if (!node.running) throw new UserError(`${name} is down; boot it before starving it`);
  if (starved(lab, name)) throw new UserError(`${name} is already starved; to undo: lab unstarve ${name}`);
  // Only cgroups without a quota of their own (the undo puts back "none"), never the root one
  // (it takes no quota: a zombie's cgroup reads as it).
  const live = (await nodeProcesses(node.container)).filter((p) => !p.zombie);
  const groups = [...new Set(live.map((p) => cpuQuotaOf(p.pid)).filter((f): f is string => !!f))].filter((f) => readText(f) === "-1" && !/^\/sys\/fs\/cgroup\/[^/]+\/cpu\.cfs_quota_us$/.test(f));
  if (groups.length === 0) throw new Error(`no cpu cgroup of ${name}'s processes could be read (cgroup v1 cpu controller expected under /sys/fs/cgroup)`);
  mkdirSync(path.dirname(starvedFile(lab, name)), { recursive: true });
  writeFileSync(starvedFile(lab, name), groups.join("\n"));
  const at = Date.now();
  for (const f of groups) {
    const period = Number(readText(f.replace(/cfs_quota_us$/, "cfs_period_us"))) || 100_000;
    try {
      writeFileSync(f, String(Math.max(1000, Math.round(period * cpus))));
    } catch (err) {
      await unstarve(lab, name);
      throw new Error(`starving ${name}: cannot set a CPU quota in ${f} (${(err as Error).message}); nothing is limited`);
    }
  }
  return at;
}

/** Undoes `starve`: the cgroups it limited have no quota again (those gone meanwhile, with a crash, are skipped). */
export async function unstarve(lab: LabOptions, name: string): Promise<void> {
  await findNode(lab, name);
  const file = starvedFile(lab, name);
  if (!existsSync(file)) return;
  for (const f of readFileSync(file, "utf8").split("\n").filter(Boolean)) {
    try {
      writeFileSync(f, "-1");
    } catch {
      // Gone with its container meanwhile.
    }
  }
  rmSync(file, { force: true });
}

/** Where starve notes the cgroups it limited, so that unstarve frees only those. */
const starvedFile = (lab: LabOptions, name: string) => path.join(labFiles(lab).dir, `starved-${name}`);

/** Whether starve limits the node now. */
export const starved = (lab: LabOptions, name: string) => existsSync(starvedFile(lab, name));

export interface LinkShape {
  /** Bandwidth, in tc units: "10mbit", "512kbit". */
  rate: string;
  /** One-way delay, e.g. "20ms"; needs the kernel's netem queue. */
  delay?: string;
  /** Packet loss in percent, e.g. 1 for 1%. */
  loss?: number;
}

const rateUnit = /^\d+(\.\d+)?(bit|kbit|mbit|gbit)$/;
const delayUnit = /^\d+(\.\d+)?(us|ms|s)$/;

/**
 * Emulates a slow link on a node in both directions: a token bucket on the
 * node's interface (what it sends) and on its peer on this machine (what it
 * receives); loss is a random drop in the firewall.
 */
export async function shape(lab: LabOptions, name: string, link: LinkShape): Promise<void> {
  if (!rateUnit.test(link.rate)) throw new UserError(`--rate: expected a rate such as 10mbit or 512kbit, found "${link.rate}"`);
  if (link.delay !== undefined && !delayUnit.test(link.delay)) throw new UserError(`--delay: expected a time such as 20ms, found "${link.delay}"`);
  if (link.loss !== undefined && !(link.loss >= 0 && link.loss < 100)) throw new UserError(`--loss: expected a percentage from 0 to 100, found ${link.loss}`);
  const node = await findNode(lab, name);
  if (!node.running) throw new UserError(`${name} is down; boot it before shaping its link`);
  await unshapeQuietly(lab, name);
  const { pid, hostVeth } = await nodeLink(node.container);
  const inNode = $({ quiet: true, nothrow: true });
  const burst = "32kbit";
  const devices: [string, (args: string[]) => Promise<{ exitCode: number | null; stderr: string }>][] = [
    ["eth0", (args) => inNode`nsenter --net=/proc/${pid}/ns/net tc ${args}`],
    [hostVeth, (args) => inNode`tc ${args}`],
  ];
  for (const [dev, tc] of devices) {
    if (link.delay) {
      const r = await tc(["qdisc", "replace", "dev", dev, "root", "handle", "1:", "netem", "delay", link.delay, "rate", link.rate]);
      if (r.exitCode !== 0) {
        await unshapeQuietly(lab, name);
        throw new UserError(
          `--delay needs the kernel's netem queue, which this kernel lacks (tc: ${r.stderr.trim()}). ` +
            `Rate and loss work without it: drop --delay.`,
        );
      }
    } else {
      const r = await tc(["qdisc", "replace", "dev", dev, "root", "tbf", "rate", link.rate, "burst", burst, "latency", "400ms"]);
      if (r.exitCode !== 0) throw new Error(`tc on ${dev} failed: ${r.stderr.trim()}`);
    }
  }
  if (link.loss) {
    const tag = `edge-ha-lab:${lab.name}:loss:${name}`;
    const p = String(link.loss / 100);
    await sh`iptables -I DOCKER-USER -s ${node.address} -m statistic --mode random --probability ${p} -j DROP -m comment --comment ${tag}`;
    await sh`iptables -I DOCKER-USER -d ${node.address} -m statistic --mode random --probability ${p} -j DROP -m comment --comment ${tag}`;
  }
}

/** Undoes `shape`. */
export async function unshape(lab: LabOptions, name: string): Promise<void> {
  await findNode(lab, name);
  await unshapeQuietly(lab, name);
}

async function unshapeQuietly(lab: LabOptions, name: string): Promise<void> {
  const node = await findNode(lab, name);
  await removeRules(`edge-ha-lab:${lab.name}:loss:${name}`);
  if (!node.running) return;
  const { pid, hostVeth } = await nodeLink(node.container);
  await $({ quiet: true, nothrow: true })`nsenter --net=/proc/${pid}/ns/net tc qdisc del dev eth0 root`;
  await $({ quiet: true, nothrow: true })`tc qdisc del dev ${hostVeth} root`;
}

/** The node's process id and the name of its veth peer on this machine. */
async function nodeLink(container: string): Promise<{ pid: string; hostVeth: string }> {
  const pid = (await sh`docker container inspect -f {{.State.Pid}} ${container}`).stdout.trim();
  // "11: eth0@if12: ..." inside the node: 12 is the peer's index here. (Not
  // /sys/class/net: sysfs shows the namespace of whoever mounted it.)
  const inside = (await sh`nsenter --net=/proc/${pid}/ns/net ip -o link show dev eth0`).stdout;
  const peerIndex = /eth0@if(\d+):/.exec(inside)?.[1];
  const line = (await sh`ip -o link`).stdout.split("\n").find((l) => l.startsWith(`${peerIndex}: `));
  const hostVeth = line?.split(": ")[1].split("@")[0];
  if (!peerIndex || !hostVeth?.startsWith("veth")) {
    throw new Error(`cannot find the veth peer of ${container}'s eth0 on this machine (found ${JSON.stringify(hostVeth)})`);
  }
  return { pid, hostVeth };
}
