import * as pulumi from "@pulumi/pulumi";

/*
 * Commands as Pulumi resources, run locally or on a host over SSH.
 *
 * These are Pulumi dynamic resources rather than @pulumi/command: that
 * package's provider plugin cannot be built on machines whose Go module proxy
 * does not serve github.com/pulumi/pulumi-command/provider. Dynamic providers
 * run inside the Node.js language host, so the real engine drives them with no
 * extra plugin. The inputs follow @pulumi/command's (create/update/delete,
 * environment, triggers) so a later swap is mechanical.
 *
 * The provider functions are serialized into the state by Pulumi; everything
 * they use is required inside them, on purpose.
 */

/** How to reach a host over SSH. The host key is always verified. */
export interface Connection {
  /** Address or name of the host. */
  host: string;
  /** SSH port (default 22). */
  port?: number;
  /** Login user (default root). */
  user?: string;
  /** Private key (OpenSSH format). Keep it a Pulumi secret. */
  privateKey: string;
  /** known_hosts lines for this host; connections to a host whose key does not match are refused. */
  knownHosts: string;
  /** The host's inventory name, for messages. */
  name?: string;
}

export interface CommandArgs {
  /** Shell script run when the resource is created (and on update when no `update` is given). */
  create: pulumi.Input<string>;
  /** Shell script run when inputs change; defaults to `create`. */
  update?: pulumi.Input<string>;
  /** Shell script run when the resource is deleted. */
  delete?: pulumi.Input<string>;
  /** Environment variables for the scripts. */
  environment?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  /** Any change to these values replaces the resource (delete, then create). */
  triggers?: pulumi.Input<unknown[]>;
  /** Local only: stdin text for the scripts. */
  stdin?: pulumi.Input<string>;
}

/** A Connection whose fields may be Pulumi inputs (the private key usually is a secret). */
export type ConnectionArgs = { [K in keyof Connection]: pulumi.Input<Connection[K]> };

export interface RemoteCommandArgs extends CommandArgs {
  connection: pulumi.Input<ConnectionArgs>;
}

interface CommandState {
  create: string;
  update?: string;
  delete?: string;
  environment?: Record<string, string>;
  triggers?: unknown[];
  stdin?: string;
  connection?: Connection;
  stdout: string;
  stderr: string;
}

