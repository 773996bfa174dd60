import * as pulumi from "@pulumi/pulumi";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { agentConfig, agentPaths } from "../../lib/ha/agent";
import type { Arch, Inventory } from "../../lib/config/inventory";
import { componentScript } from "../../lib/host/shell";
import type { FailoverSettings, ServiceSettings } from "../../lib/config/settings";
import { CopyToHost, HostCommand, stagingPath } from "../command";
import { GeneratedSecret } from "../generated-secret";
import type { ClusterNode } from "../host-facts";

export interface FailoverAgentsArgs {
  inventory: Inventory;
  failover: FailoverSettings;
  /** The stack's services; those in criu mode with failover "auto" are the agents' to restore. */
  services: ServiceSettings[];
  /** The cluster's hosts, ready for services (EdgeCluster.ready). */
  nodes: Record<string, ClusterNode>;
  /** The agent built for each architecture of the fleet (lib/ha/agent buildAgent): path on this machine. */
  binaries: Partial<Record<Arch, string>>;
}

/**
 * The failover agent (agent/main.go) on every host, a supervised service:
 * heartbeats and a lease on every host, the controller on the managers, so
 * that failover survives the loss of any single host, its own included. Its
 * messages and orders are signed with a secret generated once for the stack.
 */
export class FailoverAgents extends pulumi.ComponentResource {
  readonly hosts: string[];

  constructor(name: string, args: FailoverAgentsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edge-ha:failover:FailoverAgents", name, {}, opts);
    const secret = new GeneratedSecret(`${name}-secret`, {}, { parent: this }).value;
    this.hosts = args.inventory.hosts.map((h) => h.name);
    for (const host of args.inventory.hosts) {
      const node = args.nodes[host.name];
      const binary = args.binaries[host.arch];
      if (!binary) throw new pulumi.ResourceError(`expected the agent built for ${host.arch} (lib/ha/agent buildAgent), found none for ${host.name}`, this);
      const digest = createHash("sha256").update(readFileSync(binary)).digest("hex");
      // Staged beside the binary, then put in place by rename: the running agent's file is never written over.
      const staged = stagingPath(host, `${agentPaths.binary}.staged`);
      const copied = new CopyToHost(`${name}-${host.name}-binary`, { source: binary, connection: node.connection, remotePath: staged }, { parent: this, dependsOn: node.dependsOn });
      // A new binary or configuration is an update that restarts the agent.
      new HostCommand(
        `${name}-${host.name}`,
        {
          connection: node.connection,
          environment: {
            AGENT_CONFIG: pulumi.secret(secret.apply((s) => agentConfig(host, args.inventory, args.failover, args.services, s))),
            AGENT_SHA256: digest,
            STAGED: staged,
            BINARY: agentPaths.binary,
            WATCHDOG: agentPaths.watchdog,
            LEASE: agentPaths.lease,
            CONFIG: agentPaths.config,
            STATE: agentPaths.state,
            EVENTS: agentPaths.events,
          },
          create: componentScript(__dirname, "install.sh"),
          delete: componentScript(__dirname, "remove.sh", "delete"),
        },
        { parent: this, dependsOn: [copied] },
      );
    }
    this.registerOutputs({ hosts: this.hosts });
  }
}
