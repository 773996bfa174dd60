import { ProcessOutput } from "zx";
import type { EndpointControl } from "./endpoint";
import type { Host, Inventory } from "../config/inventory";
import { findHost } from "../config/inventory";
import { progress, UserError } from "../log";
import { failover, startSync, stopSync, syncOn, type SyncSettings } from "./replication";
import { copyImage, restoreCommand, runningNowhere, whereRuns, rsync, createCommand, runArgsText, specOf, truthCommand, vipCommand, type ServiceSpec } from "./service-container";
import { movingMark } from "../host/paths";
import { hostScript, shellQuote } from "../host/shell";
import { sshExec } from "../host/ssh";
import { checkServiceName } from "../config/service-spec";

/*
 * Live migration of a service's container between hosts with CRIU, through
 * Docker's checkpoint/restore and the target's rsync daemon:
 *
 *   prepare   (service keeps running) image on the target, a created but not
 *             started container there with the same settings
 *   dump      docker checkpoint create on the source: CRIU freezes and dumps
 *             the processes; the container stops
 *   transfer  the container's file-system changes and named volumes are
 *             packed beside the CRIU images; all of it goes by rsync from
 *             the source to the target's daemon (which checks each file
 *             against a whole-file checksum), with a sha256 manifest
 *   restore   once that one rsync run completed (a partial checkpoint is
 *             never restored): the files in place, docker start --checkpoint
 *
 * After any failure, the exit codes are not trusted: the migration reads what
 * is true on both hosts (which copy runs, whether the dump's images are whole)
 * and acts on that (see `recover`): a service that runs on the target is
 * finished there; one dumped but not restored is resumed on the source from
 * that very checkpoint; only when no image of its state is left anywhere is it
 * restored from its synced checkpoint, and the message says what was lost.
 * The service ends up running exactly once, and its sync runs again.
 */

export interface MigrationResult {
  service: string;
  from: string;
  to: string;
  checkpoint: string;
  /** Seconds per phase; downtime is dump + transfer + restore + switch. */
  phases: { prepare: number; dump: number; transfer: number; restore: number; switch: number };
  downtime: number;
  bytes: number;
  /** How the checkpoint crossed the network. */
  transport: Transport;
  /** What went wrong on the way although the service runs on the target with its state (an error after the restore). */
  warning?: string;
  /** The restore's steps on the target, in ms (host/service.sh restore_checkpoint): verify, files, images, start. */
  restoreSteps?: Record<string, number>;
}

/** "restore steps: verify 12 ms, files 3 ms, …" as { verify: 12, files: 3, … }; undefined without that line. */
export function restoreStepsOf(stdout: string): Record<string, number> | undefined {
  const line = /^restore steps: (.*)$/m.exec(stdout)?.[1];
  return line ? Object.fromEntries([...line.matchAll(/(\w+) (\d+) ms/g)].map((m) => [m[1], Number(m[2])])) : undefined;
}

const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;

/**
 * How the source dumps the service. "runc" (the default): runc's checkpoint
 * straight, then the files and the transfer in the same host script, one
 * SSH round trip in the frozen window instead of two (host/checkpoint.sh
 * checkpoint_exit says why). "docker": `docker checkpoint create`, the path
 * edge-ha took first, kept so that the bench measures both in one run.
 */
export type DumpPath = "runc" | "docker";
export const dumpPaths: readonly DumpPath[] = ["runc", "docker"];
export const defaultDumpPath: DumpPath = "runc";

export interface MigrateOptions {
  /** The service's endpoint: held during the move, switched to the target after. */
  endpoint?: EndpointControl;
  /** How the source dumps it (default: defaultDumpPath). */
  dump?: DumpPath;
  /**
   * "rsyncd": the checkpoint goes to the target's rsync daemon in clear even
   * where the cluster sends over SSH (the bench's side-by-side runs). By
   * default, as the source host's mode says (edge-ha:checkpointTransport).
   */
  transport?: Transport;
  /**
   * The host the service's sync feeds once it runs on the target (a drain
   * keeps its checkpoints off the node it empties). By default its standby
   * stays, or is the source when the service moved onto its standby.
   */
  standby?: string;
}

