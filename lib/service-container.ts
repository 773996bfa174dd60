import type { Host, Inventory } from "./inventory";
import { UserError } from "./log";
import { sshExec } from "./ssh";
import { checkpointsDir, rsyncDefaults, rsyncPasswordFile } from "../modules/rsync-daemon";

/*
 * A service's container on the hosts, and its checkpoints: what migration
 * (lib/migration.ts) and checkpoint sync with failover (lib/replication.ts)
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
}

/** Throws a UserError unless `name` can name a service (and its container). */
export function checkServiceName(name: string): void {
  if (!/^[a-z][a-z0-9-]{0,40}$/.test(name)) throw new UserError(`service name: expected lower-case letters, digits and dashes, found "${name}"`);
}

/** `docker run` options of a service's container, so that the target's copy is the same. */
export function runOptions(spec: ServiceSpec): string {
  return `--name ${spec.name} --label ${serviceLabel}=${spec.name} --label ${portLabel}=${spec.hostPort} -p ${spec.hostPort}:${spec.containerPort}`;
}

/** Starts a service on a host (its image must be there). */
export async function deploy(host: Host, spec: ServiceSpec): Promise<void> {
  checkServiceName(spec.name);
  await sshExec(host, `docker rm -f ${spec.name} >/dev/null 2>&1; docker run -d ${runOptions(spec)} ${spec.image} >/dev/null`);
}

/** The hosts on which the service's container is running (a healthy cluster has one). */
export async function locate(inventory: Inventory, service: string): Promise<Host[]> {
  const running = await Promise.all(
    inventory.hosts.map(async (host) => {
      const r = await sshExec(host, `docker inspect -f '{{.State.Running}}' ${service} 2>/dev/null`, { nothrow: true });
      return r.stdout.trim() === "true" ? host : undefined;
    }),
  );
  return running.filter((h): h is Host => h !== undefined);
}

/** Reads a running service's spec back from its container. */
export async function specOf(host: Host, service: string): Promise<ServiceSpec> {
  const format = `{{.Config.Image}} {{index .Config.Labels "${portLabel}"}} {{range $p, $b := .HostConfig.PortBindings}}{{$p}}{{end}}`;
  const [image, hostPort, binding] = (await sshExec(host, `docker inspect -f '${format}' ${service}`)).stdout.trim().split(" ");
  return { name: service, image, hostPort: Number(hostPort), containerPort: Number(binding.split("/")[0]) };
}

/** Shell: writes MANIFEST.sha256 (every file's sha256) in the current checkpoint folder. */
export const writeManifest = `find . -type f ! -name MANIFEST.sha256 -exec sha256sum {} + > MANIFEST.sha256`;

/**
 * Shell: checks the checkpoint folder DIR against its manifest (a partial or
 * damaged one fails), copies it into container ID's checkpoints as NAME, and
 * starts the container from it.
 */
export function restoreCommand(service: string, containerId: string, dir: string, name: string): string {
  return [
    `cd ${dir}`,
    `sha256sum -c --quiet --strict MANIFEST.sha256`,
    `mkdir -p /var/lib/docker/containers/${containerId}/checkpoints`,
    `cp -a ${dir} /var/lib/docker/containers/${containerId}/checkpoints/${name}`,
    `docker start --checkpoint ${name} ${service}`,
  ].join(" && ");
}
