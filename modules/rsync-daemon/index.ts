import * as pulumi from "@pulumi/pulumi";
import { artifacts, checkpointsDir, rsyncDefaults, rsyncPasswordFile } from "../../lib/host/paths";
import { hostScript } from "../../lib/host/shell";
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
        environment: { RSYNCD_CONF: rsyncdConfig(args), RSYNC_USER: user, RSYNC_SECRET: args.password, PORT: String(port) },
        create: hostScript(`
apt_install rsync
mkdir -p ${checkpointsDir} ${artifacts.dir}
changed=0
printf '%s' "$RSYNCD_CONF" | write_if_changed /etc/edge-ha/rsyncd.conf 0644 && changed=1
printf '%s:%s\\n' "$RSYNC_USER" "$RSYNC_SECRET" | write_if_changed /etc/edge-ha/rsyncd.secrets 0600 && changed=1
printf '%s\\n' "$RSYNC_SECRET" | write_if_changed ${rsyncPasswordFile} 0600 || true
service_install rsyncd /usr/bin/rsync --daemon --no-detach --config=/etc/edge-ha/rsyncd.conf
if [ $changed = 1 ]; then service_restart rsyncd; else service_start rsyncd; fi
wait_for 10 "the rsync daemon on port $PORT" rsync --list-only --port="$PORT" --password-file=${rsyncPasswordFile} "rsync://$RSYNC_USER@127.0.0.1/"
echo "$(hostname) rsync daemon on port $PORT"`),
        delete: hostScript(`
service_remove rsyncd
rm -rf /etc/edge-ha/rsyncd.conf /etc/edge-ha/rsyncd.secrets ${rsyncPasswordFile} ${checkpointsDir} ${artifacts.dir}
apt_remove_ours rsync`),
      },
      { parent: this },
    );
    this.url = daemon.id.apply(() => `rsync://${user}@${args.address}:${port}/${args.module ?? rsyncDefaults.module}/`);
    this.registerOutputs({ url: this.url });
  }
}
