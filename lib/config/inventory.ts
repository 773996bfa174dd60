import { readFileSync } from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { LineCounter, parseDocument } from "yaml";
import { UserError } from "../log";

/*
 * The inventory: a YAML file listing the hosts of one fleet, the same format
 * for the local lab, Raspberry Pis and VMs. See README.md ("Inventory").
 */

/**
 * manager: a swarm manager, and a voter of the failover agents (a controller).
 * worker: runs services. witness: runs only the failover agent, as a voter:
 * no Docker, no CRIU, no services (the third vote of a two-node site).
 */
export type Role = "manager" | "worker" | "witness";
export const roles: readonly Role[] = ["manager", "worker", "witness"];
export const architectures = ["amd64", "arm64", "armhf"] as const;
export type Arch = (typeof architectures)[number];
/** `uname -m` names of each architecture. */
export const unameMachines: Record<Arch, string[]> = { amd64: ["x86_64"], arm64: ["aarch64", "arm64"], armhf: ["armv7l", "armv6l"] };

/** The fields of a host's `ssh` (and of defaults.ssh). */
const sshKeys = ["user", "port", "privateKeyFile", "knownHostsFile", "become", "sudoPasswordFile"];

export interface SshSettings {
  user: string;
  port: number;
  /** Absolute path (relative paths in the file are resolved against the inventory's folder). */
  privateKeyFile: string;
  /** Absolute path of a known_hosts file holding the hosts' keys. */
  knownHostsFile: string;
  /**
   * "sudo": the login is not root, and every command edge-ha runs there
   * (provisioning, the operator's actions) runs through sudo as root.
   */
  become?: "sudo";
  /**
   * Absolute path of a file whose first line is the login's sudo password,
   * when sudo asks for one; without it sudo must not ask (`sudo -n`).
   */
  sudoPasswordFile?: string;
}

export interface Host {
  name: string;
  address: string;
  arch: Arch;
  roles: Role[];
  labels: Record<string, string>;
  ssh: SshSettings;
}

/** An IPv4 subnet as CIDR: its address (the network's first), prefix length, and the text as written. */
export interface Subnet {
  cidr: string;
  network: number;
  prefix: number;
}

export interface Inventory {
  /** Where it was read from, for messages. */
  file: string;
  cluster: string;
  hosts: Host[];
  /**
   * The site's network as edge-ha uses it: `subnet`, the LAN the hosts share
   * (layer 2: an address moves between them with an ARP announcement), where
   * services' virtual addresses (`vip`) live. Optional until a service has one.
   */
  network?: { subnet: Subnet };
}

/** All the problems found in one inventory, each naming file, host and field. */
export class InventoryError extends UserError {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${file} is not a valid inventory:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "InventoryError";
  }
}

/** A host or cluster name: lower-case letters, digits and dashes, as in a hostname. */
export const hostNamePattern = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const namePattern = hostNamePattern;
const labelKeyPattern = /^[a-zA-Z0-9]([a-zA-Z0-9._/-]*[a-zA-Z0-9])?$/;

function isHostAddress(value: string): boolean {
  // Dotted numbers are an IPv4 address or a mistake, never a DNS name.
  if (/^[\d.]+$/.test(value)) return net.isIPv4(value);
  return net.isIP(value) !== 0 || /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/.test(value);
}

/** Reads and validates an inventory file; throws InventoryError listing every problem. */
export function loadInventory(file: string): Inventory {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new UserError(`cannot read inventory ${file}: ${(err as Error).message}`);
  }
  return parseInventory(text, file);
}