/** How a checkpoint crosses the network: inside SSH (encrypted, both ends' keys checked) or to the rsync daemon in clear. */
export type Transport = "ssh" | "rsyncd";

/** Moves a running service to another host of the inventory; see the top of this file. */
export async function migrate(inventory: Inventory, service: string, toName: string, options: MigrateOptions = {}): Promise<MigrationResult> {
  checkServiceName(service);
  const target = findHost(inventory, toName);
  const where = await whereRuns(inventory, service);
  const sources = where.running;
  if (sources.length === 0) throw runningNowhere(inventory, service, where);
  if (sources.length > 1) throw new UserError(`service "${service}" runs on ${sources.map((h) => h.name).join(" and ")}; stop all but one first`);
  const source = sources[0];
  if (source.name === target.name) throw new UserError(`service "${service}" already runs on ${target.name}`);
  const criu = await sshExec(target, "criu check 2>&1", { nothrow: true });
  if (criu.exitCode !== 0 || !/Looks good/.test(criu.stdout)) {
    throw new UserError(`${target.name} cannot restore checkpoints: 'criu check' fails there (${criu.stdout.trim().split("\n").pop() || `exit ${criu.exitCode}`}); provision it with pulumi up`);
  }

  const spec = await specOf(source, service);
  const sourceId = (await sshExec(source, `docker container inspect -f '{{.Id}}' ${service}`)).stdout.trim();
  const checkpoint = `m${Date.now()}`;
  const staging = `${rsync.dir}/${service}/${checkpoint}`;

  // prepare: everything that can happen while the service still runs.
  let t = process.hrtime.bigint();
  // Marked first, then what failed moves left elsewhere goes (host/service.sh prune_stale_moves).
  await Promise.all([source, target].map((h) => sshExec(h, hostScript(`touch ${movingMark(service)} && prune_stale_moves`))));
  progress(`prepare: ${spec.image} and a stopped copy of ${service} on ${target.name}`);
  let targetId: string;
  let sync: SyncSettings | undefined;
  let transport: Transport = "rsyncd";
  try {
    await copyImage(source, target, spec.image);
    targetId = (await sshExec(target, createCommand(spec))).stdout.trim();
    // What the packing and the unpacking read of the two containers, asked now rather than while the
    // service is frozen; and the source's SSH connection to the target opened now, not in the transfer.
    const [mode] = await Promise.all([
      sshExec(source, hostScript(`${transportEnv(options)}files_of ${sourceId} >/dev/null && transfer_warm ${target.address} && transfer_mode`)),
      sshExec(target, hostScript(`files_of ${targetId} >/dev/null`)),
    ]);
    transport = mode.stdout.trim() === "ssh" ? "ssh" : "rsyncd";
    // A sync loop's own checkpoints must not run into this one; it moves with the service.
    sync = await syncOn(source, service);
    if (sync) await stopSync(source, service);
  } catch (err) {
    // Nothing was frozen yet: the service runs on the source as before.
    await sshExec(target, `docker rm -f ${service} >/dev/null 2>&1`, { nothrow: true, connectTimeout: 2 });
    await unmark(service, [source, target]);
    throw err;
  }
  const prepare = seconds(t);

  const phases = { prepare, dump: 0, transfer: 0, restore: 0, switch: 0 };
  const dumpDir = `/var/lib/docker/containers/${sourceId}/checkpoints/${checkpoint}`;
  const move: Move = { inventory, service, spec, source, target, checkpoint, dumpDir, staging, sync, options };
  let bytes = 0;
  try {
    t = process.hrtime.bigint();
    await options.endpoint?.hold();
    if ((options.dump ?? defaultDumpPath) === "runc") {
      progress(`dump and transfer: checkpoint ${checkpoint} of ${service} on ${source.name} -> ${target.name} (${transportName[transport]})`);
      const out = await sshExec(source, dumpAndSendScript(move, sourceId));
      const [dumped, size, sent] = out.stdout.trim().split("\n");
      bytes = Number(size);
      phases.transfer = Number(BigInt(sent) - BigInt(dumped)) / 1e9;
      phases.dump = seconds(t) - phases.transfer;
    } else {
      progress(`dump: checkpoint ${checkpoint} of ${service} on ${source.name}`);
      await sshExec(source, hostScript(`vip_down ${service} >/dev/null && checkpoint_locked ${service} docker checkpoint create ${service} ${checkpoint} >/dev/null`));
      phases.dump = seconds(t);
      t = process.hrtime.bigint();
      progress(`transfer: ${source.name} -> ${target.name} (${transportName[transport]})`);
      bytes = Number((await sshExec(source, hostScript(packCommands(move, sourceId).join(" && ")))).stdout.trim().split("\n")[0]);
      phases.transfer = seconds(t);
    }

    t = process.hrtime.bigint();
    progress(`restore: ${service} on ${target.name}`);
    // Not hashed again: the transfer is one rsync run that completed, and rsync checks every file it
    // writes against a whole-file checksum made as it is sent (656 ms saved for 230 MB, bench state).
    const restoreSteps = restoreStepsOf((await sshExec(target, restoreCommand(service, targetId, staging, checkpoint, { verified: true }))).stdout);
    phases.restore = seconds(t);
    t = process.hrtime.bigint();
    await options.endpoint?.switchTo({ host: target.address, port: spec.hostPort });
    phases.switch = seconds(t);
    await finish(move);
    await unmark(service, [source, target]);
    return { service, from: source.name, to: target.name, checkpoint, phases, downtime: downtimeOf(phases), bytes, transport, restoreSteps };
  } catch (err) {
    const why = err instanceof ProcessOutput ? err.stderr.trim().split("\n").slice(-2).join(" | ") : err instanceof Error ? err.message : String(err);
    const outcome = await recover(move);
    await unmark(service, [source, target]);
    if (outcome.finished) {
      return { service, from: source.name, to: target.name, checkpoint, phases, downtime: downtimeOf(phases), bytes, transport, warning: `${why} (${outcome.what})` };
    }
    throw new UserError(`migration of ${service} from ${source.name} to ${target.name} failed: ${why}\n${outcome.what}`);
  }
}

