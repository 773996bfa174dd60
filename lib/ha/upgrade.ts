import { findHost, runsServices, type Host, type Inventory } from "../config/inventory";
import { progress, UserError } from "../log";
import { sshExec } from "../host/ssh";
import { agentPaths, agentState } from "./agent";
import { drainNode, undrainNode, type DrainResult } from "./drain";
import { swarmNodesNotReady } from "./swarm";

/*
 * A rolling upgrade of the fleet, one node at a time, with its services
 * served throughout: drain the node (live migration), run the upgrade
 * command, reboot when needed, wait until the node is whole again (SSH, its
 * engine, CRIU, its failover agent with its lease), undrain, then the next.
 * It stops at the first node that fails a step, saying where and what is
 * true: that node stays drained (its services run elsewhere), the nodes
 * after it are untouched.
 */

/** When a node reboots after its upgrade command: when the command asks for it (/var/run/reboot-required, as Debian's packages say), always, or never. */
export type RebootWhen = "needed" | "always" | "never";
export const rebootChoices: readonly RebootWhen[] = ["needed", "always", "never"];

/** The command run on each node unless another is given: Debian's upgrade, unattended. */
export const defaultUpgradeCommand = "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -y -qq -o Dpkg::Options::=--force-confold upgrade";

export interface UpgradeOptions {
  command?: string;
  reboot?: RebootWhen;
  /** The nodes, in order (default: every node of the inventory, in its order). */
  nodes?: string[];
  /** How long a node may take to come back after its reboot, and whole (default 300 s). */
  bootTimeoutSeconds?: number;
}

export interface NodeUpgrade {
  node: string;
  drain?: DrainResult;
  /** The upgrade command's last output lines. */
  output: string;
  rebooted: boolean;
  /** From the reboot to the node whole again (ms). */
  backAfterMs?: number;
  seconds: number;
}

export interface UpgradeResult {
  upgraded: NodeUpgrade[];
  /** Where it stopped and why; undefined when every node was upgraded. */
  stopped?: { node: string; step: "drain" | "command" | "reboot" | "health" | "undrain"; error: string };
}

/** A node's boot, as a mark on its /run (a tmpfs every boot starts empty): gone means it booted. */
const bootMark = "/run/edge-ha-upgrade-boot";

/** Upgrades the fleet node by node; see the top of this file. */
export async function upgradeFleet(inventory: Inventory, options: UpgradeOptions = {}): Promise<UpgradeResult> {
  const command = options.command ?? defaultUpgradeCommand;
  const reboot = options.reboot ?? "needed";
  if (!rebootChoices.includes(reboot)) throw new UserError(`--reboot: expected one of ${rebootChoices.join(", ")}, found "${reboot}"`);
  const nodes = (options.nodes ?? inventory.hosts.map((h) => h.name)).map((n) => findHost(inventory, n));
  const timeout = options.bootTimeoutSeconds ?? 300;
  const upgraded: NodeUpgrade[] = [];
  for (const [i, node] of nodes.entries()) {
    progress(`upgrade ${i + 1}/${nodes.length}: ${node.name}`);
    const started = Date.now();
    let step: NonNullable<UpgradeResult["stopped"]>["step"] = "drain";
    const done: Partial<NodeUpgrade> = {};
    try {
      if (runsServices(node)) {
        done.drain = await drainNode(inventory, node.name);
        if (!done.drain.complete) throw new UserError(`it could not be emptied (see the drain's lines): it stays drained, nothing was upgraded there`);
      }
      step = "command";
      progress(`${node.name}: ${command}`);
      const run = await sshExec(node, command, { nothrow: true });
      done.output = lastLines(`${run.stdout}${run.stderr}`);
      if (run.exitCode !== 0) throw new UserError(`the upgrade command failed (exit ${run.exitCode}): ${done.output || "no output"}`);
      step = "reboot";
      const needed = reboot === "always" || (reboot === "needed" && (await sshExec(node, "test -e /var/run/reboot-required", { nothrow: true })).exitCode === 0);
      if (needed) done.backAfterMs = await rebootAndWait(node, timeout);
      done.rebooted = needed;
      step = "health";
      await whole(inventory, node, timeout);
      step = "undrain";
      if (runsServices(node)) await undrainNode(inventory, node.name);
      upgraded.push({ node: node.name, drain: done.drain, output: done.output ?? "", rebooted: done.rebooted, backAfterMs: done.backAfterMs, seconds: (Date.now() - started) / 1000 });
    } catch (err) {
      const drained = runsServices(node) && step !== "drain" ? ` ${node.name} stays drained: its services run elsewhere; when it is fixed, 'edge-ha node undrain ${node.name}'.` : "";
      const rest = nodes.slice(i + 1).map((n) => n.name);
      return {
        upgraded,
        stopped: { node: node.name, step, error: `${(err as Error).message}.${drained}${rest.length ? ` Not upgraded: ${rest.join(", ")}.` : ""}` },
      };
    }
  }
  return { upgraded };
}

