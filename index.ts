import * as pulumi from "@pulumi/pulumi";
import * as path from "node:path";
import { loadInventory } from "./lib/inventory";
import { UserError } from "./lib/log";
import { parseSettings } from "./lib/settings";
import { EdgeCluster } from "./modules/edge-cluster";

/*
 * The edge-ha program: the inventory named by the stack's settings becomes an
 * EdgeCluster. Bad settings or a bad inventory stop it here, in preview,
 * before anything on a host changes.
 */
function program() {
  const stackFile = path.join("stacks", `Pulumi.${pulumi.getStack()}.yaml`);
  const raw = Object.fromEntries(
    Object.entries(pulumi.runtime.allConfig())
      .filter(([key]) => key.startsWith("edge-ha:"))
      .map(([key, value]) => [key.slice("edge-ha:".length), value]),
  );
  try {
    const settings = parseSettings(raw, stackFile);
    // The inventory path is relative to the project folder, whatever the caller's cwd.
    const inventory = loadInventory(path.resolve(__dirname, settings.inventory));
    const cluster = new EdgeCluster(inventory.cluster, { inventory, settings, rsyncPassword: new pulumi.Config("edge-ha").getSecret("rsyncPassword") });
    return { inventory, cluster };
  } catch (err) {
    // A RunError is shown as its message alone, without a stack trace.
    if (err instanceof UserError) throw new pulumi.RunError(err.message);
    throw err;
  }
}

const { inventory, cluster } = program();

export const clusterName = inventory.cluster;
export const swarmLeader = cluster.swarmLeader;
export const nodes = cluster.nodes;
