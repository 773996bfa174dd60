import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { $, ProcessOutput } from "zx";
import type { Host } from "../config/inventory";

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

/** Runs a shell command on a host; rejects with the command's stderr when it fails. */
export function sshExec(host: Host, command: string, opts: { input?: string | Buffer; nothrow?: boolean; connectTimeout?: number } = {}): Promise<ProcessOutput> {
  return $({ quiet: true, nothrow: opts.nothrow ?? false, input: opts.input })`ssh ${sshArgs(host, [], opts.connectTimeout)} ${command}`;
}
