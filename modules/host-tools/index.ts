import * as pulumi from "@pulumi/pulumi";
import { hostMarker, hostTools } from "../../lib/host/paths";
import { hostFile, hostLibrary, hostScript } from "../../lib/host/shell";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { HostCommand, type HostConnection } from "../command";

export interface HostToolsArgs {
  /** How to reach the host. */
  connection: pulumi.Input<HostConnection>;
  /** The host's edge-ha marker, written to lib/host/paths hostMarker (lib/host/identity decides it). */
  hostId: string;
}

/**
 * edge-ha's shell on a host: its function library (lib/host/shell.ts
 * hostLibrary) and the commands built on it, edge-ha-sync (a service's
 * checkpoint sync loop) and edge-ha-ctl (what the failover agent runs).
 * Every other component's host scripts run with this library (they wait for
 * this component), so it is installed first on a host and removed last. A
 * change to any of the files updates them in place; removal takes them away.
 */
export class HostTools extends pulumi.ComponentResource {
  /** The marker the host holds now (known once the files are installed). */
  readonly hostId: pulumi.Output<string>;
  /** A short digest of the installed files: it changes when they do. */
  readonly digest: pulumi.Output<string>;

  constructor(name: string, args: HostToolsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edge-ha:node:HostTools", name, {}, opts);
    const files = {
      HOST_ID: args.hostId,
      MARKER: hostMarker,
      LIBRARY_PATH: hostTools.library,
      CTL_PATH: hostTools.ctl,
      LIBRARY: hostLibrary,
      SYNC: hostFile("edge-ha-sync"),
      CTL: hostFile("edge-ha-ctl"),
    };
    const installed = new HostCommand(
      `${name}-host-tools`,
      {
        connection: args.connection,
        environment: files,
        // These two carry the library: they run before it is installed, and after it is gone.
        create: hostScript(ownFile("install.sh")),
        delete: hostScript(ownFile("remove.sh")),
      },
      { parent: this },
    );
    this.hostId = installed.stdout.apply((s) => s.split("\n")[0]);
    this.digest = installed.stdout.apply((s) => s.split("\n")[1] ?? "");
    this.registerOutputs({ hostId: this.hostId, digest: this.digest });
  }
}

const ownFile = (file: string) => readFileSync(path.join(__dirname, file), "utf8");
