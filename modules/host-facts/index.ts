import type * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { unameMachines, type Host } from "../../lib/config/inventory";
import { UserError } from "../../lib/log";
import { hostKeyFrom } from "../../lib/host/known-hosts";
import { sudoPassword } from "../../lib/host/ssh";
import { HostCommand, type HostConnection } from "../command";

/** The SSH connection to an inventory host: its private key a secret, only its own host key trusted; `generation` as in HostConnection. */
export function connectionFor(host: Host, generation = 0): HostConnection {
  const hostKey = hostKeyFrom(readFileSync(host.ssh.knownHostsFile, "utf8"), host.address, host.ssh.port);
  if (!hostKey) {
    throw new UserError(`${host.ssh.knownHostsFile} has no key for ${host.name} (${host.address}); add its host key (ssh-keyscan, checked by hand) before provisioning`);
  }
  return {
    host: host.address,
    port: host.ssh.port,
    user: host.ssh.user,
    privateKey: pulumi.secret(readFileSync(host.ssh.privateKeyFile, "utf8")),
    hostKey,
    name: host.name,
    generation,
    ...(host.ssh.become ? { become: host.ssh.become } : {}),
    ...(host.ssh.sudoPasswordFile ? { sudoPassword: pulumi.secret(sudoPassword(host)) } : {}),
  };
}

/** An inventory host as a cluster-wide component receives it: how to reach it, and what must be ready there first. */
export interface ClusterNode {
  host: Host;
  connection: pulumi.Input<HostConnection>;
  dependsOn?: pulumi.Input<pulumi.Resource>[];
  /** The @pulumi/docker provider of the host's engine, once the engine is there (EdgeCluster.ready has it). */
  docker?: docker.Provider;
  /** How many times the stack found the host re-imaged (HostConnection.generation); 0 when not given. */
  generation?: number;
}

export interface HostFactsArgs {
  host: Host;
  /** As in HostConnection (default 0). */
  generation?: number;
}


/** What a host says about itself over SSH: hostname, kernel and architecture. */
export class HostFacts extends pulumi.ComponentResource {
  readonly hostname: pulumi.Output<string>;
  readonly kernel: pulumi.Output<string>;
  readonly machine: pulumi.Output<string>;

  constructor(name: string, args: HostFactsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edge-ha:host:HostFacts", name, {}, opts);
    // Checks the inventory's arch against the host before anything is installed: CRIU is built per arch.
    const { host } = args;
    const facts = new HostCommand(
      `${name}-facts`,
      {
        environment: { HOST: `${host.name} (${host.address})`, ARCH: host.arch, MACHINES: unameMachines[host.arch].join(" ") },
        create: readFileSync(path.join(__dirname, "facts.sh"), "utf8"),
        connection: connectionFor(host, args.generation),
      },
      { parent: this },
    );
    const line = (i: number) => facts.stdout.apply((s) => s.split("\n")[i] ?? "");
    this.hostname = line(0);
    this.kernel = line(1);
    this.machine = line(2);
    this.registerOutputs({ hostname: this.hostname, kernel: this.kernel, machine: this.machine });
  }
}
