import * as pulumi from "@pulumi/pulumi";
import { checkpointTransfer } from "../../lib/host/paths";
import { componentScript } from "../../lib/host/shell";
import { HostCommand } from "../command";
import type { ClusterNode } from "../host-facts";

export interface CheckpointTransportArgs {
  /** The hosts that send and receive checkpoints (those that run services), each after its dependsOn (its rsync daemon: the protocol spoken inside SSH is the daemon's, with its modules and password). */
  nodes: ClusterNode[];
  /** TCP port of edge-ha's sshd on every host (default checkpointTransfer.port). */
  port?: number;
}

/** One host's keys, as its install printed them. */
interface HostKeys {
  hostKey: string;
  clientKey: string;
}

/** The install's output, "host-key TYPE KEY" and "client-key TYPE KEY", as HostKeys. */
export function parseHostKeys(stdout: string, host: string): HostKeys {
  const key = (name: string) => new RegExp(`^${name} (ssh-ed25519 \\S+)$`, "m").exec(stdout)?.[1];
  const hostKey = key("host-key");
  const clientKey = key("client-key");
  if (!hostKey || !clientKey) throw new Error(`expected the checkpoints sshd's install on ${host} to print its host-key and client-key lines, found: ${stdout.trim().slice(-300)}`);
  return { hostKey, clientKey };
}

/**
 * sshd_config of edge-ha's checkpoints sshd: keys only, root only with a
 * forced command (authorized_keys says which), no forwarding, no terminal.
 */
export function transferSshdConfig(port: number): string {
  const dir = checkpointTransfer.dir;
  return [
    "# Written by edge-ha (modules/checkpoint-transport): receives checkpoints from the cluster's other hosts.",
    `Port ${port}`,
    `HostKey ${dir}/host_key`,
    `AuthorizedKeysFile ${dir}/authorized_keys`,
    "PidFile /run/edge-ha-transfer-sshd.pid",
    "AllowUsers root",
    "PermitRootLogin forced-commands-only",
    "PubkeyAuthentication yes",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "HostbasedAuthentication no",
    "AuthenticationMethods publickey",
    "UsePAM no",
    "StrictModes yes",
    "PermitUserEnvironment no",
    "AllowTcpForwarding no",
    "AllowAgentForwarding no",
    "AllowStreamLocalForwarding no",
    "X11Forwarding no",
    "PermitTunnel no",
    "PermitTTY no",
    "ClientAliveInterval 5",
    "ClientAliveCountMax 3",
    "LogLevel ERROR",
  ].join("\n");
}

/**
 * The authorized_keys line of a peer: its client key, accepted from its
 * address only, and only for the rsync daemon's protocol on this host's
 * config (the checkpoints module it may write, the artifacts it may read:
 * what the daemon itself allows, its password included).
 */
export function authorizedKeyLine(peer: { name: string; address: string }, clientKey: string): string {
  return `restrict,from="${peer.address}",command="rsync --server --daemon --config=/etc/edge-ha/rsyncd.conf ." ${clientKey} edge-ha ${peer.name}`;
}

/**
 * Checkpoints encrypted in transit, the peers authenticated both ways: on
 * every host an sshd of edge-ha's own with a key of its own, and a client key;
 * each host trusts the others' host keys (its known_hosts) and client keys
 * (its authorized_keys, bound to their addresses and to the rsync protocol),
 * every key read over the operator's verified SSH connection to its host.
 * Then each host's senders (the sync loop, a migration) go over SSH
 * (host/service.sh send_checkpoint). A re-imaged host makes new keys, and
 * every host's trust follows. Removed: the sshd, the keys and the trust, and
 * the hosts send to the rsync daemons again.
 */
export class CheckpointTransport extends pulumi.ComponentResource {
  /** Per host, its checkpoints sshd's host key ("ssh-ed25519 KEY"). */
  readonly hostKeys: Record<string, pulumi.Output<string>> = {};
  /** Per host, what its services wait for: it sends over SSH, and the others accept it. */
  readonly ready: Record<string, pulumi.Resource[]> = {};

  constructor(name: string, args: CheckpointTransportArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edge-ha:cluster:CheckpointTransport", name, {}, opts);
    const port = args.port ?? checkpointTransfer.port;
    const sshdConfig = transferSshdConfig(port);
    const installs = args.nodes.map((node) => {
      const install = new HostCommand(
        `${name}-${node.host.name}-sshd`,
        {
          connection: node.connection,
          environment: { SSHD_CONFIG: sshdConfig, PORT: String(port) },
          create: componentScript(__dirname, "install.sh"),
          delete: componentScript(__dirname, "remove.sh", "delete"),
        },
        { parent: this, dependsOn: node.dependsOn },
      );
      const keys = install.stdout.apply((out) => parseHostKeys(out, node.host.name));
      this.hostKeys[node.host.name] = keys.hostKey;
      return { node, install, keys };
    });
    for (const { node } of installs) {
      const peers = installs.filter((p) => p.node.host.name !== node.host.name);
      const authorized = pulumi.all(peers.map((p) => p.keys.clientKey)).apply((keys) => keys.map((k, i) => authorizedKeyLine(peers[i].node.host, k)).join("\n"));
      const known = pulumi.all(peers.map((p) => p.keys.hostKey)).apply((keys) => keys.map((k, i) => `[${peers[i].node.host.address}]:${port} ${k}`).join("\n"));
      const trust = new HostCommand(
        `${name}-${node.host.name}-peers`,
        {
          connection: node.connection,
          environment: { AUTHORIZED_KEYS: authorized, KNOWN_HOSTS: known, PORT: String(port) },
          create: componentScript(__dirname, "peers.sh"),
          delete: componentScript(__dirname, "peers-remove.sh", "delete"),
        },
        // Every host's keys first: a host switches to SSH once the others' sshd runs.
        { parent: this, dependsOn: installs.map((i) => i.install) },
      );
      this.ready[node.host.name] = [trust];
    }
    this.registerOutputs({ hostKeys: this.hostKeys });
  }
}
