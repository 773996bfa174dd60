import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { shellQuote } from "../../lib/host/shell";
import { rootCommand, sudoMarker } from "../../lib/host/ssh";

/*
 * edge-ha's commands are @pulumi/command resources. This module only decides
 * how edge-ha uses them, in one place:
 *
 * - Every connection carries the host's key from the inventory's known_hosts.
 *   @pulumi/command ignores host keys when `hostKey` is not given; a
 *   HostConnection cannot be made without one.
 * - A host script (create, update and delete bodies, and its environment) is
 *   sent on the SSH session's standard input, and the command line is only
 *   `bash -s -- create` (or update, delete). So secrets never show in a
 *   process's arguments on the host, the host's sshd needs no AcceptEnv for
 *   the environment (the provider's `environment` uses SSH setenv, which a
 *   stock sshd refuses), and an error shows the script's output, not a
 *   150-line command line.
 * - The script's standard input is read in full before it runs (it is one
 *   function call at the end), so a command in it that reads standard input
 *   gets nothing rather than the rest of the script.
 */

/** How edge-ha reaches a host over SSH. The host key is always verified. */
export interface HostConnection {
  /** Address of the host. */
  host: string;
  port: number;
  user: string;
  /** Private key (OpenSSH format); a Pulumi secret. */
  privateKey: pulumi.Input<string>;
  /** The host's public key (`TYPE BASE64`, as in known_hosts without the host field): only this key is accepted. */
  hostKey: string;
  /** The host's inventory name, for messages. */
  name: string;
  /** "sudo": the login is not root; every command runs through sudo (lib/host/ssh rootCommand). */
  become?: "sudo";
  /** The login's sudo password, when sudo asks for one; a Pulumi secret. */
  sudoPassword?: pulumi.Input<string>;
  /**
   * How many times the stack found this host re-imaged (lib/host/identity;
   * 0 until then). When it grows, every command on the host runs its create
   * script again (an update: the connection's new host key and this number
   * change its inputs), and every copy is made again: the host is
   * provisioned from blank. No delete runs on it: what the old deletes would
   * remove went with the old disk, and they would connect with the old host
   * key, which the new installation no longer has.
   */
  generation?: number;
}

/** Tries and time per try when the host does not answer: an unreachable host fails in about half a minute, not minutes. */
const dial = { dialErrorLimit: 3, perDialTimeout: 10 } as const;

/** @pulumi/command's connection for a host: its key pinned, its private key secret. */
export function commandConnection(c: pulumi.Input<HostConnection>): pulumi.Output<command.types.input.remote.ConnectionArgs> {
  return pulumi.output(c).apply((c) => {
    if (!c.hostKey) throw new Error(`no host key for ${c.name} (${c.host}): edge-ha never connects without one`);
    // Only what @pulumi/command knows: the generation is ours (see generationOf).
    // The whole connection is secret (its private key is), and @pulumi/command keeps it so.
    return { host: c.host, port: c.port, user: c.user, privateKey: c.privateKey, hostKey: c.hostKey, ...dial };
  });
}

export interface HostCommandArgs {
  /** The host to run on. */
  connection: pulumi.Input<HostConnection>;
  /** Script run when the resource is created, and on update when no `update` is given. */
  create: string;
  /** Script run when the inputs change. */
  update?: string;
  /** Script run when the resource is deleted. */
  delete?: string;
  /** Environment of the scripts. Values may be secrets: the script's text is then a secret in the state. */
  environment?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  /** Any change to these values replaces the resource (delete, then create). */
  triggers?: pulumi.Input<unknown[]>;
}

/** The text sent on a host command's standard input: the scripts as functions, the environment, then the call. */
export function hostCommandScript(scripts: Pick<HostCommandArgs, "create" | "update" | "delete">, environment: Record<string, string> = {}): string {
  const fn = (name: string, body: string | undefined) => (body === undefined ? "" : `edge_ha_${name}() {\n${body.trim()}\n}\n`);
  const exports = Object.entries(environment)
    .map(([k, v]) => `export ${k}=${shellQuote(v)}\n`)
    .join("");
  return `${fn("create", scripts.create)}${fn("update", scripts.update)}${fn("delete", scripts.delete)}set -e\n${exports}"edge_ha_$1" </dev/null\n`;
}

/**
 * `triggers`, plus the host's generation once it was re-imaged, for copies
 * (their replacement deletes nothing on the host). Unchanged (even
 * undefined) at generation 0, so a stack made before generations existed
 * sees no change.
 */