/** Shared provider body for local and remote commands; `run` is the only difference. */
function makeProvider(remote: boolean): pulumi.dynamic.ResourceProvider {
  const run = async (script: string, inputs: CommandState): Promise<{ stdout: string; stderr: string }> => {
    const { spawn } = require("node:child_process") as typeof import("node:child_process");
    const session = remote ? openSsh(inputs.connection!) : undefined;
    // The environment is sent as exports ahead of the script: sshd drops most SendEnv.
    const exports = Object.entries(inputs.environment ?? {})
      .map(([k, v]) => `export ${k}='${String(v).replace(/'/g, `'\\''`)}'\n`)
      .join("");
    const argv = session ? [...session.argv, "bash -s"] : ["bash", "-c", script];
    try {
      return await new Promise((resolve, reject) => {
        const child = spawn(argv[0], argv.slice(1), {
          env: remote ? process.env : { ...process.env, ...(inputs.environment ?? {}) },
          stdio: ["pipe", "pipe", "pipe"],
        });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Buffer) => (stdout += d));
        child.stderr.on("data", (d: Buffer) => (stderr += d));
        child.on("error", reject);
        child.on("close", (code: number | null) => {
          if (code === 0) return resolve({ stdout: stdout.trimEnd(), stderr: stderr.trimEnd() });
          // Never the exports in a message: they carry secrets.
          const tail = stderr.trimEnd().split("\n").slice(-25).join("\n");
          const where = session ? ` on ${session.label}` : "";
          const hint = session && code === 255 ? " (ssh could not connect: host down or unreachable, or its key does not match known_hosts)" : "";
          reject(new Error(`command failed${where} with exit code ${code}${hint}\n${tail}`));
        });
        child.stdin.end(session ? `set -e\n${exports}${script}` : inputs.stdin ?? "");
      });
    } finally {
      session?.close();
    }
  };

  const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

  return {
    async create(inputs: CommandState) {
      const out = await run(inputs.create, inputs);
      const id = require("node:crypto").randomBytes(8).toString("hex");
      return { id, outs: { ...inputs, ...out } };
    },
    async diff(_id: string, olds: CommandState, news: CommandState) {
      const keys = ["create", "update", "delete", "environment", "triggers", "stdin", "connection"] as const;
      const changed = keys.filter((k) => !same(olds[k], news[k]));
      const replaces = changed.filter((k) => k === "triggers" || (k === "connection" && !same(olds.connection?.host, news.connection?.host)));
      return { changes: changed.length > 0, replaces, deleteBeforeReplace: true };
    },
    async update(_id: string, _olds: CommandState, news: CommandState) {
      const out = await run(news.update ?? news.create, news);
      return { outs: { ...news, ...out } };
    },
    async delete(_id: string, olds: CommandState) {
      if (olds.delete) await run(olds.delete, olds);
    },
  };
}

/**
 * An ssh invocation that reaches `c` with only its own host key trusted: the
 * key and known_hosts are written to a private scratch folder, removed by close().
 */
function openSsh(c: Connection): { argv: string[]; label: string; close: () => void } {
  const fs = require("node:fs") as typeof import("node:fs");
  const os = require("node:os") as typeof import("node:os");
  const path = require("node:path") as typeof import("node:path");
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "edge-ha-ssh-"));
  fs.writeFileSync(path.join(scratch, "key"), c.privateKey.endsWith("\n") ? c.privateKey : c.privateKey + "\n", { mode: 0o600 });
  fs.writeFileSync(path.join(scratch, "known_hosts"), c.knownHosts);
  const argv = [
    "ssh", "-q", "-i", path.join(scratch, "key"),
    "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
    "-o", `UserKnownHostsFile=${path.join(scratch, "known_hosts")}`,
    "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=6",
    "-p", String(c.port ?? 22), `${c.user ?? "root"}@${c.host}`,
  ];
  const label = c.name ? `${c.name} (${c.host})` : c.host;
  return { argv, label, close: () => fs.rmSync(scratch, { recursive: true, force: true }) };
}

interface CopyState {
  /** Without a connection, the file is on this machine. */
  source: { connection?: Connection; path: string };
  connection: Connection;
  path: string;
  mode: string;
  triggers?: unknown[];
  sha256: string;
}

/**
 * Streams a file from one host to another through this machine (the hosts
 * need no keys for each other), then checks the copy's sha256 against the
 * source's before moving it into place, so a target never holds half a file.
 */
const copyProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: CopyState) {
    const { spawn } = require("node:child_process") as typeof import("node:child_process");
    const local = !inputs.source.connection;
    const from = local ? undefined : openSsh(inputs.source.connection!);
    const to = openSsh(inputs.connection);
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const tmp = `${inputs.path}.edge-ha-partial`;
    const exec = (argv: string[], stdin: "pipe" | NodeJS.ReadableStream | null) =>
      new Promise<string>((resolve, reject) => {
        const child = spawn(argv[0], argv.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
        let out = "";
        let err = "";
        child.stdout.on("data", (d: Buffer) => (out += d));
        child.stderr.on("data", (d: Buffer) => (err += d));
        child.on("error", reject);
        child.on("close", (code: number | null) => (code === 0 ? resolve(out.trim()) : reject(new Error(`${argv[argv.length - 1]} failed (exit ${code}): ${err.trim()}`))));
        if (stdin && stdin !== "pipe") stdin.pipe(child.stdin);
        else child.stdin.end();
      });
    try {
      const fs = require("node:fs") as typeof import("node:fs");
      const want = from
        ? (await exec([...from.argv, `sha256sum ${q(inputs.source.path)}`], null)).split(" ")[0]
        : (require("node:crypto") as typeof import("node:crypto")).createHash("sha256").update(fs.readFileSync(inputs.source.path)).digest("hex");
      const reader = from
        ? spawn(from.argv[0], [...from.argv.slice(1), `cat ${q(inputs.source.path)}`], { stdio: ["ignore", "pipe", "inherit"] }).stdout
        : fs.createReadStream(inputs.source.path);
      const got = (await exec([...to.argv, `mkdir -p "$(dirname ${q(inputs.path)})" && cat > ${q(tmp)} && sha256sum ${q(tmp)}`], reader)).split(" ")[0];
      if (got !== want) {
        await exec([...to.argv, `rm -f ${q(tmp)}`], null).catch(() => undefined);
        throw new Error(`copy of ${inputs.source.path} from ${from?.label ?? "this machine"} to ${to.label} arrived damaged (sha256 ${got}, expected ${want}); nothing was installed`);
      }
      await exec([...to.argv, `chmod ${inputs.mode} ${q(tmp)} && mv -f ${q(tmp)} ${q(inputs.path)}`], null);
      const id = require("node:crypto").randomBytes(8).toString("hex");
      return { id, outs: { ...inputs, sha256: want } };
    } finally {
      from?.close();
      to.close();
    }
  },
  async diff(_id: string, olds: CopyState, news: CopyState) {
    const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
    const changes = !same(olds.triggers, news.triggers) || olds.path !== news.path || olds.mode !== news.mode ||
      olds.source.path !== news.source.path || olds.source.connection?.host !== news.source.connection?.host || olds.connection.host !== news.connection.host;
    return { changes, replaces: changes ? ["triggers"] : [], deleteBeforeReplace: true };
  },
};

const localProvider = makeProvider(false);
const remoteProvider = makeProvider(true);

/** A command run on the machine that runs `pulumi up`. */
export class LocalCommand extends pulumi.dynamic.Resource {
  declare readonly stdout: pulumi.Output<string>;
  declare readonly stderr: pulumi.Output<string>;

  constructor(name: string, args: CommandArgs, opts?: pulumi.CustomResourceOptions) {
    super(localProvider, name, { ...args, stdout: undefined, stderr: undefined }, opts, "edge-ha", "LocalCommand");
  }
}

/** A command run on a remote host over SSH, with the host key verified. */
export class RemoteCommand extends pulumi.dynamic.Resource {
  declare readonly stdout: pulumi.Output<string>;
  declare readonly stderr: pulumi.Output<string>;

  constructor(name: string, args: RemoteCommandArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      remoteProvider,
      name,
      { ...args, connection: pulumi.secret(args.connection), stdout: undefined, stderr: undefined },
      // The environment is where scripts get their secrets (passwords, tokens).
      { ...opts, additionalSecretOutputs: ["connection", "environment", ...(opts?.additionalSecretOutputs ?? [])] },
      "edge-ha",
      "RemoteCommand",
    );
  }
}

export interface CopyBetweenHostsArgs {
  /** Where the file is: a host and an absolute path on it. */
  source: pulumi.Input<{ connection: pulumi.Input<ConnectionArgs>; path: pulumi.Input<string> }>;
  /** The host to copy to. */
  connection: pulumi.Input<ConnectionArgs>;
  /** Absolute path on the target. */
  path: pulumi.Input<string>;
  /** File mode on the target (default 0644). */
  mode?: pulumi.Input<string>;
  /** Any change copies the file again (for example the source's version or checksum). */
  triggers?: pulumi.Input<unknown[]>;
}

/** A file copied from one host to another over SSH, verified by sha256; the counterpart of @pulumi/command's CopyToRemote for host-to-host copies. */
export class CopyBetweenHosts extends pulumi.dynamic.Resource {
  declare readonly sha256: pulumi.Output<string>;

  constructor(name: string, args: CopyBetweenHostsArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      copyProvider,
      name,
      { ...args, mode: args.mode ?? "0644", source: pulumi.secret(args.source), connection: pulumi.secret(args.connection), sha256: undefined },
      { ...opts, additionalSecretOutputs: ["source", "connection", ...(opts?.additionalSecretOutputs ?? [])] },
      "edge-ha",
      "CopyBetweenHosts",
    );
  }
}

export interface CopyToHostArgs {
  /** Path of the file on this machine. */
  source: pulumi.Input<string>;
  connection: pulumi.Input<ConnectionArgs>;
  /** Absolute path on the host. */
  path: pulumi.Input<string>;
  mode?: pulumi.Input<string>;
  /** Any change copies the file again (for example its checksum). */
  triggers?: pulumi.Input<unknown[]>;
}

/** A file copied from this machine to a host over SSH, verified by sha256; the counterpart of @pulumi/command's CopyToRemote. */
export class CopyToHost extends pulumi.dynamic.Resource {
  declare readonly sha256: pulumi.Output<string>;

  constructor(name: string, args: CopyToHostArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      copyProvider,
      name,
      { ...args, source: { path: args.source }, mode: args.mode ?? "0644", connection: pulumi.secret(args.connection), sha256: undefined },
      { ...opts, additionalSecretOutputs: ["connection", ...(opts?.additionalSecretOutputs ?? [])] },
      "edge-ha",
      "CopyToHost",
    );
  }
}