/** Validates inventory text; `file` is used for messages and to resolve relative paths. */
export function parseInventory(text: string, file: string): Inventory {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length) {
    throw new InventoryError(
      file,
      doc.errors.map((e) => {
        const at = e.pos ? lines.linePos(e.pos[0]) : undefined;
        return `${at ? `line ${at.line}: ` : ""}YAML syntax: ${e.message.split("\n")[0]}`;
      }),
    );
  }
  const problems: string[] = [];
  const root = doc.toJS() as unknown;
  if (!isRecord(root)) throw new InventoryError(file, ["expected a mapping with `cluster` and `hosts` at the top"]);
  const baseDir = path.dirname(path.resolve(file));

  const known = new Set(["cluster", "defaults", "hosts", "network"]);
  for (const key of Object.keys(root)) if (!known.has(key)) problems.push(`unknown top-level field "${key}" (expected one of: ${[...known].join(", ")})`);

  const cluster = root.cluster;
  if (typeof cluster !== "string" || !namePattern.test(cluster)) {
    problems.push(`cluster: expected a lower-case name (letters, digits, dashes), found ${show(cluster)}`);
  }

  const defaults = isRecord(root.defaults) ? root.defaults : {};
  if (root.defaults !== undefined && !isRecord(root.defaults)) problems.push(`defaults: expected a mapping, found ${show(root.defaults)}`);
  const defaultSsh = isRecord(defaults.ssh) ? defaults.ssh : {};

  const hosts: Host[] = [];
  if (!Array.isArray(root.hosts) || root.hosts.length === 0) {
    problems.push(`hosts: expected a non-empty list of hosts, found ${show(root.hosts)}`);
  } else {
    const seenNames = new Set<string>();
    const seenAddresses = new Set<string>();
    root.hosts.forEach((raw: unknown, i: number) => {
      const where = `hosts[${i}]${isRecord(raw) && typeof raw.name === "string" ? ` (${raw.name})` : ""}`;
      if (!isRecord(raw)) {
        problems.push(`${where}: expected a mapping with name and address, found ${show(raw)}`);
        return;
      }
      const hostKeys = new Set(["name", "address", "arch", "roles", "labels", "ssh"]);
      for (const key of Object.keys(raw)) if (!hostKeys.has(key)) problems.push(`${where}: unknown field "${key}" (expected one of: ${[...hostKeys].join(", ")})`);

      const name = raw.name;
      if (typeof name !== "string" || !namePattern.test(name)) problems.push(`${where}.name: expected a lower-case host name, found ${show(name)}`);
      else if (seenNames.has(name)) problems.push(`${where}.name: "${name}" is listed twice`);
      else seenNames.add(name);

      const address = raw.address;
      if (typeof address !== "string" || !isHostAddress(address)) problems.push(`${where}.address: expected an IP address or DNS name, found ${show(address)}`);
      else if (seenAddresses.has(address)) problems.push(`${where}.address: ${address} is used by another host`);
      else seenAddresses.add(address);

      const arch = raw.arch ?? "amd64";
      if (!architectures.includes(arch as Arch)) problems.push(`${where}.arch: expected one of ${architectures.join(", ")}, found ${show(arch)}`);

      const hostRoles = raw.roles ?? ["worker"];
      if (!Array.isArray(hostRoles) || hostRoles.length === 0 || !hostRoles.every((r) => roles.includes(r as Role))) {
        problems.push(`${where}.roles: expected a list of ${roles.join(" or ")}, found ${show(hostRoles)}`);
      } else if (hostRoles.length > 1) {
        problems.push(`${where}.roles: a host is one of manager, worker or witness, found ${show(hostRoles)}`);
      }

      const labels = raw.labels ?? {};
      if (!isRecord(labels)) problems.push(`${where}.labels: expected a mapping of label to value, found ${show(labels)}`);
      else
        for (const [k, v] of Object.entries(labels)) {
          if (!labelKeyPattern.test(k)) problems.push(`${where}.labels: "${k}" is not a valid label key`);
          if (typeof v !== "string" && typeof v !== "number" && typeof v !== "boolean") problems.push(`${where}.labels.${k}: expected a text value, found ${show(v)}`);
        }

      const ssh = { ...defaultSsh, ...(isRecord(raw.ssh) ? raw.ssh : {}) };
      if (raw.ssh !== undefined && !isRecord(raw.ssh)) problems.push(`${where}.ssh: expected a mapping, found ${show(raw.ssh)}`);
      const user = ssh.user ?? "root";
      const port = ssh.port ?? 22;
      if (typeof user !== "string" || user === "") problems.push(`${where}.ssh.user: expected a user name, found ${show(user)}`);
      if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) problems.push(`${where}.ssh.port: expected a port number, found ${show(port)}`);
      for (const field of ["privateKeyFile", "knownHostsFile"] as const) {
        if (typeof ssh[field] !== "string" || ssh[field] === "") {
          problems.push(`${where}.ssh.${field}: expected a file path (here or in defaults.ssh), found ${show(ssh[field])}`);
        }
      }
      for (const key of Object.keys(ssh)) if (!sshKeys.includes(key)) problems.push(`${where}.ssh: unknown field "${key}" (expected one of: ${sshKeys.join(", ")})`);
      const become = ssh.become;
      if (become !== undefined && become !== "sudo") problems.push(`${where}.ssh.become: expected sudo, found ${show(become)}`);
      // edge-ha's commands need root: a login that is not root reaches it through sudo, and says so.
      if (typeof user === "string" && user !== "root" && become === undefined) {
        problems.push(`${where}.ssh.become: ${user} is not root and edge-ha runs its commands as root: set become: sudo (and sudoPasswordFile if sudo asks ${user} for a password), or log in as root`);
      }
      const passwordFile = ssh.sudoPasswordFile;
      if (passwordFile !== undefined && (typeof passwordFile !== "string" || passwordFile === "")) problems.push(`${where}.ssh.sudoPasswordFile: expected a file path, found ${show(passwordFile)}`);
      else if (passwordFile !== undefined && become !== "sudo") problems.push(`${where}.ssh.sudoPasswordFile: given without become: sudo; set become: sudo, or remove it`);

      hosts.push({
        name: String(name),
        address: String(address),
        arch: arch as Arch,
        roles: (Array.isArray(hostRoles) ? hostRoles : []) as Role[],
        labels: isRecord(labels) ? Object.fromEntries(Object.entries(labels).map(([k, v]) => [k, String(v)])) : {},
        ssh: {
          user: String(user),
          port: Number(port),
          privateKeyFile: path.resolve(baseDir, String(ssh.privateKeyFile)),
          knownHostsFile: path.resolve(baseDir, String(ssh.knownHostsFile)),
          ...(become === "sudo" ? { become: "sudo" as const } : {}),
          ...(typeof passwordFile === "string" && passwordFile !== "" ? { sudoPasswordFile: path.resolve(baseDir, passwordFile) } : {}),
        },
      });
    });
    if (problems.length === 0 && !hosts.some((h) => h.roles.includes("manager"))) {
      problems.push(`hosts: at least one host needs roles: [manager] (the swarm needs a manager)`);
    }
  }

  const network = root.network === undefined ? undefined : parseNetwork(root.network, problems);
  if (problems.length) throw new InventoryError(file, problems);
  return { file, cluster: cluster as string, hosts, ...(network ? { network } : {}) };
}

