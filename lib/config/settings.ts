import { inSubnet, ipv4Number, serviceHosts, votes, type Inventory } from "./inventory";
import { UserError } from "../log";
import { defaultCriuVersion, knownSourceSha256, type CriuSource, type DockerSource } from "./versions";
import { type ContainerSettings, type HealthCheck, type ImageSource, type PortMapping, type Volume, isImageReference, isServiceName, isSyncInterval, notCheckpointable, parsePort, parseVolume } from "./service-spec";

/*
 * The stack's settings: the `edge-ha:*` keys of stacks/Pulumi.<stack>.yaml,
 * declared (with types and defaults) in Pulumi.yaml. Read from a plain
 * key/value map so that tests need no engine.
 */

export interface ClusterSettings {
  inventory: string;
  dockerSource: DockerSource;
  dockerLogMaxSize: string;
  dockerLogMaxFiles: number;
  criuSource: CriuSource;
  criuVersion: string;
  /**
   * Where the operator's machine keeps the CRIU edge-ha builds (modules/criu
   * `cache`; a leading ~ is the home of whoever runs pulumi), or "none".
   */
  criuCache: string;
  criuTcpEstablished: boolean;
  criuFileLocks: boolean;
  criuSkipInFlight: boolean;
  rsyncPort: number;
  /**
   * How checkpoints cross the network: "ssh" (default; modules/checkpoint-transport),
   * encrypted, each end checking the other's key; "rsyncd": to the rsync
   * daemons, in clear on the LAN (anyone who can read its traffic reads the
   * services' memory), its password the only check.
   */
  checkpointTransport: "ssh" | "rsyncd";
  /** TCP port of edge-ha's checkpoints sshd on every host (checkpointTransport ssh). */
  transferPort: number;
  /** Highly available services the stack runs (modules/ha-service, modules/swarm-service). */
  services: ServiceSettings[];
  /** The failover agents (agent/, modules/failover-agent): how fast a node is declared down. */
  failover: FailoverSettings;
  /** Private registries the hosts pull images from, trusted by their CA (modules/registry-trust). */
  registries: RegistrySettings[];
}

/**
 * A registry as images name it (HOST:PORT); the CA certificate file its TLS
 * certificate is signed by, when not a public CA (relative to the project
 * folder); and the login the hosts pull with, when it asks for one (set the
 * password with `pulumi config set --secret --path
 * 'edge-ha:registries[0].password'`; edge-ha keeps it secret either way).
 */
export interface RegistrySettings {
  address: string;
  ca?: string;
  username?: string;
  password?: string;
}

/**
 * Automatic failover: every node heartbeats to the controllers (the managers)
 * every heartbeatMs; a node is down once a majority of them has not heard it
 * for downAfterMs; a node whose lease (leaseMs from its newest heartbeat a
 * majority acknowledged) lapses kills its copies. downAfterMs - leaseMs is the
 * time a cut-off node has to do so before its services are restored elsewhere.
 */
export interface FailoverSettings {
  enabled: boolean;
  heartbeatMs: number;
  downAfterMs: number;
  leaseMs: number;
  /** UDP (heartbeats) and TCP (orders) port of the agents. */
  port: number;
  /**
   * What a node does when its lease lapses (no majority of the voters hears
   * it): "stop" (default) kills its copies of the agents' services, so two
   * copies never run; "freeze" keeps what runs and starts nothing, which
   * keeps a site serving when two of three voters die, at the risk of two
   * copies if it was only cut off (see README, "Automatic failover").
   */
  noQuorum: "stop" | "freeze";
  /** The signs a node gives before it fails, read by its agent (agent/signals.go). */
  earlyWarnings: EarlyWarnings;
}

/**
 * Early warnings (agent/signals.go): each agent reads its node's health
 * signals and says each change as an event; with policy "drain", the first
 * critical one makes the node drain itself, and the controllers hand its
 * services over to other nodes with their state. "off": none are read.
 */
export interface EarlyWarnings {
  policy: "off" | "report" | "drain";
  /** A Raspberry Pi's firmware flags (default its sysfs file; absent elsewhere: no signal). */
  throttledFile: string;
  /** The kernel's memory pressure (default /proc/pressure/memory). */
  pressureFile: string;
  /** Free space under which the checkpoints' disk is a warning (half of it: critical); default 10 %. */
  diskMinFreePercent: number;
}

/**
 * A highly available service of the stack. "criu": one copy on `primary`,
 * checkpointed every `syncInterval` seconds to `standby` (live migration and
 * failover with CRIU); "swarm": a swarm service of `replicas` copies.
 */