/**
 * The host commands that pack a dump in its folder and send it to the
 * target's rsync daemon: the container's files, what a failover restores
 * from (TAKEN, SPEC.json, ARGS, as in a synced checkpoint: should the source
 * die after the transfer, the agents restore the service from this, its
 * newest state; host/service.sh checkpoints_of), the manifest; prints its size.
 */
function packCommands(m: Packed, sourceId: string): string[] {
  // TCP_NODELAY: see host/edge-ha-sync.
  // Over SSH or to the target's rsync daemon, as the source's mode says (host/service.sh send_checkpoint).
  const send = `${transportEnv(m.options ?? {})}send_checkpoint 5 ./ ${m.target.address} ${m.service}/${m.checkpoint}/ -a --sockopts=TCP_NODELAY --mkpath --timeout=10`;
  const settings = [
    `{ cp /run/edge-ha-criu-${m.service}.before TAKEN 2>/dev/null || date +%s.%N >TAKEN; }`,
    `printf '%s' ${shellQuote(JSON.stringify(m.spec))} >SPEC.json`,
    `printf '%s' ${shellQuote(runArgsText(m.spec))} >ARGS`,
  ];
  return [`cd ${m.dumpDir}`, `capture_files ${sourceId}`, ...settings, `write_manifest`, `du -sb . | cut -f1`, send];
}

/**
 * The runc path's frozen-window script on the source, in one round trip: the
 * vip dropped (no client reaches a copy on its way out; the target takes it
 * after its start), the dump, the source's clock, the pack and transfer, the
 * clock again (the two split the round trip into its phases). Exported for
 * the test that kills the source right after it.
 */
export function dumpAndSendScript(m: Packed, sourceId: string): string {
  return hostScript([`vip_down ${m.service} >/dev/null`, `checkpoint_exit ${m.service} ${sourceId} ${m.dumpDir}`, `date +%s%N`, ...packCommands(m, sourceId), `date +%s%N`].join(" && "));
}

const transportName: Record<Transport, string> = { ssh: "over SSH", rsyncd: "to its rsync daemon, in clear" };

