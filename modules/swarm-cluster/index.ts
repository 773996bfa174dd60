import * as pulumi from "@pulumi/pulumi";
import { componentScript } from "../../lib/host/shell";
import { HostCommand } from "../command";
import type { ClusterNode } from "../host-facts";

export interface SwarmClusterArgs {
  /** The swarm's nodes, each after its dependsOn (its Docker engine); the first with role manager initializes the swarm. */
  nodes: ClusterNode[];
}

/**
 * Docker Swarm over the inventory's hosts. The first manager initializes it;
 * every other node joins (as a worker, then promoted when the inventory says
 * manager), and its labels and role are set from the manager, so a change of
 * labels or role touches only that node. Nodes already in the swarm are left
 * as they are; a node in another one (the first manager was re-imaged and
 * started a new swarm) moves to it. Removing a node drains it, demotes it, removes it from the swarm,
 * and makes it leave. Join tokens are secret outputs.
 */
export class SwarmCluster extends pulumi.ComponentResource {
  readonly leaderAddress: string;
  readonly workerToken: pulumi.Output<string>;
  readonly managerToken: pulumi.Output<string>;
  /** The sha256 of the swarm's root CA certificate: a new swarm (its first manager re-imaged) has another. */
  readonly swarmCa: pulumi.Output<string>;
  /** Swarm node ID per inventory host name. */
  readonly nodeIds: Record<string, pulumi.Output<string>> = {};

  constructor(name: string, args: SwarmClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edge-ha:cluster:SwarmCluster", name, {}, opts);
    const leader = args.nodes.find((n) => n.host.roles.includes("manager"));
    if (!leader) throw new pulumi.ResourceError("expected at least one host with roles: [manager] to start the swarm on, found none; give one host that role in the inventory", this);
    this.leaderAddress = leader.host.address;

    const init = new HostCommand(
      `${name}-init`,
      {
        connection: leader.connection,
        environment: { ADDR: leader.host.address },
        create: componentScript(__dirname, "init.sh"),
        delete: componentScript(__dirname, "leave.sh", "delete"),
      },
      { parent: this, dependsOn: leader.dependsOn, additionalSecretOutputs: ["stdout"] },
    );
    const line = (i: number) => init.stdout.apply((s) => s.split("\n")[i] ?? "");
    this.workerToken = pulumi.secret(line(1));
    this.managerToken = pulumi.secret(line(2));
    // Which swarm this is (its root CA's sha256; "" from a stack whose init ran before it was printed).
    this.swarmCa = pulumi.unsecret(line(3));
    // The node ID is not secret; unwrap it from the secret stdout.
    this.nodeIds[leader.host.name] = pulumi.unsecret(line(0));

    for (const node of args.nodes) {
      const isLeader = node === leader;
      let nodeId = this.nodeIds[leader.host.name];
      let member: HostCommand | undefined;
      if (!isLeader) {
        member = new HostCommand(
          `${name}-${node.host.name}-member`,
          {
            connection: node.connection,
            // SWARM_CA only once known: an older stack's members are not run again for its absence.
            environment: pulumi
              .all([this.workerToken, this.swarmCa])
              .apply(([token, ca]) => ({ ADDR: node.host.address, LEADER: leader.host.address, TOKEN: token, ...(ca ? { SWARM_CA: ca } : {}) })),
            create: componentScript(__dirname, "join.sh"),
            delete: componentScript(__dirname, "leave.sh", "delete"),
          },
          { parent: this, dependsOn: [init, ...(node.dependsOn ?? [])] },
        );
        nodeId = member.stdout;
        this.nodeIds[node.host.name] = nodeId;
      }

      const labels = Object.entries(node.host.labels).map(([k, v]) => `${k}=${v}`).join("\n");
      new HostCommand(
        `${name}-${node.host.name}-settings`,
        {
          connection: leader.connection,
          environment: { NODE_ID: nodeId, LABELS: labels, ROLE: node.host.roles[0] },
          create: componentScript(__dirname, "node-settings.sh"),
          // The first manager keeps its place until the swarm itself goes.
          delete: isLeader ? undefined : componentScript(__dirname, "remove-node.sh", "delete"),
        },
        { parent: this, dependsOn: member ? [member] : [init] },
      );
    }

    this.registerOutputs({ leaderAddress: this.leaderAddress, workerToken: this.workerToken, managerToken: this.managerToken, swarmCa: this.swarmCa, nodeIds: this.nodeIds });
  }
}
