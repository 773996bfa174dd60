import type { Host, Inventory } from "../config/inventory";
import { UserError } from "../log";
import { $ } from "zx";
import { sshExec, sshPipe } from "../host/ssh";
import { checkpointsDir, rsyncDefaults, rsyncPasswordFile, serviceNetwork } from "../host/paths";
import { hostScript, shellQuote } from "../host/shell";
import { type ContainerSettings, type HealthCheck, type PortMapping, type Volume, checkServiceName, portText } from "../config/service-spec";
import type { ServiceSettings } from "../config/settings";

/*
 * A service's container on the hosts, and its checkpoints: what migration
 * (./migration.ts) and checkpoint sync with failover (./replication.ts)
 * both do to it.
 */

/** Labels edge-ha puts on a service's container. */
export const serviceLabel = "edge-ha.service";
export const portLabel = "edge-ha.port";
/** The container's ServiceSpec, as JSON. */
const specLabel = "edge-ha.spec";

/** The rsync module and credentials the provisioning set up on every host (modules/rsync-daemon). */
export const rsync = { user: rsyncDefaults.user, module: rsyncDefaults.module, passwordFile: rsyncPasswordFile, dir: checkpointsDir };

/** A service's container, the same on every host that runs it (its env, command, limits: ContainerSettings). */
export interface ServiceSpec extends ContainerSettings {
  name: string;
  image: string;
  /** The service's port inside its container: the first TCP port, which clients, the endpoint and drills use. */
  containerPort: number;
  /** Where the hosts publish it. */
  hostPort: number;
  /** Its other published ports (tcp or udp). */
  morePorts?: PortMapping[];
  /** Named volumes mounted into the container; they move with it. */
  volumes?: Volume[];
  /** How its copies are told to serve (the failover agents and the endpoint use it; docker does not run it). */
  health?: HealthCheck;
}

/** A service's container as the stack's settings declare it, with its image as the hosts name it. */
export function serviceSpec(s: ServiceSettings, image: string): ServiceSpec {
  return {
    name: s.name, image, containerPort: s.containerPort, hostPort: s.port,
    ...(s.morePorts.length ? { morePorts: s.morePorts } : {}),
    ...(s.volumes.length ? { volumes: s.volumes } : {}),
    ...Object.fromEntries((["tmpfs", "env", "command", "user", "memory", "cpus", "health"] as const).filter((k) => s[k] !== undefined).map((k) => [k, s[k]])),
  };
}

/** The service's address on edge-ha's service network (lib/host/paths serviceNetwork): 172.31.<port / 256>.<port % 256>. */
export function serviceAddress(hostPort: number): string {
  return `172.31.${hostPort >> 8}.${hostPort & 255}`;
}

/** Every port the service publishes, its own first. */
export function allPorts(spec: ServiceSpec): PortMapping[] {
  return [{ host: spec.hostPort, container: spec.containerPort, protocol: "tcp" }, ...(spec.morePorts ?? [])];
}

/**
 * `docker create` arguments of a service's container (options, image, then
 * its command), one per element, so that every host's copy is the same.
 * The spec itself is a label: what a migration or failover reads back.
 */
export function runArgs(spec: ServiceSpec): string[] {
  const args = ["--name", spec.name, "--label", `${serviceLabel}=${spec.name}`, "--label", `${portLabel}=${spec.hostPort}`, "--label", `${specLabel}=${JSON.stringify(spec)}`];
  args.push("--network", serviceNetwork.name, "--ip", serviceAddress(spec.hostPort));
  for (const p of allPorts(spec)) args.push("-p", portText(p));
  for (const v of spec.volumes ?? []) args.push("-v", `${v.name}:${v.target}`);
  for (const t of spec.tmpfs ?? []) args.push("--tmpfs", t);
  for (const [k, v] of Object.entries(spec.env ?? {}).sort(([a], [b]) => a.localeCompare(b))) args.push("-e", `${k}=${v}`);
  if (spec.user) args.push("--user", spec.user);
  if (spec.memory) args.push("--memory", spec.memory);
  if (spec.cpus) args.push("--cpus", String(spec.cpus));
  return [...args, spec.image, ...(spec.command ?? [])];
}

/** runArgs as the hosts keep them (modules/ha-service, the .run file and each checkpoint's ARGS): one argument per line. */
export const runArgsText = (spec: ServiceSpec) => runArgs(spec).join("\n");

/** Host script: replaces any container of the service by a new one, created (prints its id) or, with `start`, running (prints nothing). */
export function createCommand(spec: ServiceSpec, start = false): string {
  const args = runArgs(spec).map(shellQuote).join(" ");
  return hostScript(start ? `service_replace run ${spec.name} ${args} >/dev/null` : `service_replace create ${spec.name} ${args}`);
}

