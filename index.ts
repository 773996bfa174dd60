import * as pulumi from "@pulumi/pulumi";
import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { loadInventory, serviceHosts, type Arch, type Inventory } from "./lib/config/inventory";
import { UserError } from "./lib/log";
import { prepareImage, type PreparedImage } from "./lib/ha/images";
import { checkServicePlacement, parseSettings, type ClusterSettings } from "./lib/config/settings";
import { EdgeCluster } from "./modules/edge-cluster";
import { EdgeServices } from "./modules/edge-services";
import { FailoverAgents } from "./modules/failover-agent";
import { buildAgent } from "./lib/ha/agent";
import { decideIdentity, readMarker, type HostIdentity } from "./lib/host/identity";
import { preflight } from "./lib/host/preflight";
import { checkReimagedPrimaries } from "./lib/ha/reimaged-primaries";
import { checkMovedServices } from "./lib/ha/moved-services";
import { checkDrainedPrimaries } from "./lib/ha/drain";
import { serviceSpec } from "./lib/ha/service-container";

/*
 * The edge-ha program: the inventory named by the stack's settings becomes an
 * EdgeCluster, and the services the settings declare run on it. Bad settings
 * or a bad inventory stop it here, in preview, before anything on a host
 * changes.
 */
async function program() {
  const stackFile = path.join("stacks", `Pulumi.${pulumi.getStack()}.yaml`);
  const raw = Object.fromEntries(
    Object.entries(pulumi.runtime.allConfig())
      .filter(([key]) => key.startsWith("edge-ha:"))
      .map(([key, value]) => [key.slice("edge-ha:".length), value]),
  );
  try {
    const settings = parseSettings(raw, stackFile);
    // The inventory path is relative to the project folder, whatever the caller's cwd.
    const inventory = loadInventory(path.resolve(__dirname, settings.inventory));
    checkServicePlacement(settings, inventory, stackFile);
    const images = await buildImages(settings, inventory, stackFile);
    // What would fail deep inside the run (a wrong arch, no memory cgroup, a full disk, a clock
    // off): every problem now, before any change (lib/host/preflight.ts, as `inventory check --live`).
    const problems = await preflight(inventory);
    if (problems.length) throw new UserError(`the hosts are not ready for edge-ha (nothing was changed):\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    const identities = await hostIdentities(inventory);
    await checkReimagedPrimaries(settings, inventory, identities, stackFile);
    const specs = Object.fromEntries(settings.services.filter((s) => s.mode === "criu").map((s) => [s.name, serviceSpec(s, images[`${s.name}-${inventory.hosts.find((h) => h.name === s.primary)!.arch}`].ref)]));
    await checkMovedServices(settings.services, specs, inventory, stackFile);
    await checkDrainedPrimaries(settings.services, inventory, stackFile);
    const registryCAs = readRegistryCAs(settings, stackFile);
    const cluster = new EdgeCluster(inventory.cluster, { inventory, settings, identities, registryCAs, rsyncPassword: new pulumi.Config("edge-ha").getSecret("rsyncPassword") });
    const services = new EdgeServices(`${inventory.cluster}-services`, { inventory, services: settings.services, registries: settings.registries, nodes: cluster.ready, images, swarmCa: cluster.swarmCa });
    // Agents only where they have something to restore.
    const auto = settings.services.filter((s) => s.mode === "criu" && s.failover === "auto");
    let failoverAgents: string[] = [];
    if (settings.failover.enabled && auto.length > 0) {
      const binaries: Partial<Record<Arch, string>> = {};
      for (const arch of new Set(inventory.hosts.map((h) => h.arch))) binaries[arch] = await buildAgent(arch);
      const agents = new FailoverAgents(`${inventory.cluster}-failover`, { inventory, failover: settings.failover, services: settings.services, nodes: cluster.ready, binaries }, { dependsOn: [services] });
      failoverAgents = agents.hosts;
    }
    return { clusterName: inventory.cluster, swarmLeader: cluster.swarmLeader, nodes: cluster.nodes, services: services.services, failoverAgents, hostIdentity: cluster.identities };
  } catch (err) {
    // A RunError is shown as its message alone, without a stack trace.
    if (err instanceof UserError) throw new pulumi.RunError(err.message);
    throw err;
  }
}

/**
 * Which installation of each host this run provisions: the stack's record
 * (its own last output, `hostIdentity`) against the marker each host holds
 * now. A re-imaged host is said in one line and provisioned from blank.
 */
async function hostIdentities(inventory: Inventory): Promise<Record<string, HostIdentity>> {
  const self = new pulumi.StackReference(`${pulumi.getOrganization()}/${pulumi.getProject()}/${pulumi.getStack()}`);
  const previous = ((await self.getOutputDetails("hostIdentity")).value ?? {}) as Record<string, HostIdentity>;
  const decided = await Promise.all(inventory.hosts.map(async (h) => ({ host: h, ...decideIdentity(h.name, previous[h.name], await readMarker(h)) })));
  for (const { host, note } of decided) if (note) pulumi.log.warn(note);
  return Object.fromEntries(decided.map(({ host, identity }) => [host.name, identity]));
}

/** Each registry's CA certificate, read from its file (relative to the project folder); every bad one named at once. */
function readRegistryCAs(settings: ClusterSettings, stackFile: string): Record<string, string> {
  const problems: string[] = [];
  const cas: Record<string, string> = {};
  settings.registries.forEach((r, i) => {
    if (r.ca === undefined) return;
    const file = path.resolve(__dirname, r.ca);
    const pem = existsSync(file) ? readFileSync(file, "utf8") : undefined;
    if (!pem?.includes("-----BEGIN CERTIFICATE-----")) problems.push(`${stackFile}: edge-ha:registries[${i}].ca: expected a PEM certificate at ${file}, found ${pem === undefined ? "no file" : "none in it"}`);
    else cas[r.address] = pem.trim();
  });
  if (problems.length) throw new UserError(problems.join("\n"));
  return cas;
}

/** Makes ready, on this machine, each service's image for every architecture it may run on (a criu service: its primary's). */
async function buildImages(settings: ClusterSettings, inventory: Inventory, stackFile: string): Promise<Record<string, PreparedImage>> {
  const images: Record<string, PreparedImage> = {};
  const archOf = (name?: string) => inventory.hosts.find((h) => h.name === name)?.arch;
  const problems: string[] = [];
  // Services with one source (the counter as a CRIU and a swarm service) share one preparation: it is built and hashed once.
  const prepared = new Map<string, Promise<PreparedImage>>();
  for (const [i, s] of settings.services.entries()) {
    const archs = s.mode === "criu" ? [archOf(s.primary)!] : [...new Set<Arch>(serviceHosts(inventory).map((h) => h.arch))];
    const key = { registry: "image", tarball: "tarball", build: "build" }[s.image.kind];
    for (const arch of archs) {
      // Every service's image is tried, so that one run reports every bad one.
      const once = `${JSON.stringify(s.image)} ${arch}`;
      if (!prepared.has(once)) prepared.set(once, prepareImage(s.image, arch, s.name, `${stackFile}: edge-ha:services[${i}].${key}`));
      await prepared.get(once)!.then(
        (image) => void (images[`${s.name}-${arch}`] = image),
        (err: unknown) => void problems.push(err instanceof UserError ? err.message : String(err)),
      );
    }
  }
  if (problems.length) throw new UserError(problems.join("\n"));
  return images;
}

export = program();
