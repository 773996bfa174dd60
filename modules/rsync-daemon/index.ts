import * as pulumi from "@pulumi/pulumi";
import { artifacts, checkpointsDir, rsyncDefaults } from "../../lib/host/paths";
import { componentScript } from "../../lib/host/shell";
import { HostCommand, type HostConnection } from "../command";

export interface RsyncDaemonArgs {
  connection: pulumi.Input<HostConnection>;
  /** The host's address, as the other hosts reach it. */
  address: string;
  /** Password of the module's user; keep it a Pulumi secret. */
  password: pulumi.Input<string>;
  /** Addresses allowed to connect (the cluster's hosts); everyone else is refused. */
  allowedHosts: string[];
  /** TCP port (default 873). */
  port?: number;
  /** Module name (default "checkpoints"). */
  module?: string;
  /** User name clients authenticate as (default "edge-ha"). */
  user?: string;
}

/** rsyncd.conf for these settings (the password lives in the secrets file, not here). */
export function rsyncdConfig(args: Pick<RsyncDaemonArgs, "allowedHosts" | "port" | "module" | "user">): string {
  // Both modules: the same user, and only the cluster's hosts.
  const section = (name: string, dir: string, readOnly: boolean) => [
    `[${name}]`,
    `  path = ${dir}`,
    `  read only = ${readOnly}`,
    `  auth users = ${args.user ?? rsyncDefaults.user}`,
    "  secrets file = /etc/edge-ha/rsyncd.secrets",
    "  strict modes = yes",
    `  hosts allow = ${["127.0.0.1", ...args.allowedHosts].join(" ")}`,
    "  hosts deny = *",
    "",
  ];
  return [
    "# Written by edge-ha: receives checkpoint images from the other nodes.",
    `port = ${args.port ?? rsyncDefaults.port}`,
    "uid = root",
    "gid = root",
    "use chroot = yes",
    "max connections = 16",
    "reverse lookup = no",
    "",
    ...section(args.module ?? rsyncDefaults.module, checkpointsDir, false),
    ...section(artifacts.module, artifacts.dir, true),
  ].join("\n");
}

/**
 * An rsync daemon with a module for checkpoint images and a read-only one for
 * artifacts, password-protected and open only to the cluster's hosts,
 * running as a supervised service.
 */
export class RsyncDaemon extends pulumi.ComponentResource {
  /** rsync URL of the module, without credentials. */
  readonly url: pulumi.Output<string>;

  constructor(name: string, args: RsyncDaemonArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edge-ha:node:RsyncDaemon", name, {}, opts);
    const user = args.user ?? rsyncDefaults.user;
    const port = args.port ?? rsyncDefaults.port;
    const daemon = new HostCommand(
      `${name}-rsyncd`,
      {
        connection: args.connection,
        environment: { RSYNCD_CONF: rsyncdConfig(args), DAEMON_USER: user, RSYNC_SECRET: args.password, PORT: String(port) },
        create: componentScript(__dirname, "install.sh"),
        delete: componentScript(__dirname, "remove.sh", "delete"),
      },
      { parent: this },
    );
    this.url = daemon.id.apply(() => `rsync://${user}@${args.address}:${port}/${args.module ?? rsyncDefaults.module}/`);
    this.registerOutputs({ url: this.url });
  }
}
