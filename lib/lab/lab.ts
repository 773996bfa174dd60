import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { $ } from "zx";
import { stringify } from "yaml";
import { progress, UserError } from "../log";
import { projectRoot, toolsDir } from "../toolchain";
import { aptProxyLine, ensureAptCache } from "./apt-cache";
import { ensureBaseImage, ensureNodeImage, nodeImage } from "./image";
import { freezerOf, processesUnder, psTable, readText } from "./processes";

/*
 * The local lab: blank Debian hosts as containers on this machine. Everything
 * the lab creates carries the label `edge-ha.lab=<lab name>`, which is the
 * lab's only state: `status` and `down` find what exists by that label.
 */

export interface LabOptions {
  /** Name of the lab; several labs can exist side by side (default "lab"). */
  name: string;
  /** The lab network's /24, as its first three octets (default "10.77.0"). */
  subnetPrefix: string;
  /** Where the inventory is written (default inventory/<name>.yaml). */
  inventoryFile: string;
}

export interface LabNode {
  name: string;
  container: string;
  address: string;
  running: boolean;
  /** How edge-ha logs in there (its label edge-ha.lab.login). */
  login: LabLogin;
}

/**
 * How a lab node lets edge-ha in: as root (the default), or, as Raspberry Pi
 * OS and cloud VMs do, as a user (`edge`) with sudo and no root login at all,
 * sudo asking no password ("sudo") or the user's password ("sudo-password",
 * kept in the lab's files as the inventory's sudoPasswordFile).
 */
export type LabLogin = "root" | "sudo" | "sudo-password";
export const labLogins: readonly LabLogin[] = ["root", "sudo", "sudo-password"];
/** The login user of a lab node that does not let root in. */
export const labSudoUser = "edge";

export const labelKey = "edge-ha.lab";

export function labOptions(partial: Partial<LabOptions> = {}): LabOptions {
  const name = partial.name ?? process.env.EDGE_HA_LAB ?? "lab";
  if (!/^[a-z][a-z0-9-]{0,20}$/.test(name)) throw new UserError(`lab name: expected lower-case letters, digits and dashes, found "${name}"`);
  const subnetPrefix = partial.subnetPrefix ?? process.env.EDGE_HA_LAB_SUBNET ?? "10.77.0";
  if (!/^\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(subnetPrefix)) throw new UserError(`lab subnet: expected three octets such as 10.77.0, found "${subnetPrefix}"`);
  return { name, subnetPrefix, inventoryFile: partial.inventoryFile ?? path.join(projectRoot, "inventory", `${name}.yaml`) };
}

/** Files the lab keeps beside the checkout: its SSH key and the nodes' host keys. */
export function labFiles(lab: LabOptions) {
  const dir = path.join(toolsDir, "labs", lab.name);
  return { dir, key: path.join(dir, "id_ed25519"), knownHosts: path.join(dir, "known_hosts"), sudoPassword: path.join(dir, "sudo-password") };
}

/** The lab key's public half, authorized on every node. */
const labPublicKey = (lab: LabOptions) => readFileSync(`${labFiles(lab).key}.pub`, "utf8").trim();

export const labNetwork = (lab: LabOptions) => `edge-ha-${lab.name}`;
const containerName = (lab: LabOptions, node: string) => `edge-ha-${lab.name}-${node}`;
const nodeAddress = (lab: LabOptions, index: number) => `${lab.subnetPrefix}.${10 + index}`;
const sh = $({ quiet: true });

