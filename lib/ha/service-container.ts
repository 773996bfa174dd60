import type { Host, Inventory } from "../config/inventory";
import { UserError } from "../log";
import { $ } from "zx";
import { sshArgs, sshExec } from "../host/ssh";
import { checkpointsDir, rsyncDefaults, rsyncPasswordFile, serviceNetwork } from "../host/paths";
import { hostScript } from "../host/shell";
import { type Volume, checkServiceName } from "../config/service-spec";

/*
 * A service's container on the hosts, and its checkpoints: what migration
 * (./migration.ts) and checkpoint sync with failover (./replication.ts)
 * both do to it.
 */

/** Labels edge-ha puts on a service's container. */
export const serviceLabel = "edge-ha.service";
const portLabel = "edge-ha.port";

/** The rsync module and credentials the provisioning set up on every host (modules/rsync-daemon). */
export const rsync = { user: rsyncDefaults.user, module: rsyncDefaults.module, passwordFile: rsyncPasswordFile, dir: checkpointsDir };

export interface ServiceSpec {
  name: string;
  image: string;
  /** Port the service listens on inside its container. */
  containerPort: number;
  /** Port published on the host. */
  hostPort: number;
  /** Named volumes mounted into the container; they move with it. */
  volumes?: Volume[];
}

/** The service's address on edge-ha's service network (lib/host/paths serviceNetwork): 172.31.<port / 256>.<port % 256>. */
export function serviceAddress(hostPort: number): string {
  return `172.31.${hostPort >> 8}.${hostPort & 255}`;
}

/** `docker create` arguments of a service's container (options, then image), so that every host's copy is the same. */
export function runOptions(spec: ServiceSpec): string {
  const volumes = (spec.volumes ?? []).map((v) => ` -v ${v.name}:${v.target}`).join("");
  return `--name ${spec.name} --label ${serviceLabel}=${spec.name} --label ${portLabel}=${spec.hostPort} --network ${serviceNetwork.name} --ip ${serviceAddress(spec.hostPort)} -p ${spec.hostPort}:${spec.containerPort}${volumes} ${spec.image}`;
}

/** Host script: replaces any container of the service by a new one, created (prints its id) or, with `start`, running (prints nothing). */
export function createCommand(spec: ServiceSpec, start = false): string {
  return hostScript(start ? `service_replace run ${spec.name} ${runOptions(spec)} >/dev/null` : `service_replace create ${spec.name} ${runOptions(spec)}`);
}

/** Starts a service on a host (its image must be there). */
export async function deploy(host: Host, spec: ServiceSpec): Promise<void> {
  checkServiceName(spec.name);
  await sshExec(host, createCommand(spec, true));
}

/** Copies an image from one host's engine to another's (docker save | docker load) unless it has it. */
export async function copyImage(from: Host, to: Host, image: string): Promise<void> {
  if ((await sshExec(to, `docker image inspect ${image} >/dev/null 2>&1`, { nothrow: true })).exitCode === 0) return;
  await $({ quiet: true })`ssh ${sshArgs(from)} docker save ${image}`.pipe($({ quiet: true })`ssh ${sshArgs(to)} docker load`);
}

/** The hosts on which the service's container is running (a healthy cluster has one). */
export async function locate(inventory: Inventory, service: string): Promise<Host[]> {
  const running = await Promise.all(
    inventory.hosts.map(async (host) => {
      const r = await sshExec(host, `docker container inspect -f '{{.State.Running}}' ${service} 2>/dev/null`, { nothrow: true });
      return r.stdout.trim() === "true" ? host : undefined;
    }),
  );
  return running.filter((h): h is Host => h !== undefined);
}

/** The one host the service runs on; a UserError when it runs on none or on several. */
export async function soleHost(inventory: Inventory, service: string): Promise<Host> {
  const hosts = await locate(inventory, service);
  if (hosts.length !== 1) throw new UserError(`${service} must run on exactly one host of ${inventory.file}; it runs on ${hosts.map((h) => h.name).join(", ") || "none"}`);
  return hosts[0];
}

/**
 * Reads a running service's spec back from its container. Bind mounts are
 * refused: a host folder is not the service's to move (use a named volume).
 */
export async function specOf(host: Host, service: string): Promise<ServiceSpec> {
  const format = `{{.Config.Image}} {{index .Config.Labels "${portLabel}"}} {{range $p, $b := .HostConfig.PortBindings}}{{$p}}{{end}}{{range .Mounts}} {{.Type}}:{{.Name}}:{{.Destination}}{{end}}`;
  const [image, hostPort, binding, ...mounts] = (await sshExec(host, `docker container inspect -f '${format}' ${service}`)).stdout.trim().split(" ");
  const volumes = mounts.map((m) => {
    const [type, name, target] = m.split(":");
    if (type !== "volume") throw new UserError(`${service} on ${host.name} has a ${type} mount at ${target}; edge-ha moves named volumes only (docker run -v NAME:${target})`);
    return { name, target };
  });
  return { name: service, image, hostPort: Number(hostPort), containerPort: Number(binding.split("/")[0]), volumes };
}

/** Host script printing "running", "stopped" or "absent", then "complete" when the CRIU images in DIR are whole (host/service.sh service_state). */
export function truthCommand(service: string, dir?: string): string {
  return hostScript(`service_state ${service}${dir ? ` ${dir}` : ""}`);
}

/**
 * Host script: checks the checkpoint folder DIR against its manifest, puts
 * its files into container ID and starts the service from its CRIU images
 * as NAME (host/service.sh restore_checkpoint).
 */
export function restoreCommand(service: string, containerId: string, dir: string, name: string): string {
  return hostScript(`restore_checkpoint ${service} ${containerId} ${dir} ${name}`);
}