/** network: { subnet: CIDR }; adds what is wrong to `problems`. */
function parseNetwork(raw: unknown, problems: string[]): Inventory["network"] {
  if (!isRecord(raw)) return void problems.push(`network: expected a mapping with subnet (the hosts' LAN, e.g. 192.168.10.0/24), found ${show(raw)}`);
  for (const key of Object.keys(raw)) if (key !== "subnet") problems.push(`network: unknown field "${key}" (expected: subnet)`);
  const subnet = typeof raw.subnet === "string" ? parseSubnet(raw.subnet) : undefined;
  if (!subnet) return void problems.push(`network.subnet: expected an IPv4 subnet as ADDRESS/PREFIX (e.g. 192.168.10.0/24, prefix 8 to 30), found ${show(raw.subnet)}`);
  if (subnet.network !== (ipv4Number(subnet.cidr.split("/")[0]) ?? -1)) {
    return void problems.push(`network.subnet: expected the network's first address with its prefix (${numberIpv4(subnet.network)}/${subnet.prefix}), found "${raw.subnet}"`);
  }
  return { subnet };
}

/** An IPv4 address as a number, or undefined when the text is not one. */
export function ipv4Number(text: string): number | undefined {
  if (!net.isIPv4(text)) return undefined;
  return text.split(".").reduce((n, octet) => n * 256 + Number(octet), 0);
}

/** A number as a dotted IPv4 address. */
export function numberIpv4(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join(".");
}

/** ADDRESS/PREFIX (prefix 8 to 30) as a Subnet whose network is ADDRESS with its host bits cleared, or undefined. */
export function parseSubnet(text: string): Subnet | undefined {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(text);
  const address = m ? ipv4Number(m[1]) : undefined;
  const prefix = m ? Number(m[2]) : NaN;
  if (address === undefined || !(prefix >= 8 && prefix <= 30)) return undefined;
  const size = 2 ** (32 - prefix);
  return { cidr: text, network: address - (address % size), prefix };
}

/** Whether `address` is a host address of `subnet` (not its network or broadcast address). */
export function inSubnet(address: number, subnet: Subnet): boolean {
  const size = 2 ** (32 - subnet.prefix);
  return address > subnet.network && address < subnet.network + size - 1;
}

/** Whether a host runs services (Docker, CRIU, the rsync daemon, swarm): every host but a witness. */
export function runsServices(host: Host): boolean {
  return !host.roles.includes("witness");
}

/** Whether a host votes in the failover agents' majority: the managers and the witnesses. */
export function votes(host: Host): boolean {
  return host.roles.includes("manager") || host.roles.includes("witness");
}

/** The inventory without its witnesses: the hosts services may run on. */
export function serviceHosts(inventory: Inventory): Host[] {
  return inventory.hosts.filter(runsServices);
}

/** Finds a host by name, or explains which names exist. */
export function findHost(inventory: Inventory, name: string): Host {
  const host = inventory.hosts.find((h) => h.name === name);
  if (!host) {
    throw new UserError(`no host "${name}" in ${inventory.file}; its hosts are: ${inventory.hosts.map((h) => h.name).join(", ")}`);
  }
  return host;
}

function isRecord(value: unknown): value is Record<string, any> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function show(value: unknown): string {
  if (value === undefined) return "nothing";
  return JSON.stringify(value);
}

