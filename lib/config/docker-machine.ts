import { existsSync, readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { UserError } from "../log";
import { hostNamePattern, type Arch } from "./inventory";

/*
 * docker-machine stores as an inventory source: many small fleets' VMs are
 * still described by one (machines/NAME/config.json), though docker-machine
 * itself is archived. Read here, pure: the host keys and architectures, which
 * need the machines themselves, are the command's (scripts/commands/inventory.ts).
 */

/** A machine of a store, as edge-ha reads it. */
export interface Machine {
  name: string;
  /** DriverName: virtualbox, generic, amazonec2, … (said in the inventory's comment, nothing else). */
  driver: string;
  address: string;
  user: string;
  port: number;
  /** Absolute path of the private key docker-machine logs in with. */
  keyFile: string;
  /** The config.json it came from, for messages. */
  configFile: string;
}

/** Where docker-machine keeps its store by default: $MACHINE_STORAGE_PATH, else ~/.docker/machine. */
export function defaultMachineStore(env: NodeJS.ProcessEnv = process.env): string {
  return env.MACHINE_STORAGE_PATH ?? path.join(env.HOME ?? "~", ".docker", "machine");
}

/**
 * Every machine of the store at `store`, sorted by name. All problems at once,
 * each naming the file and the field: a missing address, a name that cannot
 * be a host's, a key file that is not there. docker-machine's own fallbacks
 * are kept: port 22 when SSHPort is 0 or absent, the machine folder's id_rsa
 * when SSHKeyPath is empty.
 */
export function readMachineStore(store: string): Machine[] {
  const dir = path.join(store, "machines");
  if (!existsSync(dir)) {
    throw new UserError(`no docker-machine store at ${store}: expected ${dir}/NAME/config.json; give --store DIR (or set MACHINE_STORAGE_PATH)`);
  }
  const problems: string[] = [];
  const machines: Machine[] = [];
  for (const name of readdirSync(dir).sort()) {
    const configFile = path.join(dir, name, "config.json");
    if (!existsSync(configFile)) continue;
    let config: Record<string, unknown>;
    try {
      config = JSON.parse(readFileSync(configFile, "utf8"));
    } catch (err) {
      problems.push(`${configFile}: not JSON (${(err as Error).message})`);
      continue;
    }
    const driver = (config.Driver ?? {}) as Record<string, unknown>;
    const field = (key: string) => driver[key];
    const address = field("IPAddress");
    if (typeof address !== "string" || !address) problems.push(`${configFile}: Driver.IPAddress: expected the machine's address, found ${JSON.stringify(address ?? null)} (is the machine running? docker-machine ip ${name})`);
    const user = field("SSHUser");
    if (typeof user !== "string" || !user) problems.push(`${configFile}: Driver.SSHUser: expected the user docker-machine logs in as, found ${JSON.stringify(user ?? null)}`);
    const rawPort = field("SSHPort");
    const port = rawPort === undefined || rawPort === 0 ? 22 : rawPort;
    if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) problems.push(`${configFile}: Driver.SSHPort: expected a port, found ${JSON.stringify(rawPort)}`);
    const rawKey = field("SSHKeyPath");
    const keyFile = typeof rawKey === "string" && rawKey ? path.resolve(path.dirname(configFile), rawKey) : path.join(dir, name, "id_rsa");
    if (!existsSync(keyFile)) problems.push(`${configFile}: Driver.SSHKeyPath: expected a private key file, found ${JSON.stringify(rawKey ?? "")}${rawKey ? "" : ` and no ${keyFile}`}, which does not exist`);
    if (!hostNamePattern.test(name)) problems.push(`${configFile}: machine "${name}": expected a name an inventory host can have (lower-case letters, digits, dashes); rename the machine or write this host by hand`);
    machines.push({ name, driver: String(config.DriverName ?? "unknown"), address: String(address), user: String(user), port: Number(port), keyFile, configFile });
  }
  if (problems.length) throw new UserError(`the docker-machine store ${store} cannot become an inventory:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
  if (!machines.length) throw new UserError(`the docker-machine store ${store} has no machines (${dir}/NAME/config.json)`);
  return machines;
}

/** What an import keeps of an inventory written before: the roles and labels its hosts were given since. */
export interface Kept {
  roles?: string[];
  labels?: Record<string, string>;
}

/**
 * The inventory of `machines` as a YAML-ready document. Paths are written
 * relative to `outDir` (where the inventory goes). Roles: the first machines
 * (by name) are managers, an odd number up to three, so the failover agents
 * have a majority; the rest workers. Roles and labels already in a previous
 * inventory (`kept`, by host name) are kept: an edit survives a new import.
 */
export function machinesInventory(
  machines: Machine[],
  options: { cluster: string; outDir: string; knownHostsFile: string; arch: Record<string, Arch>; kept?: Record<string, Kept> },
): Record<string, unknown> {
  const rel = (p: string) => path.relative(options.outDir, p) || ".";
  const managers = Math.min(3, machines.length % 2 === 0 ? machines.length - 1 : machines.length);
  return {
    cluster: options.cluster,
    defaults: { ssh: { knownHostsFile: rel(options.knownHostsFile) } },
    hosts: machines.map((m, i) => {
      const kept = options.kept?.[m.name] ?? {};
      return {
        name: m.name,
        address: m.address,
        arch: options.arch[m.name],
        roles: kept.roles ?? [i < Math.max(1, managers) ? "manager" : "worker"],
        ...(kept.labels && Object.keys(kept.labels).length ? { labels: kept.labels } : {}),
        // docker-machine's VMs log in as docker or ubuntu, with passwordless sudo.
        ssh: { user: m.user, port: m.port, privateKeyFile: rel(m.keyFile), ...(m.user === "root" ? {} : { become: "sudo" }) },
      };
    }),
  };
}
