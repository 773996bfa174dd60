import type * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { unameMachines, type Host } from "../../lib/config/inventory";
import { UserError } from "../../lib/log";
import { HostCommand, type HostConnection } from "../command";

/** Host key types in the order edge-ha prefers them when known_hosts has several for a host. */
const keyPreference = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"];

/** The host's key from a known_hosts text (`TYPE BASE64`), or undefined when it has none for the host. */
export function hostKeyFrom(knownHosts: string, address: string, port: number): string | undefined {
  const names = port === 22 ? [address, `[${address}]:22`] : [`[${address}]:${port}`];
  const keys = knownHosts
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length >= 3 && !f[0].startsWith("#") && !f[0].startsWith("@") && f[0].split(",").some((n) => names.includes(n)))
    .map((f) => `${f[1]} ${f[2]}`);
  const rank = (key: string) => {
    const i = keyPreference.indexOf(key.split(" ")[0]);
    return i < 0 ? keyPreference.length : i;
  };
  return keys.sort((a, b) => rank(a) - rank(b))[0];
}

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