/** The last lines of a command's output, for a message. */
function lastLines(text: string, n = 5): string {
  return text.trim().split("\n").slice(-n).join("\n");
}

/** Reboots `node` and waits until it has booted (its boot mark gone) and answers SSH; how long that took (ms). */
async function rebootAndWait(node: Host, timeoutSeconds: number): Promise<number> {
  await sshExec(node, `touch ${bootMark}`);
  progress(`${node.name}: rebooting`);
  const at = Date.now();
  // In the background and a moment later, so that this SSH session ends cleanly first.
  await sshExec(node, `nohup sh -c 'sleep 1; reboot' >/dev/null 2>&1 &`, { nothrow: true });
  const end = at + timeoutSeconds * 1000;
  while (Date.now() < end) {
    const r = await sshExec(node, `test -e ${bootMark} && echo same || echo booted`, { nothrow: true, connectTimeout: 2 });
    if (r.exitCode === 0 && r.stdout.trim() === "booted") return Date.now() - at;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new UserError(`it did not come back within ${timeoutSeconds} s of its reboot (no SSH, or the same boot)`);
}

/** Waits until `node`'s engine answers, CRIU checks good and its failover agent (where it has one) holds its lease. */
async function whole(inventory: Inventory, node: Host, timeoutSeconds: number): Promise<void> {
  const end = Date.now() + timeoutSeconds * 1000;
  const hasAgent = (await sshExec(node, `test -x ${agentPaths.binary}`, { nothrow: true })).exitCode === 0;
  let missing = "";
  while (Date.now() < end) {
    missing = await whatIsMissing(inventory, node, hasAgent);
    if (!missing) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new UserError(`it is not whole ${timeoutSeconds} s after its upgrade: ${missing}`);
}

/** What `node` lacks now ("" when nothing). */
async function whatIsMissing(inventory: Inventory, node: Host, hasAgent: boolean): Promise<string> {
  if (runsServices(node)) {
    const engine = await sshExec(node, "timeout 5 docker info -f '{{.ServerVersion}}'", { nothrow: true, connectTimeout: 2 });
    if (engine.exitCode !== 0) return `its Docker engine does not answer (${lastLines(engine.stderr, 1) || `exit ${engine.exitCode}`})`;
    const criu = await sshExec(node, "criu check 2>&1", { nothrow: true, connectTimeout: 2 });
    if (!/Looks good/.test(criu.stdout)) return `'criu check' fails there (${lastLines(criu.stdout, 1)})`;
    // Back in its swarm as the managers see it. A node's status lives only on the swarm's
    // leader, and a new leader (a manager's reboot can make one) starts with every node
    // "unknown" until it hears from it again: so the whole fleet must be ready here, not
    // just this node, or the next drain would move services while swarm's view is blind.
    const state = (await sshExec(node, "docker info -f '{{.Swarm.LocalNodeState}}'", { nothrow: true, connectTimeout: 2 })).stdout.trim();
    if (state && state !== "inactive") {
      if (state !== "active") return `it has not joined its swarm again (its engine says ${state})`;
      const notReady = await swarmNodesNotReady(inventory);
      if (notReady) return notReady;
    }
  }
  if (hasAgent) {
    const state = await agentState(node);
    if (!state) return "its failover agent has written no state";
    if (Date.now() - Date.parse(state.at) > 5000) return `its failover agent's state is ${Math.round((Date.now() - Date.parse(state.at)) / 1000)} s old: it does not run`;
    if (!state.leaseMs || state.leaseMs <= 0) return "its failover agent holds no lease (the controllers do not hear it)";
  }
  return "";
}
