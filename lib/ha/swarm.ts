import type { Inventory } from "../config/inventory";
import { sshExec } from "../host/ssh";

/** The swarm's nodes that its managers do not list as ready ("" when all are), as a manager answers for the leader. */
export async function swarmNodesNotReady(inventory: Inventory): Promise<string> {
  for (const manager of inventory.hosts.filter((h) => h.roles.includes("manager"))) {
    const ls = await sshExec(manager, "docker node ls --format '{{.Hostname}} {{.Status}}'", { nothrow: true, connectTimeout: 2 });
    if (ls.exitCode !== 0) continue;
    const notReady = ls.stdout.trim().split("\n").filter((l) => l && !/ Ready$/.test(l));
    return notReady.length ? `the swarm's managers do not see every node ready yet (${notReady.join(", ")})` : "";
  }
  return "no manager of the swarm answers 'docker node ls'";
}
