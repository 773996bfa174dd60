import type { Host, Inventory } from "../config/inventory";
import { findHost } from "../config/inventory";
import { progress, UserError } from "../log";
import { createCommand, locate, restoreCommand, rsync, runArgsText, ServiceSpec } from "./service-container";
import { servicesDir } from "../host/paths";
import { hostScript, shellQuote } from "../host/shell";
import { sshExec } from "../host/ssh";
import { tcpAnswers } from "./endpoint";
import { isSyncInterval } from "../config/service-spec";

/*
 * Periodic checkpoint sync (the paper's rsync approach) and failover from it.
 *
 * On the primary, a supervised loop (systemd unit or boot.d service, like the
 * rsync daemon) checkpoints the service every interval without stopping it
 * (`docker checkpoint create --leave-running`), writes a sha256 manifest and
 * the time it was taken, and mirrors its two newest checkpoints to the
 * standby's rsync daemon. A half-transferred newest one never hides the good
 * one before it: failover restores the newest checkpoint whose manifest
 * verifies.
 */

export const syncDir = (service: string) => `${rsync.dir}/${service}/sync`;

/** Where checkpoint `name` of a service is on a host: a synced one (s<ns>) in its sync folder, a migration's (m<ms>) beside it (host/service.sh checkpoint_dir). */
export const checkpointDir = (service: string, name: string) => (name.startsWith("m") ? `${rsync.dir}/${service}/${name}` : `${syncDir(service)}/${name}`);

/**
 * Host script: keeps the service's settings on the primary (each checkpoint
 * carries them: SPEC.json, and ARGS, its docker create arguments, so that a
 * failover needs nothing from the dead primary), then starts or restarts its
 * sync loop (host/service.sh sync_settings, sync_start).
 */
export function syncInstallScript(spec: ServiceSpec, standby: Pick<Host, "name" | "address">, sync: SyncTiming): string {
  return hostScript(`sync_settings ${spec.name} ${shellQuote(JSON.stringify(spec))} ${shellQuote(runArgsText(spec))}
sync_start ${spec.name} ${standby.name} ${standby.address} ${Math.round(sync.intervalSeconds * 1000)} ${Math.round((sync.maxLagSeconds ?? 0) * 1000)}`);
}

/** How often a service is checkpointed, and (maxLag) how far its standby may lag before the service pauses. */
export interface SyncTiming {
  intervalSeconds: number;
  maxLagSeconds?: number;
}

export async function startSync(primary: Host, standby: Host, spec: ServiceSpec, sync: SyncTiming): Promise<void> {
  const { intervalSeconds, maxLagSeconds } = sync;
  if (!isSyncInterval(intervalSeconds)) throw new UserError(`--interval: expected seconds from 0.5 to 3600, found ${intervalSeconds}`);
  if (maxLagSeconds !== undefined && !(maxLagSeconds >= intervalSeconds + 0.5 && maxLagSeconds <= 3600)) {
    throw new UserError(`--max-lag: expected seconds from the interval + 0.5 (${intervalSeconds + 0.5}) to 3600, found ${maxLagSeconds}`);
  }
  if (primary.name === standby.name) throw new UserError(`the standby of ${spec.name} must be another host than its primary (${primary.name})`);
  await sshExec(primary, syncInstallScript(spec, standby, sync));
}

/** Stops a service's sync loop on a host (a no-op where none runs). */
export async function stopSync(host: Host, service: string): Promise<void> {
  await sshExec(host, hostScript(`sync_stop ${service}`), { nothrow: true });
}

export interface SyncSettings extends SyncTiming {
  standby: string;
}

/** The sync a host runs for a service, if any. */
export async function syncOn(host: Host, service: string): Promise<SyncSettings | undefined> {
  const r = await sshExec(host, `cat ${servicesDir}/${service}.sync 2>/dev/null`, { nothrow: true });
  return parseSyncLine(r.stdout);
}

/** A host's NAME.sync ("STANDBY INTERVAL_S [MAX_LAG_S]", host/service.sh sync_start); undefined when empty. */
export function parseSyncLine(line: string): SyncSettings | undefined {
  const [standby, interval, maxLag] = line.trim().split(" ");
  if (!standby) return undefined;
  return { standby, intervalSeconds: Number(interval), ...(maxLag !== undefined ? { maxLagSeconds: Number(maxLag) } : {}) };
}

