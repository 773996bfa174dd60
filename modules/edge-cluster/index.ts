import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { randomUUID } from "node:crypto";
import { runsServices, type Inventory } from "../../lib/config/inventory";
import type { HostIdentity } from "../../lib/host/identity";
import { serviceNetwork } from "../../lib/host/paths";
import { RegistryTrust } from "../registry-trust";
import type { ClusterSettings } from "../../lib/config/settings";
import { Criu } from "../criu";
import { DockerEngine, registryLogins } from "../docker-engine";
import { GeneratedSecret } from "../generated-secret";
import { connectionFor, HostFacts, type ClusterNode } from "../host-facts";
import { HostTools } from "../host-tools";
import { RsyncDaemon } from "../rsync-daemon";
import { CheckpointTransport } from "../checkpoint-transport";
import { SwarmCluster } from "../swarm-cluster";

export interface EdgeClusterArgs {
  /** The fleet, already validated (lib/config/inventory). */
  inventory: Inventory;
  /** The stack's settings, already validated (lib/config/settings). */
  settings: ClusterSettings;
  /** Password of the rsync daemons; generated once and kept in the state when not given. */
  rsyncPassword?: pulumi.Input<string>;
  /**
   * Per host, the installation the stack provisions (lib/host/identity
   * decideIdentity): its marker and generation. A host missing here is a new
   * one: generation 0, a new marker.
   */
  identities?: Record<string, HostIdentity>;
  /** The CA certificate (PEM) of each registry of settings.registries, by address, read by the program. */
  registryCAs?: Record<string, string>;
}

export interface NodeOutputs {
  address: string;
  kernel: pulumi.Output<string>;
  /** The rest is for hosts that run services; a witness has none of it. */
  docker?: pulumi.Output<string>;
  criu?: pulumi.Output<string>;
  rsync?: pulumi.Output<string>;
  swarmNodeId?: pulumi.Output<string>;
}

/**
 * An HA-ready edge cluster from an inventory of blank hosts: on every host
 * edge-ha's shell library and tools (edge-ha-sync, edge-ha-ctl), a Docker engine able to checkpoint, a CRIU that passes on its kernel and an
 * rsync daemon for checkpoint images; all hosts in one Docker Swarm. Each host
 * is checked first (reachable, architecture as listed), and each host's chain
 * depends only on itself, so one unreachable host does not hold up the others
 * (with `pulumi up --continue-on-error`, which the project's tools use).
 */
export class EdgeCluster extends pulumi.ComponentResource {
  readonly nodes: Record<string, NodeOutputs> = {};
  readonly swarmLeader: string;
  /** Which swarm this is (SwarmCluster.swarmCa). */
  readonly swarmCa: pulumi.Output<string>;
  /** Every host as services see it: reachable, and ready once its engine, CRIU, rsync daemon and swarm membership are. */
  readonly ready: Record<string, ClusterNode> = {};
  /** Per host, its marker (once installed) and generation: what the next run compares the host with. */
  readonly identities: Record<string, pulumi.Output<HostIdentity>> = {};

