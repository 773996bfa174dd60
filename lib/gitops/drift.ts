import type { Inventory } from "../config/inventory";
import { UserError } from "../log";
import type { PulumiStack } from "../pulumi";
import { sshExec } from "../host/ssh";
import { urnParts } from "./report";

/*
 * Drift: what changed on the fleet since the last apply, by hand or by
 * accident. Two sources: `pulumi refresh --preview-only` for what Pulumi can
 * read back (Docker's networks and services), and edge-ha's own look at what
 * it set through host commands, which Pulumi cannot read back (a command's
 * effect is not a resource's state): each swarm node's role and labels
 * against the inventory. A host that does not answer is an error, not drift:
 * nothing is known of it.
 */

export interface DriftItem {
  /** A resource's name, or a host's. */
  subject: string;
  what: string;
}

export interface DriftReport {
  stack: string;
  items: DriftItem[];
}

/** Everything that differs from the stack's record and the inventory (without one: the stack's record only). */
export async function findDrift(stack: PulumiStack, inventory?: Inventory): Promise<DriftReport> {
  const refresh = await stack.run(["refresh", "--preview-only", "--json", "--suppress-progress"]);
  const items = [...refreshDrift(refresh.stdout), ...(inventory ? await swarmDrift(inventory) : [])];
  return { stack: stack.stack, items };
}

/** The resources a refresh would change in the stack's record: gone (delete) or different (update). */
export function refreshDrift(refreshJson: string): DriftItem[] {
  const steps = (JSON.parse(refreshJson) as { steps?: { op: string; urn: string; diffReasons?: string[] }[] }).steps ?? [];
  return steps
    .filter((s) => !["same", "refresh", "read"].includes(s.op))
    .map((s) => {
      const { type, name } = urnParts(s.urn);
      const what = s.op === "delete" ? `${type} is gone from its host` : `${type} differs from the stack's record (${s.op}${s.diffReasons?.length ? `: ${s.diffReasons.join(", ")}` : ""})`;
      return { subject: name, what };
    });
}

/** A swarm node as a manager describes it. */
export interface SwarmNodeView {
  address: string;
  role: string;
  labels: Record<string, string>;
}

/** Each host's swarm role and labels against the inventory (the hosts in no swarm, witnesses, are left out). */
export async function swarmDrift(inventory: Inventory, read: (inventory: Inventory) => Promise<SwarmNodeView[]> = readSwarm): Promise<DriftItem[]> {
  const nodes = await read(inventory);
  const items: DriftItem[] = [];
  for (const host of inventory.hosts.filter((h) => !h.roles.includes("witness"))) {
    const node = nodes.find((n) => n.address === host.address);
    if (!node) {
      items.push({ subject: host.name, what: `is in no swarm at ${host.address}, the inventory has it as a ${host.roles[0]}` });
      continue;
    }
    if (node.role !== host.roles[0]) items.push({ subject: host.name, what: `is a swarm ${node.role}, the inventory says ${host.roles[0]}` });
    for (const key of new Set([...Object.keys(host.labels), ...Object.keys(node.labels)])) {
      const want = host.labels[key];
      const have = node.labels[key];
      if (want === have) continue;
      items.push({ subject: host.name, what: have === undefined ? `has no label ${key} (the inventory says ${want})` : want === undefined ? `has a label ${key}=${have} the inventory does not have` : `has label ${key}=${have}, the inventory says ${want}` });
    }
  }
  return items;
}

/** Every swarm node, as the first manager that answers describes them. */
async function readSwarm(inventory: Inventory): Promise<SwarmNodeView[]> {
  // A manager may show 0.0.0.0 as its address: its manager address (ip:port) says it then.
  const format = "{{.Status.Addr}} {{if .ManagerStatus}}{{.ManagerStatus.Addr}}{{else}}-{{end}} {{.Spec.Role}} {{json .Spec.Labels}}";
  for (const manager of inventory.hosts.filter((h) => h.roles.includes("manager"))) {
    const r = await sshExec(manager, `docker node inspect -f '${format}' $(docker node ls -q)`, { nothrow: true, connectTimeout: 5 });
    if (r.exitCode !== 0) continue;
    return r.stdout
      .split("\n")
      .filter(Boolean)
      .map((line) => {
        const [status, managerAddr, role, ...labels] = line.split(" ");
        const address = status && status !== "0.0.0.0" ? status : managerAddr.replace(/:\d+$/, "");
        return { address, role, labels: (JSON.parse(labels.join(" ")) ?? {}) as Record<string, string> };
      });
  }
  throw new UserError(`no swarm manager of ${inventory.file} answered ('docker node inspect' over SSH): the swarm's drift is unknown`);
}