export interface Freshness {
  checkpoint: string;
  /** Seconds since the checkpoint was taken. */
  age: number;
}

/** Age of the standby's newest good checkpoint of a service, or undefined when it has none. */
export async function freshness(standby: Host, service: string): Promise<Freshness | undefined> {
  const r = await sshExec(standby, hostScript(`newest_good ${service}; echo now $(date +%s.%N)`));
  const lines = r.stdout.trim().split("\n");
  const now = Number(lines.pop()!.split(" ")[1]);
  if (lines.length === 0) return undefined;
  const [checkpoint, taken] = lines[0].split(" ");
  return { checkpoint, age: now - Number(taken) };
}

export interface FailoverResult {
  service: string;
  to: string;
  /** The container's settings, as the primary ran it. */
  spec: ServiceSpec;
  checkpoint: string;
  /** Age of the restored checkpoint when the failover began: the state lost, in time. */
  checkpointAge: number;
  /** Seconds from the failover's start to the service running (checks, preparation and restore). */
  restore: number;
  /** Seconds from the start until each step was done: still-running check, standby prepared, restored. */
  steps: { checked: number; prepared: number; restored: number };
}

/**
 * Restores a service on its standby from the newest good synced checkpoint,
 * for when its primary is gone. Refuses while the service still runs
 * somewhere: it must never run twice (use migrate to move a running service).
 */
export async function failover(inventory: Inventory, service: string, standbyName: string): Promise<FailoverResult> {
  const standby = findHost(inventory, standbyName);
  const t = process.hrtime.bigint();
  const since = () => Number(process.hrtime.bigint() - t) / 1e9;
  const steps = { checked: 0, prepared: 0, restored: 0 };
  // Whether it still runs anywhere is asked while the standby prepares; only the start waits for the answer.
  const stillRunning = (async () => {
    // Hosts whose SSH port does not answer within 500 ms count as gone: a LAN answers in
    // milliseconds, and ssh's own timeout (whole seconds) held every failover a second.
    const reachable = await Promise.all(inventory.hosts.map(async (h) => ((await tcpAnswers(h.address, h.ssh.port, 500)) ? h : undefined)));
    const running = await locate({ ...inventory, hosts: reachable.filter((h): h is Host => !!h && h.name !== standby.name) }, service);
    steps.checked = since();
    return running;
  })();
  const prepared = (async () => {
    const newest = await freshness(standby, service);
    if (!newest) throw new UserError(`${standby.name} has no good synced checkpoint of ${service} in ${syncDir(service)}; was its sync running?`);
    const dir = checkpointDir(service, newest.checkpoint);
    const spec = JSON.parse((await sshExec(standby, `cat ${dir}/SPEC.json`)).stdout) as ServiceSpec;
    const running = (await sshExec(standby, `docker container inspect -f '{{.State.Running}}' ${service} 2>/dev/null`, { nothrow: true })).stdout.trim() === "true";
    const id = running ? "" : (await sshExec(standby, createCommand(spec))).stdout.trim();
    steps.prepared = since();
    return { ...newest, dir, spec, running, id };
  })();
  const [elsewhere, preparing] = await Promise.all([stillRunning, prepared.then((r) => ({ ok: true as const, r }), (err: unknown) => ({ ok: false as const, err }))]);
  // A service that still runs is the first thing to say, whatever else is wrong.
  if (preparing.ok && preparing.r.running) elsewhere.push(standby);
  if (elsewhere.length > 0) {
    if (preparing.ok && !preparing.r.running) await sshExec(standby, `docker rm -f ${service} >/dev/null 2>&1`, { nothrow: true });
    throw new UserError(`${service} still runs on ${elsewhere.map((h) => h.name).join(", ")}; failover is for a service whose node is gone (to move it: migrate)`);
  }
  if (!preparing.ok) throw preparing.err;
  const ready = preparing.r;
  progress(`failover: restoring ${service} on ${standby.name} from ${ready.checkpoint}`);
  // freshness (newest_good) verified its manifest, and no sync writes there now: its primary is gone.
  await sshExec(standby, restoreCommand(service, ready.id, ready.dir, ready.checkpoint, { verified: true }));
  steps.restored = since();
  return { service, to: standby.name, spec: ready.spec, checkpoint: ready.checkpoint, checkpointAge: ready.age, restore: steps.restored, steps };
}