/** Starts a service on a host (its image must be there). */
export async function deploy(host: Host, spec: ServiceSpec): Promise<void> {
  checkServiceName(spec.name);
  await sshExec(host, createCommand(spec, true));
}

/** Copies an image from one host's engine to another's (docker save | docker load) unless it has it. */
export async function copyImage(from: Host, to: Host, image: string): Promise<void> {
  if ((await sshExec(to, `docker image inspect ${image} >/dev/null 2>&1`, { nothrow: true })).exitCode === 0) return;
  await sshPipe(from, `docker save ${image}`, to, "docker load");
}

/** Where a service's container runs, and which hosts could not be asked (SSH failed: down, unreachable, too slow). */
export interface Whereabouts {
  running: Host[];
  unanswered: Host[];
}

/** ssh's own exit status when it could not connect or lost the connection (a command's own is never 255 here). */
const sshFailed = 255;

/**
 * Asks every host whether the service's container runs there. A host that
 * does not answer is said as such: "runs nowhere" is only true when every
 * host answered.
 */
export async function whereRuns(inventory: Inventory, service: string): Promise<Whereabouts> {
  const answers = await Promise.all(
    inventory.hosts.map(async (host) => {
      const r = await sshExec(host, `docker container inspect -f '{{.State.Running}}' ${service} 2>/dev/null`, { nothrow: true });
      return { host, running: r.stdout.trim() === "true", answered: r.exitCode !== sshFailed };
    }),
  );
  return { running: answers.filter((a) => a.running).map((a) => a.host), unanswered: answers.filter((a) => !a.answered).map((a) => a.host) };
}

/** The hosts on which the service's container is running (a healthy cluster has one); hosts that do not answer are not among them. */
export async function locate(inventory: Inventory, service: string): Promise<Host[]> {
  return (await whereRuns(inventory, service)).running;
}

/** "; NAME did not answer over SSH (it may run there)" (or nothing): what a "runs nowhere" or "runs on X" does not know. */
export function unansweredClause(where: Whereabouts): string {
  const names = where.unanswered.map((h) => h.name);
  return names.length === 0 ? "" : `; ${names.join(", ")} did not answer over SSH (it may run there)`;
}

/** The error when a service was found on no host: in which inventory, and which hosts could not be asked. */
export function runningNowhere(inventory: Inventory, service: string, where: Whereabouts): UserError {
  return new UserError(`service "${service}" is not running on any host of ${inventory.file}${unansweredClause(where)}`);
}

/** The one host the service runs on; a UserError when it runs on none or on several, naming hosts that did not answer. */
export async function soleHost(inventory: Inventory, service: string): Promise<Host> {
  const where = await whereRuns(inventory, service);
  const hosts = where.running;
  if (hosts.length !== 1) {
    throw new UserError(`${service} must run on exactly one host of ${inventory.file}; it runs on ${hosts.map((h) => h.name).join(", ") || "none"}${unansweredClause(where)}`);
  }
  return hosts[0];
}

/**
 * Reads a running service's spec back from its container: the label edge-ha
 * puts on it (older containers: their image, ports and mounts). Bind mounts
 * are refused: a host folder is not the service's to move (use a named volume).
 */
export async function specOf(host: Host, service: string): Promise<ServiceSpec> {
  const format = `{{index .Config.Labels "${specLabel}"}}\n{{.Config.Image}} {{index .Config.Labels "${portLabel}"}} {{range $p, $b := .HostConfig.PortBindings}}{{$p}}{{end}}{{range .Mounts}} {{.Type}}:{{.Name}}:{{.Destination}}{{end}}`;
  const [label, older] = (await sshExec(host, `docker container inspect -f '${format}' ${service}`)).stdout.trimEnd().split("\n");
  const [image, hostPort, binding, ...mounts] = older.split(" ");
  const volumes = mounts.map((m) => {
    const [type, name, target] = m.split(":");
    if (type !== "volume") throw new UserError(`${service} on ${host.name} has a ${type} mount at ${target}; edge-ha moves named volumes only (docker run -v NAME:${target})`);
    return { name, target };
  });
  if (label && label !== "<no value>") return JSON.parse(label) as ServiceSpec;
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
export function restoreCommand(service: string, containerId: string, dir: string, name: string, opts: { verified?: boolean } = {}): string {
  // verified: the caller checked the manifest moments ago (hashing 230 MB again took 0.8 s on this machine).
  return hostScript(`restore_checkpoint ${service} ${containerId} ${dir} ${name}${opts.verified ? " verified" : ""}`);
}

/**
 * Host script: the host takes (up) or drops (down) the service's virtual
 * address, if it has one (host/vip.sh); prints what changed. A migration
 * drops it on the source before the freeze; every start of the service takes
 * it (restore_checkpoint does so itself).
 */
export function vipCommand(service: string, how: "up" | "down"): string {
  return hostScript(`vip_${how} ${service}`);
}