function withGeneration(connection: pulumi.Input<HostConnection>, triggers?: pulumi.Input<unknown[]>): pulumi.Output<unknown[]> {
  // An output of undefined is no input at all, as before generations existed.
  return pulumi.all([generationOf(connection), triggers]).apply(([g, t]) => (g ? [...((t as unknown[] | undefined) ?? []), `host generation ${g}`] : t)) as pulumi.Output<unknown[]>;
}

/**
 * The host's sudo password, or undefined when sudo asks none (or the login is
 * root). Not marked secret here: the connection is secret as a whole (its
 * private key), and that mark would make every host's stdin secret; the
 * caller marks what carries the password secret.
 */
function sudoPasswordOf(connection: pulumi.Input<HostConnection>): pulumi.Output<string | undefined> {
  return pulumi.unsecret(pulumi.output(connection).apply((c) => pulumi.output(c.sudoPassword)));
}

/** The host's generation, not secret (the connection is, for its key). */
function generationOf(connection: pulumi.Input<HostConnection>): pulumi.Output<number> {
  return pulumi.unsecret(pulumi.output(connection).apply((c) => c.generation ?? 0));
}

/**
 * A script run on a host over SSH as a @pulumi/command `remote.Command`
 * (see the top of this file for how the script travels). Its stdout is the
 * resource's `stdout`; it is not logged (scripts may print secrets, such as
 * join tokens, that the caller marks secret).
 */
export class HostCommand extends command.remote.Command {
  constructor(name: string, args: HostCommandArgs, opts?: pulumi.CustomResourceOptions) {
    const scripts = { create: args.create, update: args.update, delete: args.delete };
    // How root runs `bash -s -- PHASE` there: as is, or through sudo (not secret: the password travels on stdin).
    const become = pulumi.unsecret(pulumi.output(args.connection).apply((c) => ({ ssh: { become: c.become, sudoPasswordFile: c.sudoPassword === undefined ? undefined : "given" } })));
    const phase = (p: string) => become.apply((host) => rootCommand(host, "bash", "-s", "--", p));
    super(
      name,
      {
        connection: commandConnection(args.connection),
        create: phase("create"),
        update: args.update === undefined ? undefined : phase("update"),
        delete: args.delete === undefined ? undefined : phase("delete"),
        // Secret when any value of the environment is (or a sudo password leads it). A re-imaged host's generation is
        // part of it, so that the create script runs again there (an update, not a replacement: see HostConnection).
        stdin: pulumi
          .all([args.environment ?? {}, generationOf(args.connection), sudoPasswordOf(args.connection)])
          .apply(([env, generation, password]) => {
            const script = hostCommandScript(scripts, generation ? { ...env, EDGE_HA_GENERATION: String(generation) } : env);
            return password === undefined ? pulumi.output(script) : pulumi.secret(`${password}\n${sudoMarker}\n${script}`);
          }),
        triggers: args.triggers,
        logging: "none",
        addPreviousOutputInEnv: false,
      },
      // A replacement runs the old delete before the new create: both touch the same files and
      // containers on the host, and the other order would have the delete undo the create.
      { deleteBeforeReplace: true, ...opts },
    );
  }
}

/**
 * Where a copy to `host` lands before a command puts it at `installPath`:
 * beside it for a root login; in the login's home for one through sudo
 * (`.edge-ha/staged/NAME`, relative: SFTP and the commands, which sudo runs
 * in the login's home, both start there), the only place that login may
 * write and no other user may.
 */
export function stagingPath(host: { ssh: { become?: "sudo" } }, installPath: string): string {
  return host.ssh.become === "sudo" ? `.edge-ha/staged/${installPath.split("/").pop()}` : installPath;
}

export interface CopyToHostArgs {
  /** Path of the file on this machine. */
  source: string;
  connection: pulumi.Input<HostConnection>;
  /** Path on the host (stagingPath): a staging place; the command that uses the file checks its sha256 and moves it. */
  remotePath: string;
}

/**
 * A file copied from this machine to a host (SFTP, host key verified) as a
 * @pulumi/command `remote.CopyToRemote`; copied again when its content
 * changes. It lands where it is staged, never over a file in use: the
 * command that installs it checks its sha256 first (host/prelude.sh install_staged).
 */
export class CopyToHost extends command.remote.CopyToRemote {
  constructor(name: string, args: CopyToHostArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      name,
      { connection: commandConnection(args.connection), source: new pulumi.asset.FileAsset(args.source), remotePath: args.remotePath, triggers: withGeneration(args.connection) },
      opts,
    );
  }
}
