import { $, ProcessOutput } from "zx";
import type { Host } from "./inventory";

/** ssh arguments that reach `host` as the inventory says, verifying its host key. */
export function sshArgs(host: Host, extra: string[] = []): string[] {
  return [
    "-i", host.ssh.privateKeyFile,
    "-o", "BatchMode=yes",
    "-o", "StrictHostKeyChecking=yes",
    "-o", `UserKnownHostsFile=${host.ssh.knownHostsFile}`,
    "-o", "ConnectTimeout=5",
    "-p", String(host.ssh.port),
    ...extra,
    `${host.ssh.user}@${host.address}`,
  ];
}

/** Runs a shell command on a host; rejects with the command's stderr when it fails. */
export function sshExec(host: Host, command: string, opts: { input?: string | Buffer; nothrow?: boolean } = {}): Promise<ProcessOutput> {
  return $({ quiet: true, nothrow: opts.nothrow ?? false, input: opts.input })`ssh ${sshArgs(host)} ${command}`;
}