  constructor(name: string, args: EdgeClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edge-ha:cluster:EdgeCluster", name, {}, opts);
    const { inventory, settings } = args;
    // Every host's SSH settings are checked before the first resource exists,
    // so that a bad one stops the program before anything changes.
    const identityOf = (name: string) => args.identities?.[name] ?? { id: randomUUID(), generation: 0 };
    const identities = new Map(inventory.hosts.map((host) => [host.name, identityOf(host.name)]));
    const generationOf = (name: string) => identities.get(name)!.generation;
    const connections = new Map(inventory.hosts.map((host) => [host.name, connectionFor(host, generationOf(host.name))]));
    const parent = { parent: this };
    const password = args.rsyncPassword ?? new GeneratedSecret(`${name}-rsync-password`, {}, parent).value;
    const allowedHosts = inventory.hosts.filter(runsServices).map((h) => h.address);

    const base = inventory.hosts.map((host) => {
      const connection = connections.get(host.name)!;
      const { id, generation } = identities.get(host.name)!;
      const facts = new HostFacts(host.name, { host, generation }, parent);
      // edge-ha's shell library first: every other host script runs with it.
      const tools = new HostTools(host.name, { connection, hostId: id }, { ...parent, dependsOn: [facts] });
      this.identities[host.name] = tools.hostId.apply((installed) => ({ id: installed, generation }));
      return { host, connection, facts, tools };
    });
    // A witness gets only the above (and the failover agent): no Docker, rsync, CRIU or swarm.
    const perHost = base.filter(({ host }) => runsServices(host)).map(({ host, connection, facts, tools }) => {
      const engine = new DockerEngine(
        host.name,
        { host, connection, source: settings.dockerSource, logMaxSize: settings.dockerLogMaxSize, logMaxFiles: settings.dockerLogMaxFiles, registryAuth: registryLogins(settings) },
        { ...parent, dependsOn: [tools] },
      );
      const rsync = new RsyncDaemon(
        host.name,
        { connection, address: host.address, password, allowedHosts, port: settings.rsyncPort },
        { ...parent, dependsOn: [tools] },
      );
      // The services' network, made on every host now: a service may land on any of them, and looked up
      // later (while a crashed swarm leader is replaced) the name would go to the swarm and block ~20 s.
      const network = new docker.Network(
        `${host.name}-service-network`,
        {
          name: serviceNetwork.name,
          driver: "bridge",
          ipamConfigs: [{ subnet: serviceNetwork.subnet }],
          options: { "com.docker.network.bridge.name": serviceNetwork.bridge },
          // A re-imaged host gets it anew (labels force a replacement); none at generation 0, as before.
          labels: generationOf(host.name) ? [{ label: "edge-ha.host-generation", value: String(generationOf(host.name)) }] : undefined,
        },
        { ...parent, provider: engine.provider, dependsOn: [engine] },
      );
      // Registries the engine pulls from, trusted by their CA (the engine must exist: certs.d is its folder).
      const trust = settings.registries.filter((r) => r.ca !== undefined).map(
        (r) =>
          new RegistryTrust(`${host.name}-registry-${r.address.replace(/[:.]/g, "-")}`, { connection, address: r.address, caPem: args.registryCAs?.[r.address] ?? "" }, { ...parent, dependsOn: [engine] }),
      );
      return { host, connection, facts, tools, engine, network, rsync, trust };
    });

    const criu = new Criu(
      name,
      {
        // Each host's rsync daemon too: the first host of an architecture serves its CRIU to the others.
        nodes: perHost.map(({ host, connection, facts, rsync }) => ({ host, connection, dependsOn: [facts, rsync] })),
        rsyncPort: settings.rsyncPort,
        source: settings.criuSource,
        version: settings.criuVersion,
        cache: settings.criuCache === "none" ? undefined : settings.criuCache,
        runc: { tcpEstablished: settings.criuTcpEstablished, fileLocks: settings.criuFileLocks, skipInFlight: settings.criuSkipInFlight },
      },
      parent,
    );

    // Checkpoints inside SSH unless the stack says rsyncd (then, with the transport gone, to the daemons in clear).
    const transport =
      settings.checkpointTransport === "ssh"
        ? new CheckpointTransport(name, { nodes: perHost.map(({ host, connection, rsync }) => ({ host, connection, dependsOn: [rsync] })), port: settings.transferPort }, parent)
        : undefined;

    const swarm = new SwarmCluster(name, { nodes: perHost.map(({ host, connection, engine }) => ({ host, connection, dependsOn: [engine], generation: generationOf(host.name) })) }, parent);
    this.swarmLeader = swarm.leaderAddress;
    this.swarmCa = swarm.swarmCa;

    for (const { host, connection, facts, tools } of base) {
      this.ready[host.name] = { host, connection, dependsOn: [facts, tools], generation: generationOf(host.name) };
      this.nodes[host.name] = { address: host.address, kernel: facts.kernel };
    }
    for (const { host, connection, facts, tools, engine, network, rsync, trust } of perHost) {
      this.ready[host.name] = { host, connection, dependsOn: [facts, tools, engine, network, rsync, criu, swarm, ...trust, ...(transport?.ready[host.name] ?? [])], docker: engine.provider, generation: generationOf(host.name) };
      this.nodes[host.name] = {
        address: host.address,
        kernel: facts.kernel,
        docker: engine.version,
        criu: criu.origins[host.name],
        rsync: rsync.url,
        swarmNodeId: swarm.nodeIds[host.name],
      };
    }
    this.registerOutputs({ nodes: this.nodes, swarmLeader: this.swarmLeader, identities: this.identities });
  }
}