/** The shell line that makes the host library send to the rsync daemon when the options ask for it. */
function transportEnv(options: MigrateOptions): string {
  return options.transport === "rsyncd" ? "export CHECKPOINT_TRANSPORT=rsyncd && " : "";
}

/** The service's time out of reach: everything but the preparation, which runs while it serves. */
function downtimeOf(phases: MigrationResult["phases"]): number {
  return phases.dump + phases.transfer + phases.restore + phases.switch;
}

/** What the pack and send of a dump need of its move. */
type Packed = Pick<Move, "service" | "spec" | "target" | "checkpoint" | "dumpDir"> & { options?: MigrateOptions };

/** What a migration works on, for its finishing and its recovery. */
interface Move {
  inventory: Inventory;
  service: string;
  spec: ServiceSpec;
  source: Host;
  target: Host;
  checkpoint: string;
  /** The dump's folder on the source. */
  dumpDir: string;
  /** Where the target's rsync daemon received it. */
  staging: string;
  sync: SyncSettings | undefined;
  options: MigrateOptions;
}

/** The service runs on the target (and clients go there): the source's copy, volumes (moved) and the checkpoints go, the sync follows it. */
async function finish(m: Move): Promise<void> {
  const volumes = (m.spec.volumes ?? []).map((v) => v.name);
  await sshExec(m.source, `docker rm -f ${m.service} >/dev/null${volumes.length ? ` && docker volume rm ${volumes.join(" ")} >/dev/null` : ""}`, { nothrow: true });
  await sshExec(m.target, `rm -rf ${m.staging}; docker checkpoint rm ${m.service} ${m.checkpoint} 2>/dev/null || true`, { nothrow: true });
  if (m.sync) {
    const chosen = m.options.standby ? findHost(m.inventory, m.options.standby) : undefined;
    const standby = chosen ?? (m.sync.standby === m.target.name ? m.source : findHost(m.inventory, m.sync.standby));
    // A standby of the caller's choosing may not hold the image yet: a failover there needs it.
    if (chosen) await copyImage(m.target, chosen, m.spec.image);
    await startSync(m.target, standby, m.spec, m.sync);
  }
}

/** Lifts the migration's mark on both ends (on a host that does not answer, it expires by itself). */
async function unmark(service: string, hosts: Host[]): Promise<void> {
  await Promise.all(hosts.map((h) => sshExec(h, `rm -f ${movingMark(service)}`, { nothrow: true, connectTimeout: 2 })));
}

/** What the hosts say after a failure: which copy runs (undefined: the host did not answer) and whether the dump is whole on the source. */
async function truthAfter(m: Move): Promise<{ source?: string; dumpComplete: boolean; target?: string }> {
  const [source, target] = await Promise.all([
    sshExec(m.source, truthCommand(m.service, m.dumpDir), { nothrow: true, connectTimeout: 2 }),
    sshExec(m.target, truthCommand(m.service), { nothrow: true, connectTimeout: 2 }),
  ]);
  const lines = (r: ProcessOutput) => (r.exitCode === 0 ? r.stdout.trim().split("\n") : []);
  return { source: lines(source)[0], dumpComplete: lines(source)[1] === "complete", target: lines(target)[0] };
}

/**
 * After a failure: reads what is true on both hosts and acts on it, so that
 * the service runs exactly once, with as much of its state as exists anywhere.
 * `finished` when it runs on the target after all; `what` says where it runs
 * and with which state, in words a person can act on.
 */