export interface ServiceSettings extends ContainerSettings {
  name: string;
  /** Where its image comes from (a registry, a tarball or a Dockerfile). */
  image: ImageSource;
  /** Its main port, published on the hosts (clients, endpoints and drills use it). */
  port: number;
  /** The main port inside the container. */
  containerPort: number;
  /** Its other published ports. */
  morePorts: PortMapping[];
  mode: "criu" | "swarm";
  primary?: string;
  standby?: string;
  syncInterval: number;
  /**
   * criu: when set (seconds), its copy is paused while its standby's newest
   * checkpoint is older than this (host/edge-ha-sync, the lag guard): a crash
   * then loses at most maxLag of acknowledged writes, even when the standby
   * was cut off, stalled or starved first, at the price of a pause until a
   * checkpoint reaches it again (or the controllers pick another standby;
   * with none left, as in a two-node site whose other node is down, until it
   * returns). Unset: the copy serves on, and the standby's newest may age.
   */
  maxLag?: number;
  replicas: number;
  /**
   * A new version (a changed image or setting) must pass its health check
   * (or, with none, accept connections on its port) within this many seconds
   * of its start, or it is rolled back to the old one (default 30).
   */
  readySeconds: number;
  /** Named volumes, as NAME:/path/in/container. */
  volumes: Volume[];
  /** Host folders (swarm mode only), as /host/path:/path/in/container. */
  binds: { source: string; target: string }[];
  /** criu: "auto" (the agents restore it on its standby when its node dies) or "manual" (edge-ha service failover). */
  failover: "auto" | "manual";
  /** How its copies are told to serve (lib/config/service-spec HealthCheck); none: running is serving. */
  health?: HealthCheck;
  /**
   * criu: its virtual address, an IPv4 address of the inventory's
   * network.subnet that no host has: held by the node that runs the service
   * and moved with it (host/vip.sh), so clients reach VIP:port with nothing
   * of edge-ha in their path.
   */
  vip?: string;
}

export const settingDefaults: Omit<ClusterSettings, "inventory"> = {
  dockerSource: "debian",
  dockerLogMaxSize: "10m",
  dockerLogMaxFiles: 3,
  criuSource: "auto",
  criuVersion: defaultCriuVersion,
  criuCache: "~/.cache/edge-ha/criu",
  criuTcpEstablished: true,
  criuFileLocks: true,
  criuSkipInFlight: true,
  rsyncPort: 873,
  checkpointTransport: "ssh",
  transferPort: 8722,
  services: [],
  registries: [],
  failover: {
    enabled: true,
    heartbeatMs: 200,
    downAfterMs: 800,
    leaseMs: 500,
    port: 7072,
    noQuorum: "stop",
    earlyWarnings: { policy: "report", throttledFile: "/sys/devices/platform/soc/soc:firmware/get_throttled", pressureFile: "/proc/pressure/memory", diskMinFreePercent: 10 },
  },
};

/** Keys that exist but are not in ClusterSettings (secrets are read separately). */
const secretKeys = ["rsyncPassword"];

