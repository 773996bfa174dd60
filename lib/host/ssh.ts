import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { $, ProcessOutput } from "zx";
import type { Host, SshSettings } from "../config/inventory";
import { UserError } from "../log";
import { shellQuote } from "./shell";

const credentialsTag = (host: Host) => createHash("sha256").update(`${host.ssh.privateKeyFile}\0${host.ssh.knownHostsFile}`).digest("hex").slice(0, 10);

/** ssh arguments that reach `host` as the inventory says, verifying its host key. */
export function sshArgs(host: Host, extra: string[] = [], connectTimeout = 5): string[] {
  return [
    "-i", host.ssh.privateKeyFile,
    "-o", "BatchMode=yes",
    "-o", "StrictHostKeyChecking=yes",
    "-o", `UserKnownHostsFile=${host.ssh.knownHostsFile}`,
    "-o", `ConnectTimeout=${connectTimeout}`,
    // One connection per host, reused for 10 s: a migration's steps then cost
    // milliseconds each instead of an SSH handshake. Keepalives end a master
    // whose host went away within 3 s. The socket's name covers the key and
    // known_hosts files, so other credentials never ride a connection
    // verified with different ones.
    "-o", "ControlMaster=auto", "-o", `ControlPath=${tmpdir()}/edge-ha-ssh-${credentialsTag(host)}-%C`, "-o", "ControlPersist=10",
    "-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=3",
    "-p", String(host.ssh.port),
    ...extra,
    `${host.ssh.user}@${host.address}`,
  ];
}

/*
 * Root on a host whose login is not root (`ssh.become: sudo`). A command runs
 * as `sudo -n bash -c COMMAND`; when the inventory gives a sudo password,
 * `sudo -S` reads it as the first line of the command's standard input,
 * followed by a marker line, then whatever input the command has. sudo reads
 * its password one byte at a time, so the rest stays for the command. A
 * sudo that asked for no password (a NOPASSWD rule, a cached ticket) left the
 * password line unread: the wrapper reads lines up to the marker, so the
 * password is never taken as input, let alone run.
 */

/** The line that ends what sudo may read on standard input. */
export const sudoMarker = "edge-ha: sudo's input ends here";

/** What a command on `host` starts with on its standard input: a sudo password and the marker, or nothing. */
export function sudoInput(host: Host): string {
  return host.ssh.sudoPasswordFile ? `${sudoPassword(host)}\n${sudoMarker}\n` : "";
}

/** The first line of the host's sudo password file; a UserError naming the file when it cannot be read. */
export function sudoPassword(host: Host): string {
  const file = host.ssh.sudoPasswordFile!;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new UserError(`${host.name}: cannot read its ssh.sudoPasswordFile ${file}: ${(err as Error).message}`);
  }
  return text.split("\n")[0].replace(/\r$/, "");
}

/**
 * The command line that runs `argv` (a program and its arguments, each
 * quoted) as root on `host`: as is for root, through sudo otherwise (see
 * above). `rootCommand(host, "bash", "-s", "--", "create")`.
 */
export function rootCommand(host: { ssh: Pick<SshSettings, "become" | "sudoPasswordFile"> }, ...argv: string[]): string {
  const command = argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : shellQuote(a))).join(" ");
  if (host.ssh.become !== "sudo") return command;
  if (!host.ssh.sudoPasswordFile) return `sudo -n -- ${command}`;
  const skipToMarker = `while IFS= read -r line; do [ "$line" = ${shellQuote(sudoMarker)} ] && exec "$@"; done; echo "edge-ha: sudo's input ended before its marker" >&2; exit 97`;
  return `sudo -S -p '' -- bash -c ${shellQuote(skipToMarker)} edge-ha ${command}`;
}

/** The command line that runs the shell command `command` as root on `host`. */
export function rootShell(host: { ssh: Pick<SshSettings, "become" | "sudoPasswordFile"> }, command: string): string {
  return host.ssh.become === "sudo" ? rootCommand(host, "bash", "-c", command) : command;
}

/** Runs a shell command on a host as root; rejects with the command's stderr when it fails. */
export function sshExec(host: Host, command: string, opts: { input?: string | Buffer; nothrow?: boolean; connectTimeout?: number; asLogin?: boolean } = {}): Promise<ProcessOutput> {
  const sudo = opts.asLogin ? "" : sudoInput(host);
  const input = sudo === "" ? opts.input : Buffer.concat([Buffer.from(sudo), Buffer.from(opts.input ?? "")]);
  return $({ quiet: true, nothrow: opts.nothrow ?? false, input })`ssh ${sshArgs(host, [], opts.connectTimeout)} ${opts.asLogin ? command : rootShell(host, command)}`;
}

/**
 * Runs `fromCommand` on one host as root, its output piped into `toCommand`
 * on another (`docker save | docker load`); rejects naming the side that failed.
 */
export async function sshPipe(from: Host, fromCommand: string, to: Host, toCommand: string): Promise<void> {
  const source = spawn("ssh", [...sshArgs(from), rootShell(from, fromCommand)], { stdio: ["pipe", "pipe", "pipe"] });
  const target = spawn("ssh", [...sshArgs(to), rootShell(to, toCommand)], { stdio: ["pipe", "ignore", "pipe"] });
  source.stdin!.end(sudoInput(from));
  target.stdin!.write(sudoInput(to));
  source.stdout!.pipe(target.stdin!);
  const ended = (p: ChildProcess, where: string, command: string) =>
    new Promise<void>((resolve, reject) => {
      let stderr = "";
      p.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
      p.on("error", reject);
      p.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`${command} on ${where} failed (exit ${code}): ${stderr.trim().split("\n").pop() ?? ""}`))));
    });
  await Promise.all([ended(source, from.name, fromCommand), ended(target, to.name, toCommand)]);
}