async function recover(m: Move): Promise<{ finished: boolean; what: string }> {
  const truth = await truthAfter(m);
  const { service, source, target } = m;
  const clearTarget = async () => {
    const volumes = (m.spec.volumes ?? []).map((v) => v.name);
    const clear = [`docker rm -f ${service}`, ...(volumes.length ? [`docker volume rm ${volumes.join(" ")}`] : []), `rm -rf ${m.staging}`];
    const r = await sshExec(target, clear.map((c) => `${c} >/dev/null 2>&1`).join("; "), { nothrow: true, connectTimeout: 2 });
    return r.exitCode === 0 ? "" : ` ${target.name} did not answer, so its stopped copy is still there (it never starts by itself; 'edge-ha service status ${service}' shows it).`;
  };
  const syncAgain = async (on: Host) => {
    if (!m.sync) return "";
    const standby = m.sync.standby === on.name ? (on === source ? target : source) : findHost(m.inventory, m.sync.standby);
    const r = await startSync(on, standby, m.spec, m.sync).then(() => "", (e: Error) => ` Its sync to ${standby.name} could not be started again: ${e.message}`);
    return r;
  };

  // Wherever it runs in the end, it takes its virtual address there (the source dropped it before the dump).
  const vipUp = (on: Host) => sshExec(on, vipCommand(service, "up"), { nothrow: true, connectTimeout: 2 });
  if (truth.target === "running" && truth.source !== "running") {
    // Restored after all (the error came later, or the restore's own report was wrong).
    await vipUp(target);
    await m.options.endpoint?.switchTo({ host: target.address, port: m.spec.hostPort });
    await finish(m);
    return { finished: true, what: `${service} runs on ${target.name}, restored from ${m.checkpoint} with its state` };
  }
  if (truth.source === "running") {
    const cleared = await clearTarget();
    await vipUp(source);
    await m.options.endpoint?.switchTo({ host: source.address, port: m.spec.hostPort });
    return { finished: false, what: `${service} still runs on ${source.name}, untouched: it was not frozen, or CRIU let it go on.${cleared}${await syncAgain(source)}` };
  }
  if (truth.source === undefined) {
    return { finished: false, what: `${source.name} does not answer: where ${service} runs is unknown; the failover agents (or 'edge-ha service failover') restore it from its synced checkpoint once that host is gone.` };
  }
  const cleared = await clearTarget();
  if (truth.dumpComplete) {
    progress(`recovering: resuming ${service} on ${source.name} from ${m.checkpoint}`);
    const resumed = await sshExec(source, hostScript(`vip_ready ${service} || true; checkpoint_locked ${service} docker start --checkpoint ${m.checkpoint} ${service} >/dev/null`), { nothrow: true });
    const now = (await sshExec(source, truthCommand(service), { nothrow: true })).stdout.trim();
    if (now === "running") {
      await vipUp(source);
      await sshExec(source, `docker checkpoint rm ${service} ${m.checkpoint}`, { nothrow: true });
      await m.options.endpoint?.switchTo({ host: source.address, port: m.spec.hostPort });
      return { finished: false, what: `${service} was dumped, then resumed on ${source.name} from that checkpoint (${m.checkpoint}): it runs there with the state it had at the dump.${cleared}${await syncAgain(source)}` };
    }
    progress(`recovering: resuming from ${m.checkpoint} failed: ${resumed.stderr.trim()}`);
  }
  // No image of the state at the dump could be restored: the next best is its synced checkpoint.
  if (m.sync) {
    const standby = findHost(m.inventory, m.sync.standby);
    const restored = await failover(m.inventory, service, standby.name).then(
      (r) => ({ ok: true as const, r }),
      (e: Error) => ({ ok: false as const, e }),
    );
    if (restored.ok) {
      await m.options.endpoint?.switchTo({ host: standby.address, port: m.spec.hostPort });
      const back = standby.name === source.name ? target : source;
      const synced = await startSync(standby, back, m.spec, m.sync).then(() => "", (e: Error) => ` Its sync could not be started: ${e.message}`);
      return { finished: false, what: `${service} could not be resumed from its dump; it was restored on ${standby.name} from its synced checkpoint ${restored.r.checkpoint}, ${restored.r.checkpointAge.toFixed(1)} s old: what it did since then is lost.${cleared}${synced}` };
    }
  }
  await sshExec(source, `docker start ${service} >/dev/null`, { nothrow: true });
  const now = (await sshExec(source, truthCommand(service), { nothrow: true })).stdout.trim();
  if (now === "running") await vipUp(source);
  await m.options.endpoint?.switchTo({ host: source.address, port: m.spec.hostPort });
  return {
    finished: false,
    what: now === "running"
      ? `${service} could not be restored from any checkpoint; it was restarted on ${source.name} WITHOUT its state.${cleared}${await syncAgain(source)}`
      : `${service} runs NOWHERE: it could not be restored or restarted on ${source.name}; start it by hand ('docker start ${service}' there) or fail it over.${cleared}`,
  };
}
