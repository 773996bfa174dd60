import { ProcessOutput } from "zx";
import type { EndpointControl } from "./endpoint";
import type { Host, Inventory } from "./inventory";
import { findHost } from "./inventory";
import { progress, UserError } from "./log";
import { startSync, stopSync, syncOn } from "./replication";
import { captureFiles, checkServiceName, copyImage, locate, restoreCommand, rsync, createCommand, specOf, writeManifest } from "./service-container";
import { sshExec } from "./ssh";

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
 *             the source to the target's daemon, with a sha256 manifest
 *   restore   the target checks the manifest (never restores a partial
 *             checkpoint), then docker start --checkpoint
 *
 * Any failure after the dump resumes the service on the source from the same
 * checkpoint, so it ends up running exactly once, with its state.
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
}

const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;

export interface MigrateOptions {
  /** The service's endpoint: held during the move, switched to the target after. */
  endpoint?: EndpointControl;
}

/** Moves a running service to another host of the inventory; see the top of this file. */
export async function migrate(inventory: Inventory, service: string, toName: string, options: MigrateOptions = {}): Promise<MigrationResult> {
  checkServiceName(service);
  const target = findHost(inventory, toName);
  const sources = await locate(inventory, service);
  if (sources.length === 0) throw new UserError(`service "${service}" is not running on any host of ${inventory.file}`);
  if (sources.length > 1) throw new UserError(`service "${service}" runs on ${sources.map((h) => h.name).join(" and ")}; stop all but one first`);
  const source = sources[0];
  if (source.name === target.name) throw new UserError(`service "${service}" already runs on ${target.name}`);
  const criu = await sshExec(target, "criu check 2>&1", { nothrow: true });
  if (criu.exitCode !== 0 || !/Looks good/.test(criu.stdout)) {
    throw new UserError(`${target.name} cannot restore checkpoints: 'criu check' fails there (${criu.stdout.trim().split("\n").pop() || `exit ${criu.exitCode}`}); provision it with pulumi up`);
  }

  const spec = await specOf(source, service);
  const volumes = (spec.volumes ?? []).map((v) => v.name);
  const sourceId = (await sshExec(source, `docker container inspect -f '{{.Id}}' ${service}`)).stdout.trim();
  const checkpoint = `m${Date.now()}`;
  const staging = `${rsync.dir}/${service}/${checkpoint}`;

  // prepare: everything that can happen while the service still runs.
  let t = process.hrtime.bigint();
  progress(`prepare: ${spec.image} and a stopped copy of ${service} on ${target.name}`);
  await copyImage(source, target, spec.image);
  const targetId = (await sshExec(target, createCommand(spec))).stdout.trim();
  // A sync loop's own checkpoints must not run into this one; it moves with the service.
  const sync = await syncOn(source, service);
  if (sync) await stopSync(source, service);
  const prepare = seconds(t);

  const phases = { prepare, dump: 0, transfer: 0, restore: 0, switch: 0 };
  let dumped = false;
  try {
    t = process.hrtime.bigint();
    progress(`dump: checkpoint ${checkpoint} of ${service} on ${source.name}`);
    await options.endpoint?.hold();
    await sshExec(source, `docker checkpoint create ${service} ${checkpoint} >/dev/null`);
    dumped = true;
    phases.dump = seconds(t);

    t = process.hrtime.bigint();
    progress(`transfer: ${source.name} -> rsync://${target.address}/${rsync.module}`);
    const transferred = await sshExec(
      source,
      [
        captureFiles,
        `cd /var/lib/docker/containers/${sourceId}/checkpoints/${checkpoint}`,
        `capture_files ${sourceId}`,
        writeManifest,
        `du -sb . | cut -f1`,
        `rsync -a --mkpath --timeout=10 --contimeout=5 --password-file=${rsync.passwordFile} ./ rsync://${rsync.user}@${target.address}/${rsync.module}/${service}/${checkpoint}/`,
      ].join(" && "),
    );
    const bytes = Number(transferred.stdout.trim().split("\n")[0]);
    phases.transfer = seconds(t);

    t = process.hrtime.bigint();
    progress(`restore: ${service} on ${target.name}`);
    await sshExec(target, restoreCommand(service, targetId, staging, checkpoint));
    phases.restore = seconds(t);
    t = process.hrtime.bigint();
    await options.endpoint?.switchTo({ host: target.address, port: spec.hostPort });
    phases.switch = seconds(t);

    // The service runs on the target: the source's stopped copy, its volumes (moved) and the checkpoints go.
    await sshExec(source, `docker rm -f ${service} >/dev/null${volumes.length ? ` && docker volume rm ${volumes.join(" ")} >/dev/null` : ""}`, { nothrow: true });
    await sshExec(target, `rm -rf ${rsync.dir}/${service}/${checkpoint}; docker checkpoint rm ${service} ${checkpoint} 2>/dev/null || true`, { nothrow: true });
    if (sync) {
      const standby = sync.standby === target.name ? source : findHost(inventory, sync.standby);
      await startSync(target, standby, spec, sync.intervalSeconds);
    }
    return { service, from: source.name, to: target.name, checkpoint, phases, downtime: phases.dump + phases.transfer + phases.restore + phases.switch, bytes };
  } catch (err) {
    await rollBack(source, target, service, checkpoint, dumped, volumes);
    await options.endpoint?.switchTo({ host: source.address, port: spec.hostPort });
    if (sync) await startSync(source, findHost(inventory, sync.standby), spec, sync.intervalSeconds);
    const why = err instanceof ProcessOutput ? err.stderr.trim().split("\n").slice(-2).join(" | ") : err instanceof Error ? err.message : String(err);
    throw new UserError(`migration of ${service} from ${source.name} to ${target.name} failed, ${dumped ? "resumed on" : "still running on"} ${source.name}: ${why}`);
  }
}

/** Puts the service back on the source, from the checkpoint when it was dumped, and clears the target. */
async function rollBack(source: Host, target: Host, service: string, checkpoint: string, dumped: boolean, volumes: string[]): Promise<void> {
  // The target may be unreachable (that may be why we are here); its stopped copy never runs by itself.
  const clear = [`docker rm -f ${service}`, ...(volumes.length ? [`docker volume rm ${volumes.join(" ")}`] : []), `rm -rf ${rsync.dir}/${service}/${checkpoint}`];
  await sshExec(target, clear.map((c) => `${c} >/dev/null 2>&1`).join("; "), { nothrow: true, connectTimeout: 2 });
  if (!dumped) return;
  progress(`rolling back: resuming ${service} on ${source.name} from ${checkpoint}`);
  const resumed = await sshExec(source, `docker start --checkpoint ${checkpoint} ${service} >/dev/null && docker checkpoint rm ${service} ${checkpoint}`, { nothrow: true });
  if (resumed.exitCode !== 0) {
    // Without its checkpoint the service at least runs again, from its start.
    await sshExec(source, `docker start ${service} >/dev/null`, { nothrow: true });
    throw new UserError(`${service} could not be resumed from ${checkpoint} on ${source.name} and was restarted without its state: ${resumed.stderr.trim()}`);
  }
}