/** Node containers of the lab, in node order. */
export async function listNodes(lab: LabOptions): Promise<LabNode[]> {
  const ids = (await sh`docker ps -aq --filter ${`label=${labelKey}=${lab.name}`} --filter label=edge-ha.lab.node`).stdout.split("\n").filter(Boolean);
  if (ids.length === 0) return [];
  const format = `{{index .Config.Labels "edge-ha.lab.node"}} {{.Name}} {{index .Config.Labels "edge-ha.lab.address"}} {{.State.Running}} {{index .Config.Labels "edge-ha.lab.login"}}`;
  const rows = (await sh`docker container inspect -f ${format} ${ids}`).stdout.trim().split("\n");
  return rows
    .map((row) => {
      const [name, container, address, running, login] = row.split(" ");
      // Nodes made before logins existed have no label: root.
      return { name, container: container.replace(/^\//, ""), address, running: running === "true", login: labLogins.includes(login as LabLogin) ? (login as LabLogin) : "root" };
    })
    .sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
}

/** Finds a node by name, or says which exist. */
export async function findNode(lab: LabOptions, name: string): Promise<LabNode> {
  const nodes = await listNodes(lab);
  const node = nodes.find((n) => n.name === name);
  if (!node) {
    const known = nodes.length ? `its nodes are: ${nodes.map((n) => n.name).join(", ")}` : `it has no nodes (run: lab up)`;
    throw new UserError(`no node "${name}" in lab "${lab.name}"; ${known}`);
  }
  return node;
}

/** The lab's witness: a node like the others, listed with roles: [witness] (it gets only the failover agent). */
export const witnessNode = "witness";

/**
 * Brings the lab to N running nodes (and a witness, when asked): builds the
 * node image once, creates the network, the nodes and their disks, authorizes
 * the lab key, records host keys, and writes the inventory. Idempotent; never
 * removes nodes.
 */
export async function up(lab: LabOptions, count: number, options: { witness?: boolean; logins?: Record<string, LabLogin> } = {}): Promise<LabNode[]> {
  if (!Number.isInteger(count) || count < 1 || count > 50) {
    throw new UserError(`--nodes: expected a whole number from 1 to 50, found ${count}`);
  }
  const logins = options.logins ?? {};
  // A login is made with the node: one that exists keeps its own.
  const existing = await listNodes(lab);
  const clashes = Object.entries(logins).filter(([n, l]) => existing.some((e) => e.name === n && e.login !== l));
  if (clashes.length) {
    throw new UserError(`${clashes.map(([n, l]) => `${n} exists with login ${existing.find((e) => e.name === n)!.login}, not ${l}`).join("; ")}: a node's login is set when it is made (lab down, or lab reimage NODE --login LOGIN)`);
  }
  await ensureNodeImage();
  // The demos' and examples' Dockerfiles build FROM it (services/, examples/): a lab runs them.
  await ensureBaseImage();
  await ensureNetwork(lab);
  const files = labFiles(lab);
  mkdirSync(files.dir, { recursive: true });
  if (!existsSync(files.key)) {
    await sh`ssh-keygen -q -t ed25519 -N ${""} -C ${`edge-ha-${lab.name}`} -f ${files.key}`;
  }
  const publicKey = labPublicKey(lab);

  const extraHosts = await mirrorHosts();
  const aptCache = await ensureAptCache();
  const loginOf = (name: string) => existing.find((e) => e.name === name)?.login ?? logins[name] ?? "root";
  for (let i = 1; i <= count; i++) {
    await ensureNode(lab, `node${i}`, nodeAddress(lab, i), publicKey, extraHosts, aptCache, loginOf(`node${i}`));
  }
  if (options.witness) await ensureNode(lab, witnessNode, nodeAddress(lab, -1), publicKey, extraHosts, aptCache, loginOf(witnessNode));
  const nodes = await listNodes(lab);
  await recordHostKeys(lab, nodes);
  writeInventory(lab, nodes);
  return nodes;
}

/**
 * Re-images a node, as a new SD card would: its container and disk go, and a
 * blank node comes up with the same name and address and new host keys,
 * which are recorded in the lab's known_hosts (an operator would check them
 * by hand). Nothing of edge-ha is on it afterwards.
 */
export async function reimage(lab: LabOptions, name: string, login?: LabLogin): Promise<LabNode> {
  const node = await findNode(lab, name);
  if (node.running) await powerOff(node.container);
  await sh`docker rm -f -v ${node.container}`;
  await sh`docker volume rm ${`${node.container}-docker`}`;
  const publicKey = labPublicKey(lab);
  await ensureNode(lab, name, node.address, publicKey, await mirrorHosts(), await ensureAptCache(), login ?? node.login);
  const nodes = await listNodes(lab);
  await recordHostKeys(lab, nodes);
  if (login && login !== node.login) writeInventory(lab, nodes);
  return findNode(lab, name);
}

async function ensureNetwork(lab: LabOptions): Promise<void> {
  const exists = await $({ quiet: true, nothrow: true })`docker network inspect ${labNetwork(lab)}`;
  if (exists.exitCode !== 0) {
    progress(`creating network ${labNetwork(lab)} (${lab.subnetPrefix}.0/24)`);
    const args = ["network", "create", "--driver", "bridge", "--subnet", `${lab.subnetPrefix}.0/24`, "--gateway", `${lab.subnetPrefix}.1`,
      "--label", `${labelKey}=${lab.name}`, "--opt", `com.docker.network.bridge.name=${`eh-${lab.name}`.slice(0, 15)}`, labNetwork(lab)];
    await sh`docker ${args}`;
  }
  await ensureEgressPolicy(lab);
}

/**
 * Nodes get the mirror's address in /etc/hosts: the egress policy lets them
 * reach nothing but the mirror, not even a DNS server.
 */
async function mirrorHosts(): Promise<string[]> {
  return (await debianMirrorAddresses()).slice(0, 1).map((ip) => `${debianMirror}:${ip}`);
}

/**
 * Nodes may reach each other and Debian's package mirror, nothing else. The
 * rules sit in Docker's DOCKER-USER chain, tagged with the lab's name.
 */
async function ensureEgressPolicy(lab: LabOptions): Promise<void> {
  const tag = `edge-ha-lab:${lab.name}:egress`;
  const existing = (await sh`iptables -S DOCKER-USER`).stdout;
  if (existing.includes(tag)) return;
  const subnet = `${lab.subnetPrefix}.0/24`;
  const mirrors = await debianMirrorAddresses();
  // Inserted in reverse: the last insert ends up first.
  await sh`iptables -I DOCKER-USER -s ${subnet} ! -d ${subnet} -j DROP -m comment --comment ${tag}`;
  for (const ip of mirrors) {
    await sh`iptables -I DOCKER-USER -s ${subnet} -d ${ip} -p tcp -m multiport --dports 80,443 -j RETURN -m comment --comment ${tag}`;
  }
  await sh`iptables -I DOCKER-USER -s ${subnet} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN -m comment --comment ${tag}`;
}

const debianMirror = "deb.debian.org";

async function debianMirrorAddresses(): Promise<string[]> {
  const out = await $({ quiet: true, nothrow: true })`getent ahostsv4 ${debianMirror}`;
  const ips = [...new Set(out.stdout.split("\n").map((l) => l.split(/\s+/)[0]).filter(Boolean))];
  if (ips.length === 0) throw new UserError("cannot resolve deb.debian.org: lab nodes need Debian's mirror to install packages");
  return ips;
}

async function ensureNode(lab: LabOptions, name: string, address: string, publicKey: string, extraHosts: string[], aptCache: boolean, login: LabLogin): Promise<void> {
  const container = containerName(lab, name);
  const state = await $({ quiet: true, nothrow: true })`docker container inspect -f {{.State.Running}} ${container}`;
  if (state.exitCode !== 0) {
    progress(`creating ${name} at ${address}`);
    const labels = [`${labelKey}=${lab.name}`, `edge-ha.lab.node=${name}`, `edge-ha.lab.address=${address}`, `edge-ha.lab.login=${login}`];
    await sh`docker volume create --label ${labels[0]} ${`${container}-docker`}`;
    // The options that let a node run its own dockerd and CRIU (see the machine notes in README).
    const args = ["run", "-d", "--name", container, "--hostname", name, "--init",
      ...labels.flatMap((l) => ["--label", l]),
      "--network", labNetwork(lab), "--ip", address,
      ...extraHosts.flatMap((h) => ["--add-host", h]),
      "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
      "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined", "--security-opt", "systempaths=unconfined",
      "--device-cgroup-rule", "a *:* rwm", "--cgroupns", "host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
      "--tmpfs", "/run", "--tmpfs", "/tmp", "-v", `${container}-docker:/var/lib/docker`,
      nodeImage];
    await sh`docker ${args}`;
  } else if (state.stdout.trim() !== "true") {
    progress(`starting ${name}`);
    await sh`docker start ${container}`;
  }
  await sh`docker update --restart ${rebootPolicy} ${container}`;
  if (login === "root") {
    await sh`docker exec ${container} sh -c ${`mkdir -p -m 700 /root/.ssh && grep -qxF "$1" /root/.ssh/authorized_keys 2>/dev/null || echo "$1" >> /root/.ssh/authorized_keys; chmod 600 /root/.ssh/authorized_keys`} sh ${publicKey}`;
  } else {
    await sh`docker exec -i ${container} sh -s ${labSudoUser} ${publicKey} ${login} ${login === "sudo-password" ? labSudoPassword(lab) : ""} < ${sudoLoginScript}`;
  }
  // The site's apt proxy, this machine's package cache (lib/lab/apt-cache.ts); none when it does not run.
  const proxyConf = "/etc/apt/apt.conf.d/00edge-ha-lab-proxy";
  if (aptCache) await sh`docker exec ${container} sh -c ${`printf '%s\n' "$1" > ${proxyConf}`} sh ${aptProxyLine(lab.subnetPrefix)}`;
  else await sh`docker exec ${container} rm -f ${proxyConf}`;
  await waitForSsh(container);
}

/** files/sudo-login.sh: makes a node's sudo login and refuses root's. */
const sudoLoginScript = path.join(__dirname, "files", "sudo-login.sh");

/** The lab's sudo password (its nodes with login sudo-password), made once: the inventory's sudoPasswordFile. */
function labSudoPassword(lab: LabOptions): string {
  const file = labFiles(lab).sudoPassword;
  if (!existsSync(file)) writeFileSync(file, `${randomBytes(12).toString("base64url")}\n`, { mode: 0o600 });
  return readFileSync(file, "utf8").split("\n")[0];
}

/**
 * A running node's restart policy: its `reboot` (files/node-reboot.sh) stops
 * everything and its init exits with a failure status, which Docker answers
 * by starting it again, as a machine comes back after a reboot. Set off
 * before a power-off (powerOff): a crashed node stays down until `lab boot`.
 */
export const rebootPolicy = "on-failure";

/** Waits until a node has its host key and sshd runs (after create or boot). */
export async function waitForSsh(container: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await $({ quiet: true, nothrow: true })`docker exec ${container} sh -c ${"test -s /etc/ssh/ssh_host_ed25519_key.pub && pgrep -x sshd"}`;
    if (r.exitCode === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new UserError(`${container}: sshd did not start within 10 s; see: docker logs ${container}`);
}

/**
 * Host keys are read through the container runtime (the lab's equivalent of
 * reading them off the SD card), so SSH can verify every node from then on.
 */
async function recordHostKeys(lab: LabOptions, nodes: LabNode[]): Promise<void> {
  const lines: string[] = [];
  for (const node of nodes.filter((n) => n.running)) {
    const key = (await sh`docker exec ${node.container} cat /etc/ssh/ssh_host_ed25519_key.pub`).stdout.trim().split(" ").slice(0, 2).join(" ");
    lines.push(`${node.address} ${key}`);
  }
  writeFileSync(labFiles(lab).knownHosts, lines.join("\n") + "\n");
}

/** Writes the lab's inventory in the format real fleets use. */
export function writeInventory(lab: LabOptions, nodes: LabNode[]): void {
  const files = labFiles(lab);
  const rel = (p: string) => path.relative(path.dirname(lab.inventoryFile), p);
  const witness = nodes.some((n) => n.name === witnessNode);
  const serving = nodes.filter((n) => n.name !== witnessNode).length;
  // An odd number of voters (managers, and the witness): 3 for 3 nodes, or 2 nodes and a witness.
  const managers = witness ? Math.min(2, serving) : Math.min(3, serving % 2 === 0 ? serving - 1 : serving);
  const doc = {
    cluster: lab.name,
    // Services' virtual addresses (vip) live in it; the lab leaves .200 to .249 to them.
    network: { subnet: `${lab.subnetPrefix}.0/24` },
    defaults: { ssh: { user: "root", port: 22, privateKeyFile: rel(files.key), knownHostsFile: rel(files.knownHosts) } },
    hosts: nodes.map((n, i) => ({
      name: n.name,
      address: n.address,
      arch: process.arch === "arm64" ? "arm64" : "amd64",
      roles: [n.name === witnessNode ? "witness" : i < Math.max(1, managers) ? "manager" : "worker"],
      labels: { "edge-ha.zone": `lab-${String.fromCharCode(97 + (i % 3))}` },
      ...(n.login === "root" ? {} : { ssh: { user: labSudoUser, become: "sudo", ...(n.login === "sudo-password" ? { sudoPasswordFile: rel(files.sudoPassword) } : {}) } }),
    })),
  };
  mkdirSync(path.dirname(lab.inventoryFile), { recursive: true });
  writeFileSync(lab.inventoryFile, `# Written by \`lab up\` for lab "${lab.name}"; rewritten on every lab up.\n${stringify(doc)}`);
}

/**
 * Powers a node container off at once, as a power cut would; a no-op when it
 * is not running. A process caught mid-checkpoint sits in a freezer cgroup
 * CRIU froze, and a frozen process cannot die: `docker kill` then waits about
 * ten seconds for an exit that never comes (the node looked alive, frozen,
 * all that time, and a drill measured it as downtime). So every process of
 * the node gets SIGKILL first, then the frozen cgroups among theirs are
 * thawed (nested containers' cgroups are this machine's: cgroupns host) and
 * the pending SIGKILL ends them.
 */
export async function powerOff(container: string): Promise<number | undefined> {
  const [running, pid] = (await sh`docker container inspect -f ${"{{.State.Running}} {{.State.Pid}}"} ${container}`).stdout.trim().split(" ");
  if (running !== "true") return undefined;
  // Powered off, it stays off: not started again by its restart policy (rebootPolicy).
  await sh`docker update --restart no ${container}`;
  let killedAt: number | undefined;
  for (let i = 0; i < 100; i++) {
    const table = (await sh`ps ${psTable}`).stdout;
    killAndThaw(Number(pid), table);
    // The moment of the crash is when the last of its processes got SIGKILL, not when the kills began:
    // a drill saw the service answer 150 ms after the first, which it took for "served again".
    killedAt ??= Date.now();
    const state = await $({ quiet: true, nothrow: true })`docker container inspect -f ${"{{.State.Running}}"} ${container}`;
    if (state.stdout.trim() !== "true") return killedAt;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new UserError(`${container} was still running 5 s after SIGKILL to all its processes; docker inspect ${container} and docker logs ${container} may tell why`);
}

/** SIGKILL to `pid` and every process under it (in a psTable `table`), then thaws the frozen (cgroup v1 freezer) cgroups they are in. */
function killAndThaw(pid: number, table: string): void {
  const freezers = new Set<string>();
  // All signals before any thaw: a thawed process must find CRIU, which froze it, dead already.
  for (const p of processesUnder(pid, table)) {
    const freezer = freezerOf(p.pid);
    if (freezer !== undefined) freezers.add(freezer);
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
  for (const state of freezers) {
    try {
      if (readText(state) !== "THAWED") writeFileSync(state, "THAWED");
    } catch {
      // the cgroup went with its processes
    }
  }
}

/** Removes exactly what the lab created: its containers, volumes, network, firewall rules and files. */
export async function down(lab: LabOptions): Promise<{ containers: number; volumes: number; networks: number }> {
  const filter = `label=${labelKey}=${lab.name}`;
  const containers = (await sh`docker ps -aq --filter ${filter}`).stdout.split("\n").filter(Boolean);
  for (const container of containers) await powerOff(container);
  if (containers.length) await sh`docker rm -f -v ${containers}`;
  const volumes = (await sh`docker volume ls -q --filter ${filter}`).stdout.split("\n").filter(Boolean);
  if (volumes.length) await sh`docker volume rm ${volumes}`;
  const networks = (await sh`docker network ls -q --filter ${filter}`).stdout.split("\n").filter(Boolean);
  if (networks.length) await sh`docker network rm ${networks}`;
  await removeRules(`edge-ha-lab:${lab.name}:`);
  const files = labFiles(lab);
  await sh`rm -rf ${files.dir}`;
  await sh`rm -f ${lab.inventoryFile}`;
  return { containers: containers.length, volumes: volumes.length, networks: networks.length };
}

/** Deletes every DOCKER-USER rule whose comment starts with `prefix`. */
export async function removeRules(prefix: string): Promise<void> {
  const rules = (await $({ quiet: true, nothrow: true })`iptables -S DOCKER-USER`).stdout.split("\n");
  for (const rule of rules) {
    const m = /--comment "?([^" ]+)"?/.exec(rule);
    if (!m || !m[1].startsWith(prefix)) continue;
    const args = rule.replace(/^-A /, "").match(/"[^"]*"|\S+/g)!.map((a) => a.replace(/^"|"$/g, ""));
    await sh`iptables -D ${args}`;
  }
}