/** A stack config that is not right; names the file and every bad key. */
export class SettingsError extends UserError {
  constructor(file: string, problems: string[]) {
    super(`${file} has invalid settings:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "SettingsError";
  }
}

/**
 * Validates the `edge-ha:` keys (`raw` maps bare key names to the text values
 * Pulumi keeps) and fills in defaults. `file` is named in messages.
 */
export function parseSettings(raw: Record<string, string>, file: string): ClusterSettings {
  const problems: string[] = [];
  const known = ["inventory", ...Object.keys(settingDefaults), ...secretKeys];
  for (const key of Object.keys(raw)) {
    if (!known.includes(key)) problems.push(`edge-ha:${key}: unknown setting (known: ${known.join(", ")})`);
  }
  const text = (key: string, pattern: RegExp, expected: string): string | undefined => {
    const value = raw[key];
    if (value === undefined) return undefined;
    if (!pattern.test(value)) problems.push(`edge-ha:${key}: expected ${expected}, found "${value}"`);
    return value;
  };
  const oneOf = <T extends string>(key: string, values: readonly T[]) => text(key, new RegExp(`^(${values.map((v) => v.replace(/[.]/g, "\\.")).join("|")})$`), `one of ${values.join(", ")}`) as T | undefined;
  const integer = (key: string, min: number, max: number) => {
    const v = text(key, /^\d+$/, `a whole number from ${min} to ${max}`);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (n < min || n > max) problems.push(`edge-ha:${key}: expected a whole number from ${min} to ${max}, found ${n}`);
    return n;
  };
  const boolean = (key: string) => {
    const v = text(key, /^(true|false)$/, "true or false");
    return v === undefined ? undefined : v === "true";
  };

  const inventory = raw.inventory;
  if (!inventory) problems.push(`edge-ha:inventory: expected the path of the fleet's inventory file, found nothing`);
  const settings: ClusterSettings = {
    inventory: inventory ?? "",
    dockerSource: oneOf("dockerSource", ["debian", "docker"] as const) ?? settingDefaults.dockerSource,
    dockerLogMaxSize: text("dockerLogMaxSize", /^\d+[kmg]$/, "a size such as 10m") ?? settingDefaults.dockerLogMaxSize,
    dockerLogMaxFiles: integer("dockerLogMaxFiles", 1, 100) ?? settingDefaults.dockerLogMaxFiles,
    criuSource: oneOf("criuSource", ["auto", "distro", "build"] as const) ?? settingDefaults.criuSource,
    // Only versions whose source tarball checksum edge-ha carries can be built.
    criuVersion: oneOf("criuVersion", Object.keys(knownSourceSha256)) ?? settingDefaults.criuVersion,
    criuCache: text("criuCache", /^(none|~|~\/.+|\/.+)$/, "an absolute folder (or one under ~/) on the machine that runs pulumi, or none") ?? settingDefaults.criuCache,
    criuTcpEstablished: boolean("criuTcpEstablished") ?? settingDefaults.criuTcpEstablished,
    criuFileLocks: boolean("criuFileLocks") ?? settingDefaults.criuFileLocks,
    criuSkipInFlight: boolean("criuSkipInFlight") ?? settingDefaults.criuSkipInFlight,
    rsyncPort: integer("rsyncPort", 1, 65535) ?? settingDefaults.rsyncPort,
    checkpointTransport: oneOf("checkpointTransport", ["ssh", "rsyncd"] as const) ?? settingDefaults.checkpointTransport,
    transferPort: integer("transferPort", 1, 65535) ?? settingDefaults.transferPort,
    services: raw.services === undefined ? [] : parseServices(raw.services, problems),
    failover: raw.failover === undefined ? settingDefaults.failover : parseFailover(raw.failover, problems),
    registries: raw.registries === undefined ? [] : parseRegistries(raw.registries, problems),
  };
  if (settings.checkpointTransport !== "rsyncd" && settings.transferPort === settings.rsyncPort) {
    problems.push(`edge-ha:transferPort: expected a port other than edge-ha:rsyncPort (${settings.rsyncPort}): both run on every host, found ${settings.transferPort}`);
  }
  if (problems.length) throw new SettingsError(file, problems);
  return settings;
}

/**
 * The settings against the inventory: the hosts services name must be in it
 * and run services (a checkpoint restores only on the same architecture), and
 * automatic failover needs voters that outlive the loss of any one host.
 */
export function checkServicePlacement(settings: ClusterSettings, inventory: Inventory, file: string): void {
  const problems: string[] = [];
  const hosts = serviceHosts(inventory);
  settings.services.forEach((s, i) => {
    for (const key of ["primary", "standby"] as const) {
      const name = s[key];
      if (name !== undefined && !hosts.some((h) => h.name === name)) {
        const witness = inventory.hosts.some((h) => h.name === name);
        problems.push(
          `edge-ha:services[${i}].${key}: expected a host of ${inventory.file} that runs services (${hosts.map((h) => h.name).join(", ")}), found "${name}"${witness ? ", a witness (it runs only the failover agent)" : ""}`,
        );
      }
    }
    const arch = (n?: string) => inventory.hosts.find((h) => h.name === n)?.arch;
    if (s.mode === "criu" && arch(s.primary) && arch(s.standby) && arch(s.primary) !== arch(s.standby)) {
      problems.push(`edge-ha:services[${i}].standby: ${s.standby} is ${arch(s.standby)} but ${s.primary} is ${arch(s.primary)}; a checkpoint restores only on the same architecture`);
    }
    if (s.vip !== undefined) {
      const at = `edge-ha:services[${i}].vip`;
      const subnet = inventory.network?.subnet;
      const host = inventory.hosts.find((h) => h.address === s.vip);
      if (!subnet) problems.push(`${at}: a virtual address needs the hosts' LAN: add network: { subnet: ADDRESS/PREFIX } to ${inventory.file} (found no network)`);
      else if (!inSubnet(ipv4Number(s.vip)!, subnet)) problems.push(`${at}: expected a host address of ${inventory.file}'s network.subnet ${subnet.cidr}, where the hosts can take it over, found ${s.vip}`);
      if (host) problems.push(`${at}: expected an address no host has, found ${s.vip}, the address of ${host.name} in ${inventory.file}`);
    }
  });
  const automatic = settings.failover.enabled ? settings.services.map((s, i) => ({ s, i })).filter(({ s }) => s.mode === "criu" && s.failover === "auto") : [];
  const voters = inventory.hosts.filter(votes);
  if (automatic.length > 0 && voters.length < 3) {
    // With one voter, its loss stops failover (and takes the only controller with it); with two, a majority
    // is both, so losing either lapses the survivor's lease and it kills its own copies.
    const at = automatic.map(({ i }) => `edge-ha:services[${i}].failover`).join(", ");
    problems.push(
      `${at}: "auto" needs at least 3 voters (managers and witnesses) so that the loss of any one host leaves a majority; ${inventory.file} has ${voters.length} (${voters.map((h) => h.name).join(", ") || "none"}). ` +
        `Add a witness (a small always-on Linux host with roles: [witness]; with two nodes give both roles: [manager]), add a manager, or set failover: manual`,
    );
  }
  if (problems.length) throw new SettingsError(file, problems);
}

/** A structured setting as Pulumi hands it over (JSON), or undefined when it is not JSON. */
function jsonOf(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Validates edge-ha:registries (a list of { address, ca }, JSON as Pulumi keeps it); adds what is wrong to `problems`. */
function parseRegistries(text: string, problems: string[]): RegistrySettings[] {
  const list = jsonOf(text);
  const shape = "{ address: HOST:PORT, ca: FILE, username, password }";
  if (!Array.isArray(list)) return problems.push(`edge-ha:registries: expected a list of ${shape}, found ${JSON.stringify(text)}`), [];
  return list.map((item: Record<string, unknown>, i) => {
    const at = `edge-ha:registries[${i}]`;
    if (typeof item !== "object" || item === null) return problems.push(`${at}: expected ${shape}, found ${JSON.stringify(item)}`), { address: "" };
    const keys = ["address", "ca", "username", "password"];
    for (const key of Object.keys(item)) if (!keys.includes(key)) problems.push(`${at}.${key}: unknown key (known: ${keys.join(", ")})`);
    if (typeof item.address !== "string" || !/^[a-zA-Z0-9.-]+:\d{1,5}$/.test(item.address)) problems.push(`${at}.address: expected HOST:PORT as image references name the registry, found ${JSON.stringify(item.address)}`);
    if (item.ca !== undefined && (typeof item.ca !== "string" || item.ca === "")) problems.push(`${at}.ca: expected the path of the registry's CA certificate (PEM), found ${JSON.stringify(item.ca)}`);
    for (const key of ["username", "password"]) {
      if (item[key] !== undefined && (typeof item[key] !== "string" || item[key] === "")) problems.push(`${at}.${key}: expected text, found ${JSON.stringify(item[key])}`);
    }
    const missing = item.username === undefined ? "username" : "password";
    if ((item.username === undefined) !== (item.password === undefined)) problems.push(`${at}.${missing}: expected it with ${missing === "username" ? "password" : "username"} (a login is both), found none`);
    const text = (k: string) => (typeof item[k] === "string" ? { [k]: item[k] as string } : {});
    return { address: String(item.address), ...text("ca"), ...text("username"), ...text("password") };
  });
}

const failoverKeys = Object.keys(settingDefaults.failover);

const earlyWarningKeys = Object.keys(settingDefaults.failover.earlyWarnings);

/** Validates edge-ha:failover.earlyWarnings; adds what is wrong to `problems`. */
function parseEarlyWarnings(given: unknown, problems: string[]): EarlyWarnings {
  const defaults = settingDefaults.failover.earlyWarnings;
  if (given === undefined) return defaults;
  const at = "edge-ha:failover.earlyWarnings";
  if (typeof given !== "object" || given === null || Array.isArray(given)) {
    problems.push(`${at}: expected a mapping of ${earlyWarningKeys.join(", ")}, found ${JSON.stringify(given)}`);
    return defaults;
  }
  const g = given as Record<string, unknown>;
  for (const key of Object.keys(g)) if (!earlyWarningKeys.includes(key)) problems.push(`${at}.${key}: unknown key (known: ${earlyWarningKeys.join(", ")})`);
  const w = { ...defaults, ...g } as EarlyWarnings;
  if (!["off", "report", "drain"].includes(w.policy)) problems.push(`${at}.policy: expected off, report or drain, found ${JSON.stringify(w.policy)}`);
  for (const key of ["throttledFile", "pressureFile"] as const) {
    if (typeof w[key] !== "string" || !w[key].startsWith("/")) problems.push(`${at}.${key}: expected an absolute path on the nodes, found ${JSON.stringify(w[key])}`);
  }
  if (typeof w.diskMinFreePercent !== "number" || w.diskMinFreePercent < 0 || w.diskMinFreePercent > 90) problems.push(`${at}.diskMinFreePercent: expected a number from 0 to 90, found ${JSON.stringify(w.diskMinFreePercent)}`);
  return w;
}

/** Validates edge-ha:failover (JSON as Pulumi keeps it); adds what is wrong to `problems`. */
function parseFailover(text: string, problems: string[]): FailoverSettings {
  const item = jsonOf(text);
  if (typeof item !== "object" || item === null || Array.isArray(item)) {
    problems.push(`edge-ha:failover: expected a mapping of ${failoverKeys.join(", ")}, found ${JSON.stringify(text)}`);
    return settingDefaults.failover;
  }
  const given = item as Record<string, unknown>;
  for (const key of Object.keys(given)) if (!failoverKeys.includes(key)) problems.push(`edge-ha:failover.${key}: unknown key (known: ${failoverKeys.join(", ")})`);
  const f = { ...settingDefaults.failover, ...given } as FailoverSettings;
  f.earlyWarnings = parseEarlyWarnings(given.earlyWarnings, problems);
  const bad = (key: string, expected: string, why = "") =>
    problems.push(`edge-ha:failover.${key}: expected ${expected}, found ${JSON.stringify(given[key] ?? (f as unknown as Record<string, unknown>)[key])}${why && ` (${why})`}`);
  if (typeof f.enabled !== "boolean") bad("enabled", "true or false");
  if (f.noQuorum !== "stop" && f.noQuorum !== "freeze") bad("noQuorum", "stop or freeze");
  const whole = (key: keyof FailoverSettings, min: number, max: number) => {
    const v = f[key];
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) bad(key, `a whole number from ${min} to ${max}`);
  };
  whole("heartbeatMs", 20, 10_000);
  whole("downAfterMs", 60, 60_000);
  whole("leaseMs", 40, 60_000);
  whole("port", 1, 65535);
  // One lost heartbeat never decides anything; a cut-off node has time to kill its copy.
  if (f.leaseMs <= 2 * f.heartbeatMs) bad("leaseMs", `more than two heartbeats (> ${2 * f.heartbeatMs})`, "one lost heartbeat must not lapse a lease");
  if (f.downAfterMs < f.leaseMs + 200) bad("downAfterMs", `at least leaseMs + 200 (${f.leaseMs + 200})`, "a cut-off node needs that long to stop its copies before they are restored elsewhere");
  return f;
}

const serviceKeys = [
  "name", "image", "tarball", "build", "dockerfile", "port", "ports", "mode", "primary", "standby", "syncInterval", "maxLag", "replicas", "readySeconds", "volumes", "failover",
  "env", "command", "user", "tmpfs", "memory", "cpus", "healthcheck", "vip", ...Object.keys(notCheckpointable).filter((k) => k !== "bind"),
];

/** Validates edge-ha:services (a list of ServiceSettings, JSON as Pulumi keeps it); adds what is wrong to `problems`. */
function parseServices(text: string, problems: string[]): ServiceSettings[] {
  const list = jsonOf(text);
  if (!Array.isArray(list)) {
    problems.push(`edge-ha:services: expected a list of services, found ${JSON.stringify(text)}`);
    return [];
  }
  const services: ServiceSettings[] = [];
  list.forEach((item: Record<string, unknown>, i) => {
    const at = (key: string) => `edge-ha:services[${i}].${key}`;
    if (typeof item !== "object" || item === null || Array.isArray(item)) return void problems.push(`edge-ha:services[${i}]: expected a mapping of ${serviceKeys.join(", ")}`);
    for (const key of Object.keys(item)) if (!serviceKeys.includes(key)) problems.push(`${at(key)}: unknown key (known: ${serviceKeys.join(", ")})`);
    const bad = (key: string, expected: string) => problems.push(`${at(key)}: expected ${expected}, found ${JSON.stringify(item[key])}`);
    const name = String(item.name ?? "");
    if (!isServiceName(name)) bad("name", "lower-case letters, digits and dashes");
    const mode = item.mode ?? "criu";
    if (mode !== "criu" && mode !== "swarm") bad("mode", "criu or swarm");
    const image = parseImageSource(item, at, bad, problems);

    const { port, containerPort, morePorts } = parsePorts(item, at, bad, problems);
    const syncInterval = Number(item.syncInterval ?? 2);
    if (!isSyncInterval(syncInterval)) bad("syncInterval", "seconds from 0.5 to 3600");
    const maxLag = item.maxLag === undefined ? undefined : Number(item.maxLag);
    if (maxLag !== undefined) {
      // A checkpoint arrives a fifth of the interval before the one before it is an interval old
      // (host/edge-ha-sync): with less than half an interval more, a round slower than usual pauses it.
      if (mode !== "criu") problems.push(`${at("maxLag")}: a swarm-mode service has no standby to lag; leave it out (or give it mode: criu)`);
      else if (!Number.isFinite(maxLag) || maxLag < syncInterval + 0.5 || maxLag > 3600) bad("maxLag", `seconds from syncInterval + 0.5 (${syncInterval + 0.5}) to 3600`);
    }
    const readySeconds = Number(item.readySeconds ?? 30);
    if (!Number.isInteger(readySeconds) || readySeconds < 1 || readySeconds > 3600) bad("readySeconds", "a whole number of seconds from 1 to 3600");
    const replicas = Number(item.replicas ?? 2);
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > 100) bad("replicas", "a whole number from 1 to 100");
    if (mode === "criu") {
      for (const key of ["primary", "standby"]) if (typeof item[key] !== "string") bad(key, "the name of a host of the inventory");
      if (item.primary !== undefined && item.primary === item.standby) bad("standby", "another host than the primary");
    }
    const volumes: Volume[] = [];
    const binds: ServiceSettings["binds"] = [];
    for (const v of Array.isArray(item.volumes) ? item.volumes : item.volumes === undefined ? [] : [null]) {
      const bind = typeof v === "string" ? /^(\/[^:]*):(\/[^:]*)$/.exec(v) : null;
      const volume = typeof v === "string" ? parseVolume(v) : undefined;
      if (bind && mode === "criu") problems.push(`${at("volumes")}: "${v}" is a host bind mount, which a criu-mode service cannot have: ${notCheckpointable.bind}`);
      else if (bind) binds.push({ source: bind[1], target: bind[2] });
      else if (volume) volumes.push(volume);
      else bad("volumes", "a list of NAME:/path/in/container (or, in swarm mode, /host/path:/path/in/container)");
    }
    // What CRIU cannot carry is refused with its reason; swarm services take none of it either, yet.
    const asked = { network: item.network === "host", pid: item.pid === "host", ipc: item.ipc === "host", privileged: item.privileged === true, devices: Array.isArray(item.devices) && item.devices.length > 0 };
    for (const [key, yes] of Object.entries(asked) as [keyof typeof asked, boolean][]) {
      if (item[key] === undefined) continue;
      if (!yes) bad(key, key === "privileged" ? "false (or no key)" : key === "devices" ? "an empty list (or no key)" : `"host" (or no key)`);
      else if (mode === "criu") problems.push(`${at(key)}: a criu-mode service cannot have ${key}${key === "privileged" || key === "devices" ? "" : ": host"}: ${notCheckpointable[key]}`);
      else problems.push(`${at(key)}: edge-ha's swarm services do not take ${key} yet; leave it out`);
    }
    const container = parseContainerSettings(item, at, bad);
    const health = item.healthcheck === undefined ? undefined : parseHealthCheck(item.healthcheck, mode, { port, containerPort, morePorts }, at, problems);
    const failover = item.failover ?? "auto";
    if (failover !== "auto" && failover !== "manual") bad("failover", "auto or manual");
    if (services.some((s) => s.name === name)) bad("name", "a name no other service has");
    const vip = item.vip;
    if (vip !== undefined) {
      if (typeof vip !== "string" || ipv4Number(vip) === undefined) bad("vip", "an IPv4 address of the hosts' network (inventory network.subnet)");
      else if (mode !== "criu") problems.push(`${at("vip")}: a swarm-mode service has no virtual address: swarm runs its replicas on several nodes at once; reach it at any node's address (or give it mode: criu)`);
      else {
        const other = services.find((s) => s.vip === vip);
        if (other) problems.push(`${at("vip")}: ${vip} is the vip of ${other.name} already; expected an address no other service has`);
      }
    }
    const published = (s: Pick<ServiceSettings, "port" | "morePorts">) => [`${s.port}/tcp`, ...s.morePorts.map((p) => `${p.host}/${p.protocol}`)];
    for (const p of published({ port, morePorts })) {
      const other = services.find((s) => published(s).includes(p));
      if (other) problems.push(`${at(item.ports === undefined ? "port" : "ports")}: ${p} is published by ${other.name} already; expected a port no other service publishes`);
    }
    services.push({
      name, image, port, containerPort, morePorts, mode: mode as ServiceSettings["mode"],
      primary: item.primary as string | undefined, standby: item.standby as string | undefined, syncInterval, ...(maxLag !== undefined ? { maxLag } : {}), replicas, readySeconds, volumes, binds,
      failover: failover as ServiceSettings["failover"], ...container, ...(health ? { health } : {}), ...(typeof vip === "string" ? { vip } : {}),
    });
  });
  return services;
}

type At = (key: string) => string;
type Bad = (key: string, expected: string) => void;

/** One of image (a registry reference), tarball or build (with dockerfile). */
function parseImageSource(item: Record<string, unknown>, at: At, bad: Bad, problems: string[]): ImageSource {
  const given = (["image", "tarball", "build"] as const).filter((k) => item[k] !== undefined);
  if (given.length !== 1) {
    problems.push(`${at(given[1] ?? "image")}: expected exactly one of image (a registry reference such as registry.example:5000/app:1.2), tarball (docker save output) or build (a folder with a Dockerfile); found ${given.join(" and ") || "none"}`);
    return { kind: "registry", ref: "" };
  }
  const key = given[0];
  const value = item[key];
  if (item.dockerfile !== undefined && (key !== "build" || typeof item.dockerfile !== "string" || item.dockerfile === "")) bad("dockerfile", "a file in the build folder, with build");
  if (typeof value !== "string" || value === "") {
    bad(key, key === "image" ? "an image reference" : "a path relative to the project folder");
    return { kind: "registry", ref: "" };
  }
  if (key === "tarball") return { kind: "tarball", file: value };
  if (key === "build") return { kind: "build", context: value, dockerfile: (item.dockerfile as string | undefined) ?? "Dockerfile" };
  if (!isImageReference(value)) bad("image", "a registry reference such as registry.example:5000/app:1.2 or app@sha256:<digest>");
  return { kind: "registry", ref: value };
}

/** port (the main one, the same on both sides) or ports (HOST:CONTAINER[/udp]; the first tcp one is the main one). */
function parsePorts(item: Record<string, unknown>, at: At, bad: Bad, problems: string[]) {
  const none = { port: 0, containerPort: 0, morePorts: [] as PortMapping[] };
  if (item.port !== undefined && item.ports !== undefined) {
    problems.push(`${at("ports")}: expected port or ports, found both`);
    return none;
  }
  if (item.ports === undefined) {
    const port = Number(item.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) return bad("port", "a port number (or ports: a list)"), none;
    return { port, containerPort: port, morePorts: [] };
  }
  const list = Array.isArray(item.ports) ? item.ports.map((p) => (typeof p === "string" || typeof p === "number" ? parsePort(String(p)) : undefined)) : [undefined];
  if (list.length === 0 || list.some((p) => !p)) return bad("ports", "a list of HOST:CONTAINER, HOST:CONTAINER/udp or PORT"), none;
  const ports = list as PortMapping[];
  const main = ports.find((p) => p.protocol === "tcp");
  if (!main) return bad("ports", "at least one tcp port (the first is the one clients, endpoints and drills use)"), none;
  return { port: main.host, containerPort: main.container, morePorts: ports.filter((p) => p !== main) };
}

const healthKeys = ["tcp", "http", "command", "port", "interval", "timeout", "retries"];

/**
 * healthcheck: exactly one of tcp (a published container port), http (a path,
 * GET on the main port or on `port`) or command (run in the container); and
 * interval, timeout (seconds) and retries. Swarm runs checks inside the
 * container, so a swarm-mode service takes command only.
 */
function parseHealthCheck(value: unknown, mode: unknown, ports: { port: number; containerPort: number; morePorts: PortMapping[] }, at: At, problems: string[]): HealthCheck | undefined {
  const key = (k: string) => `${at("healthcheck")}.${k}`;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    problems.push(`${at("healthcheck")}: expected a mapping with one of tcp: PORT, http: /path or command: [...], found ${JSON.stringify(value)}`);
    return undefined;
  }
  const h = value as Record<string, unknown>;
  const before = problems.length;
  for (const k of Object.keys(h)) if (!healthKeys.includes(k)) problems.push(`${key(k)}: unknown key (known: ${healthKeys.join(", ")})`);
  const kinds = (["tcp", "http", "command"] as const).filter((k) => h[k] !== undefined);
  if (kinds.length !== 1) problems.push(`${at("healthcheck")}: expected exactly one of tcp: PORT, http: /path or command: [...], found ${kinds.join(" and ") || "none"}`);
  const seconds = (k: string, fallback: number, min: number, max: number) => {
    const v = h[k] === undefined ? fallback : Number(h[k]);
    if (!(v >= min && v <= max)) problems.push(`${key(k)}: expected seconds from ${min} to ${max}, found ${JSON.stringify(h[k])}`);
    return Math.round(v * 1000);
  };
  const intervalMs = seconds("interval", 2, 0.2, 600);
  const timeoutMs = seconds("timeout", 1, 0.1, 60);
  const retries = h.retries === undefined ? 3 : Number(h.retries);
  if (!Number.isInteger(retries) || retries < 1 || retries > 100) problems.push(`${key("retries")}: expected a whole number from 1 to 100, found ${JSON.stringify(h.retries)}`);
  if (timeoutMs > intervalMs) problems.push(`${key("timeout")}: expected at most the interval (${intervalMs / 1000} s), found ${timeoutMs / 1000} s`);
  const kind = kinds[0];
  if (kind && kind !== "command" && mode === "swarm") problems.push(`${key(kind)}: a swarm-mode service takes command only (swarm runs the check inside the container, where no ${kind} client may exist)`);
  if (h.port !== undefined && kind !== "http") problems.push(`${key("port")}: expected with http only (tcp names its port itself)`);
  // A container port the service publishes over tcp, as the host's port the agents reach.
  const published = (k: string, container: unknown): number | undefined => {
    const n = Number(container);
    const tcp = [{ host: ports.port, container: ports.containerPort }, ...ports.morePorts.filter((p) => p.protocol === "tcp")];
    const found = tcp.find((p) => p.container === n);
    if (!found) problems.push(`${key(k)}: expected a tcp port the service publishes (inside the container: ${tcp.map((p) => p.container).join(", ")}), found ${JSON.stringify(container)}`);
    return found?.host;
  };
  let check: HealthCheck | undefined;
  if (kind === "tcp") {
    const port = published("tcp", h.tcp);
    if (port) check = { kind, port, intervalMs, timeoutMs, retries };
  } else if (kind === "http") {
    const port = h.port === undefined ? ports.port : published("port", h.port);
    if (typeof h.http !== "string" || !/^\/\S*$/.test(h.http)) problems.push(`${key("http")}: expected a path such as /health, found ${JSON.stringify(h.http)}`);
    else if (port) check = { kind, port, path: h.http, intervalMs, timeoutMs, retries };
  } else if (kind === "command") {
    const c = h.command;
    if (!Array.isArray(c) || c.length === 0 || c.some((a) => typeof a !== "string" || a.includes("\n"))) problems.push(`${key("command")}: expected a list of arguments such as [redis-cli, ping], found ${JSON.stringify(c)}`);
    else check = { kind, command: c as string[], intervalMs, timeoutMs, retries };
  }
  return problems.length === before ? check : undefined;
}

