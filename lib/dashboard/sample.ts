import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import type { Host } from "../config/inventory";
import { checkpointsDir, lagPauseMarkPrefix, servicesDir, vipsDir } from "../host/paths";
import { shellQuote } from "../host/shell";
import { rootShell, sshArgs, sudoInput } from "../host/ssh";
import { agentPaths, type AgentEvent, type AgentState } from "../ha/agent";
import { portLabel, serviceLabel } from "../ha/service-container";

/*
 * How the dashboard looks at a node: one SSH session per node running
 * files/sample.sh, which prints a round every quarter second (read-only, no
 * secret), read here round by round. A session that stays silent is ended
 * and opened again: a crashed node's never answers, and its samples go stale.
 */

/** What one sample of a node found. */
export interface HostSample {
  node: string;
  /** This machine's clock when the answer came (ms), and the node's own when it sampled. */
  receivedAt: number;
  nodeNow: number;
  load: [number, number, number];
  memory: { totalKb: number; availableKb: number };
  /** Read every 40th round: see sample.sh. */
  arch?: string;
  docker?: string;
  criu?: string;
  swarmServices?: { name: string; replicas: string; ports: string }[];
  /** From the failover agent's configuration: how long its controllers wait before a node is down. */
  downAfterMs?: number;
  agent?: AgentState & { heardMsAgo?: Record<string, number>; controller?: boolean; witness?: boolean };
  /** Undefined when the engine did not answer. */
  containers?: { service: string; state: string; hostPort?: number; status: string }[];
  /** The virtual addresses this node knows (a file for each service that may run here), and whether it holds each. */
  vips: { service: string; address: string; held: boolean }[];
  /** The syncs that leave from here: service → standby, interval, maxLag. */
  syncs: { service: string; standby: string; intervalSeconds: number; maxLagSeconds?: number }[];
  /** The copies here that their sync loop's lag guard holds paused, since when (the node's clock, ms). */
  paused: { service: string; since: number }[];
  /** The newest whole checkpoint here of each service synced here; `takenAt` on the node's clock (ms). */
  newest: { service: string; checkpoint: string; takenAt: number }[];
  /** The agents' events new since the round before. */
  events: AgentEvent[];
}

const script = readFileSync(path.join(__dirname, "files", "sample.sh"), "utf8");

/** The environment sample.sh reads: where the agent and edge-ha keep things on a node. */
const scriptEnvironment = {
  AGENT_STATE: agentPaths.state,
  AGENT_EVENTS: agentPaths.events,
  AGENT_CONFIG: agentPaths.config,
  AGENT_CTL: agentPaths.ctl,
  SERVICES_DIR: servicesDir,
  CHECKPOINTS_DIR: checkpointsDir,
  VIPS_DIR: vipsDir,
  LAG_PAUSE_MARK: lagPauseMarkPrefix,
  SERVICE_LABEL: serviceLabel,
  PORT_LABEL: portLabel,
};

/**
 * Samples `host` until `signal` aborts: calls `onSample` with each round (the
 * parts a round does not read carried over from the one before), and with
 * undefined when the node stays silent `silentMs` (its session is then ended
 * and opened again after a pause).
 */
