import * as pulumi from "@pulumi/pulumi";
import { readFileSync } from "node:fs";
import type { Host } from "../../lib/inventory";
import { UserError } from "../../lib/log";
import { ConnectionArgs, RemoteCommand } from "../command";

/** The SSH connection to an inventory host, with its private key as a secret and only its own host key trusted. */
export function connectionFor(host: Host): ConnectionArgs {
  const knownHosts = readFileSync(host.ssh.knownHostsFile, "utf8")
    .split("\n")
    .filter((line) => line.split(" ")[0].split(",").includes(host.address))
    .join("\n");
  if (!knownHosts) {
    throw new UserError(`${host.ssh.knownHostsFile} has no key for ${host.name} (${host.address}); add its host key (ssh-keyscan, checked by hand) before provisioning`);
  }
  return {
    host: host.address,
    port: host.ssh.port,
    user: host.ssh.user,
    privateKey: pulumi.secret(readFileSync(host.ssh.privateKeyFile, "utf8")),
    knownHosts,
    name: host.name,
  };
}

/** An inventory host as a cluster-wide component receives it: how to reach it, and what must be ready there first. */
export interface ClusterNode {
  host: Host;
  connection: pulumi.Input<ConnectionArgs>;
  dependsOn?: pulumi.Input<pulumi.Resource>[];
}

export interface HostFactsArgs {
  host: Host;
}

/** `uname -m` names of the inventory's architectures. */
const machines: Record<Host["arch"], string[]> = { amd64: ["x86_64"], arm64: ["aarch64", "arm64"], armhf: ["armv7l", "armv6l"] };

/** What a host says about itself over SSH: hostname, kernel and architecture. */
export class HostFacts extends pulumi.ComponentResource {
  readonly hostname: pulumi.Output<string>;
  readonly kernel: pulumi.Output<string>;
  readonly machine: pulumi.Output<string>;

  constructor(name: string, args: HostFactsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edge-ha:host:HostFacts", name, {}, opts);
    // Checks the inventory's arch against the host before anything is installed: CRIU is built per arch.
    const { host } = args;
    const facts = new RemoteCommand(
      `${name}-facts`,
      {
        create: `hostname; uname -r; m=$(uname -m); echo "$m"
case " ${machines[host.arch].join(" ")} " in *" $m "*) ;; *)
  echo "${host.name} (${host.address}) is $m, but the inventory says arch: ${host.arch}; fix hosts[].arch for ${host.name}" >&2; exit 1;;
esac`,
        connection: connectionFor(host),
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
