import * as pulumi from "@pulumi/pulumi";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { agentConfig, agentPaths, ctlScript } from "../../lib/ha/agent";
import type { Arch, Inventory } from "../../lib/config/inventory";
import { hostScript, shellQuote } from "../../lib/host/shell";
import type { FailoverSettings, ServiceSettings } from "../../lib/config/settings";
import { CopyToHost, HostCommand, installStaged } from "../command";
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
      const staged = `${agentPaths.binary}.staged`;
      const copied = new CopyToHost(`${name}-${host.name}-binary`, { source: binary, connection: node.connection, remotePath: staged }, { parent: this, dependsOn: node.dependsOn });
      new HostCommand(
        `${name}-${host.name}`,
        {
          connection: node.connection,
          // A new binary is an update that restarts the agent.
          environment: { AGENT_CONFIG: pulumi.secret(secret.apply((s) => agentConfig(host, args.inventory, args.failover, args.services, s))), AGENT_SHA256: digest },
          create: hostScript(`
changed=0
if [ -f ${staged} ]; then
  ${installStaged(staged, agentPaths.binary, '"$AGENT_SHA256"', "0755")}
  rm -f ${staged}
fi
echo "$AGENT_SHA256" | write_if_changed ${agentPaths.config}.sha256 0644 && changed=1
printf '%s' ${shellQuote(ctlScript)} | write_if_changed ${agentPaths.ctl} 0755 && changed=1
printf '%s' "$AGENT_CONFIG" | write_if_changed ${agentPaths.config} 0600 && changed=1
service_install agent ${agentPaths.binary} -config ${agentPaths.config}
if [ "$changed" = 1 ] || ! service_running agent; then service_restart agent; fi
echo "agent on $(hostname)"`),
          delete: hostScript(`service_remove agent
rm -f ${agentPaths.ctl} ${agentPaths.config} ${agentPaths.config}.sha256 ${agentPaths.state} ${agentPaths.binary} ${staged} ${agentPaths.events} ${agentPaths.events}.1`),
        },
        { parent: this, dependsOn: [copied] },
      );
    }
    this.registerOutputs({ hosts: this.hosts });
  }
}