export async function streamSamples(host: Host, onSample: (s: HostSample | undefined) => void, signal: AbortSignal, silentMs = 2000): Promise<void> {
  const env = Object.entries(scriptEnvironment).map(([k, v]) => `${k}=${shellQuote(v)}`).join(" ");
  let previous: HostSample | undefined;
  while (!signal.aborted) {
    const ssh = spawn("ssh", [...sshArgs(host, [], 3), rootShell(host, `${env} exec bash -c ${shellQuote(script)} sample`)], { stdio: ["pipe", "pipe", "ignore"] });
    ssh.stdin!.on("error", () => undefined); // a session that ended at once: its exit says so
    ssh.stdin!.end(sudoInput(host));
    let buffer = "";
    let round: string[] = [];
    let silence: NodeJS.Timeout | undefined;
    const quiet = () => {
      clearTimeout(silence);
      silence = setTimeout(() => {
        onSample(undefined);
        ssh.kill();
      }, silentMs);
    };
    const abort = () => ssh.kill();
    signal.addEventListener("abort", abort);
    quiet();
    ssh.stdout!.setEncoding("utf8");
    ssh.stdout!.on("data", (chunk: string) => {
      buffer += chunk;
      const lines = buffer.split("\n");
      buffer = lines.pop()!;
      for (const line of lines) {
        if (line !== "@end") {
          round.push(line);
          continue;
        }
        previous = parseSample(host.name, round.join("\n"), Date.now(), previous);
        round = [];
        quiet();
        onSample(previous);
      }
    });
    await new Promise((resolve) => ssh.once("close", resolve));
    clearTimeout(silence);
    signal.removeEventListener("abort", abort);
    if (!signal.aborted) {
      onSample(undefined);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/**
 * Reads one round of sample.sh (exported for the unit tests). What the round
 * did not read (the services every other round, the versions every 40th) is
 * `previous`'s.
 */
export function parseSample(node: string, text: string, receivedAt: number, previous?: HostSample): HostSample {
  const sample: HostSample = {
    node,
    receivedAt,
    nodeNow: receivedAt,
    load: [0, 0, 0],
    memory: { totalKb: 0, availableKb: 0 },
    arch: previous?.arch,
    docker: previous?.docker,
    criu: previous?.criu,
    swarmServices: previous?.swarmServices,
    downAfterMs: previous?.downAfterMs,
    syncs: previous?.syncs ?? [],
    paused: previous?.paused ?? [],
    newest: previous?.newest ?? [],
    containers: previous ? previous.containers : [],
    vips: previous?.vips ?? [],
    events: [],
  };
  for (const line of text.split("\n")) {
    const space = line.indexOf(" ");
    const key = space < 0 ? line : line.slice(0, space);
    const rest = space < 0 ? "" : line.slice(space + 1);
    const words = rest.split(" ");
    switch (key) {
      case "@now":
        sample.nodeNow = Number(rest);
        break;
      case "@load":
        sample.load = words.slice(0, 3).map(Number) as [number, number, number];
        break;
      case "@mem":
        sample.memory = { totalKb: Number(words[0]), availableKb: Number(words[1]) };
        break;
      case "@arch":
        sample.arch = rest;
        break;
      case "@docker":
        sample.docker = rest;
        break;
      case "@criu":
        sample.criu = rest;
        break;
      case "@swarm-list":
        sample.swarmServices = undefined;
        break;
      case "@services":
        Object.assign(sample, { containers: [], syncs: [], paused: [], vips: [], newest: [] });
        break;
      case "@swarm": {
        const [name, replicas, ports] = rest.split("\t");
        (sample.swarmServices ??= []).push({ name, replicas, ports: ports ?? "" });
        break;
      }
      case "@downAfterMs":
        if (Number(rest) > 0) sample.downAfterMs = Number(rest);
        break;
      case "@state":
        try {
          sample.agent = JSON.parse(rest);
        } catch {
          // Read while the agent renamed it into place: the next sample has it.
        }
        break;
      case "@engine":
        sample.containers = undefined;
        break;
      case "@container": {
        const [service, state, port, status] = rest.split("\t");
        sample.containers?.push({ service, state, ...(Number(port) > 0 ? { hostPort: Number(port) } : {}), status: status ?? "" });
        break;
      }
      case "@vip":
        if (words[1]) sample.vips.push({ service: words[0], address: words[1], held: words[2] === "held" });
        break;
      case "@sync":
        if (words[1]) sample.syncs.push({ service: words[0], standby: words[1], intervalSeconds: Number(words[2]), ...(words[3] ? { maxLagSeconds: Number(words[3]) } : {}) });
        break;
      case "@paused":
        if (words[1]) sample.paused.push({ service: words[0], since: Number(words[1]) });
        break;
      case "@newest":
        // "<service> <checkpoint> <taken, epoch seconds>"
        if (words[2]) sample.newest.push({ service: words[0], checkpoint: words[1], takenAt: Math.round(Number(words[2]) * 1000) });
        break;
      case "@event":
        try {
          sample.events.push(JSON.parse(rest) as AgentEvent);
        } catch {
          // A line cut by the size read first: it comes whole with the next sample.
        }
        break;
    }
  }
  return sample;
}