/** env, command, user, tmpfs, memory, cpus. */
function parseContainerSettings(item: Record<string, unknown>, at: At, bad: Bad): ContainerSettings {
  const out: ContainerSettings = {};
  // One argument per line is how hosts keep a container's arguments (lib/ha/service-container runArgsText).
  const oneLine = (v: unknown) => (typeof v === "string" || typeof v === "number" || typeof v === "boolean") && !String(v).includes("\n");
  if (item.env !== undefined) {
    const env = item.env as Record<string, unknown>;
    if (typeof env !== "object" || env === null || Array.isArray(env) || Object.entries(env).some(([k, v]) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) || !oneLine(v))) {
      bad("env", "a mapping of NAME: value (names of letters, digits and _, values on one line)");
    } else out.env = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));
  }
  if (item.command !== undefined) {
    if (!Array.isArray(item.command) || item.command.some((a) => !oneLine(a))) bad("command", 'a list of arguments, each on one line, e.g. ["redis-server", "--appendonly", "yes"]');
    else out.command = item.command.map(String);
  }
  if (item.user !== undefined) {
    if (typeof item.user !== "string" && typeof item.user !== "number") bad("user", "USER[:GROUP], names or numbers");
    else if (!/^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$/.test(String(item.user))) bad("user", "USER[:GROUP], names or numbers");
    else out.user = String(item.user);
  }
  if (item.tmpfs !== undefined) {
    if (!Array.isArray(item.tmpfs) || item.tmpfs.some((t) => typeof t !== "string" || !/^\/[^\s:]*(:[a-z0-9=,]+)?$/.test(t))) bad("tmpfs", "a list of /paths/in/container (optionally /path:size=64m)");
    else out.tmpfs = item.tmpfs as string[];
  }
  if (item.memory !== undefined) {
    if (!/^\d+[bkmg]?$/.test(String(item.memory))) bad("memory", "a size such as 256m or 1g");
    else out.memory = String(item.memory);
  }
  if (item.cpus !== undefined) {
    const cpus = Number(item.cpus);
    if (!(cpus >= 0.01 && cpus <= 256)) bad("cpus", "a number of CPUs such as 0.5 or 2");
    else out.cpus = cpus;
  }
  return out;
}
