import { UserError } from "../log";

/*
 * What a service's settings may say, checked the same way by the stack's
 * settings (./settings) and by the actions (lib/ha): names, volumes, sync
 * intervals, ports and image sources.
 */

/** A named volume and where the container mounts it. */
export interface Volume {
  name: string;
  target: string;
}

/** A volume written as NAME:/path/in/container, or undefined when the text is not one. */
export function parseVolume(text: string): Volume | undefined {
  const m = /^([a-zA-Z0-9][a-zA-Z0-9_.-]*):(\/.*)$/.exec(text);
  return m ? { name: m[1], target: m[2] } : undefined;
}

/** Whether `name` can name a service (and its container). */
export function isServiceName(name: string): boolean {
  return /^[a-z][a-z0-9-]{0,40}$/.test(name);
}

/** Throws a UserError unless `name` can name a service (and its container). */
export function checkServiceName(name: string): void {
  if (!isServiceName(name)) throw new UserError(`service name: expected lower-case letters, digits and dashes, found "${name}"`);
}

/** Whether `seconds` is a sync interval edge-ha accepts (from 0.5 to 3600). */
export function isSyncInterval(seconds: number): boolean {
  return seconds >= 0.5 && seconds <= 3600;
}

/** A published port: HOST on every host that runs the service, to CONTAINER inside it. */
export interface PortMapping {
  host: number;
  container: number;
  protocol: "tcp" | "udp";
}

/** A port written as HOST:CONTAINER[/tcp|udp] or PORT[/tcp|udp] (the same on both sides), or undefined when the text is not one. */
export function parsePort(text: string): PortMapping | undefined {
  const m = /^(\d{1,5})(?::(\d{1,5}))?(?:\/(tcp|udp))?$/.exec(text);
  if (!m) return undefined;
  const host = Number(m[1]);
  const container = Number(m[2] ?? m[1]);
  if (host < 1 || host > 65535 || container < 1 || container > 65535) return undefined;
  return { host, container, protocol: (m[3] ?? "tcp") as PortMapping["protocol"] };
}

/** A port as Docker's -p takes it. */
export const portText = (p: PortMapping) => `${p.host}:${p.container}/${p.protocol}`;

/**
 * Whether `ref` is an image reference a registry serves (Docker's grammar,
 * simplified): [HOST[:PORT]/]PATH[:TAG][@sha256:DIGEST].
 */
export function isImageReference(ref: string): boolean {
  const component = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
  const host = "(?:[a-zA-Z0-9.-]+(?::\\d+)?/)?";
  return new RegExp(`^${host}${component}(?:/${component})*(?::[\\w][\\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$`).test(ref);
}

/** How a service's container runs, beside its image, ports and volumes (all optional). */
export interface ContainerSettings {
  /** Paths mounted as tmpfs (in memory: CRIU carries their content). */
  tmpfs?: string[];
  /** Environment variables. */
  env?: Record<string, string>;
  /** Arguments after the image (its CMD, or the arguments of its ENTRYPOINT). */
  command?: string[];
  /** USER[:GROUP] the process runs as. */
  user?: string;
  /** Memory limit, as docker run --memory takes it (e.g. 256m). */
  memory?: string;
  /** CPU limit, in CPUs (docker run --cpus). */
  cpus?: number;
}

/**
 * How the failover agents and the endpoint tell that a copy serves, beside
 * running: a TCP connect or an HTTP GET on a port it publishes (from the
 * host that runs it), or a command run inside its container (exit 0 passes).
 * A copy that passed once and then failed `retries` checks in a row is
 * unhealthy: it sends no more checkpoints, and the agents replace it from the
 * standby's last healthy one. One that never passed since it started is only
 * "starting" (a service whose check never passes keeps running and is shown).
 */
export type HealthCheck = (
  | { kind: "tcp"; /** Host port (a published tcp port of the service). */ port: number }
  | { kind: "http"; /** Host port (the main port). */ port: number; /** Path of the GET; 2xx and 3xx pass. */ path: string }
  | { kind: "command"; command: string[] }
) & { intervalMs: number; timeoutMs: number; retries: number };

/**
 * Where a service's image comes from:
 *   registry  a reference every host pulls
 *   tarball   `docker save` output on this machine, shipped and loaded
 *   build     a folder with a Dockerfile, built on this machine
 */
export type ImageSource =
  | { kind: "registry"; ref: string }
  | { kind: "tarball"; file: string }
  | { kind: "build"; context: string; dockerfile: string };

/**
 * What a checkpoint cannot carry, by the service key that asks for it: CRIU
 * dumps a container's own processes, namespaces and files, nothing of the
 * host's. Swarm mode has no such limit (it starts replicas afresh).
 */
export const notCheckpointable = {
  bind: "a host folder is not part of the container: no checkpoint carries it, and the standby's folder holds other files (use a named volume, NAME:/path, which edge-ha moves)",
  network: "the host's network namespace is not the container's: CRIU cannot dump it or recreate it on another host (leave network unset: the service gets its own address)",
  pid: "with the host's PID namespace the service's processes are the host's: CRIU dumps a container's own process tree only",
  ipc: "the host's IPC namespace (its shared memory and semaphores) is not the container's to dump",
  privileged: "a privileged container sees the host's devices and kernel settings, whose state CRIU cannot dump or recreate on another host",
  devices: "a device's state lives in the host's kernel and hardware: CRIU cannot dump it or move it",
} as const;
