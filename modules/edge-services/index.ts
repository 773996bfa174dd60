import * as pulumi from "@pulumi/pulumi";
import { serviceHosts, type Arch, type Inventory } from "../../lib/config/inventory";
import type { PreparedImage } from "../../lib/ha/images";
import { serviceSpec } from "../../lib/ha/service-container";
import type { RegistrySettings, ServiceSettings } from "../../lib/config/settings";
import { registryLogins } from "../docker-engine";
import { HaService } from "../ha-service";
import type { ClusterNode } from "../host-facts";
import { ServiceImage } from "../service-image";
import { SwarmService } from "../swarm-service";

export interface EdgeServicesArgs {
  inventory: Inventory;
  services: ServiceSettings[];
  /** The cluster's hosts, ready for services (EdgeCluster.ready). */
  nodes: Record<string, ClusterNode>;
  /** The registries with their logins (settings.registries): a swarm service's pull needs the login its manager has. */
  registries?: RegistrySettings[];
  /** Each service's image by "<service>-<arch>" (lib/ha/images prepareImage), for every architecture it may run on. */
  images: Record<string, PreparedImage>;
  /** Which swarm the cluster is (EdgeCluster.swarmCa): swarm services are checked to be in it when it changes. */
  swarmCa?: pulumi.Input<string>;
}

/** What `edge-ha:services` declares: images on the hosts that run them, CRIU-managed and swarm services. */
export interface ServiceOutputs {
  mode: "criu" | "swarm";
  image: string;
  port: number;
  containerPort: number;
  primary?: string;
  standby?: string;
  syncInterval?: number;
  /** Its maxLag (s), when it has one: its copy pauses while its standby's newest checkpoint is older. */
  maxLag?: number;
  replicas?: number;
  /** criu: its virtual address, held by the host that runs it. */
  vip?: string;
}

/** The stack's highly available services, with their images distributed to the hosts that may run them. */
export class EdgeServices extends pulumi.ComponentResource {
  readonly services: Record<string, ServiceOutputs> = {};

  constructor(name: string, args: EdgeServicesArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edge-ha:service:EdgeServices", name, {}, opts);
    const parent = { parent: this };
    const byArch = new Map<Arch, ClusterNode[]>();
    for (const host of serviceHosts(args.inventory)) byArch.set(host.arch, [...(byArch.get(host.arch) ?? []), args.nodes[host.name]]);

    // Every host gets every image it may run: a migration or failover can land anywhere. One per image
    // and architecture, however many services use it.
    const distributed = new Map<string, ServiceImage>();
    const imageFor = (service: string, arch: Arch) => {
      const prepared = args.images[`${service}-${arch}`];
      if (!prepared) throw new pulumi.ResourceError(`expected the image of ${service} for ${arch} (lib/ha/images prepareImage, for every architecture it may run on), found none`, this);
      const key = `${prepared.ref}-${arch}`;
      if (!distributed.has(key)) distributed.set(key, new ServiceImage(`${name}-${prepared.ref.replace(/[/:@]/g, "-")}-${arch}`, { image: prepared, nodes: byArch.get(arch)! }, parent));
      return distributed.get(key)!;
    };

    for (const s of args.services) {
      if (s.mode === "criu") {
        const primary = args.nodes[s.primary!];
        const image = imageFor(s.name, primary.host.arch);
        const withImage = (n: ClusterNode): ClusterNode => ({ ...n, dependsOn: [...(n.dependsOn ?? []), ...image.ready] });
        const others = (byArch.get(primary.host.arch) ?? []).filter((n) => n.host.name !== s.primary && n.host.name !== s.standby);
        new HaService(
          s.name,
          { spec: serviceSpec(s, image.ref), primary: withImage(primary), standby: withImage(args.nodes[s.standby!]), others, syncInterval: s.syncInterval, maxLag: s.maxLag, vip: s.vip, readySeconds: s.readySeconds },
          parent,
        );
        this.services[s.name] = { mode: "criu", image: image.ref, port: s.port, containerPort: s.containerPort, primary: s.primary, standby: s.standby, syncInterval: s.syncInterval, ...(s.maxLag !== undefined ? { maxLag: s.maxLag } : {}), ...(s.vip ? { vip: s.vip } : {}) };
      } else {
        const manager = args.nodes[args.inventory.hosts.find((h) => h.roles.includes("manager"))!.name];
        const archs = [...byArch.keys()];
        if (archs.length > 1) throw new pulumi.ResourceError(`swarm service ${s.name}: expected a swarm of one architecture, found ${archs.join(" and ")} hosts; declare it mode: criu, or keep the swarm to one architecture`, this);
        const image = imageFor(s.name, archs[0]);
        // The swarm's workers pull too: they get the login with the task (docker service create --with-registry-auth).
        const login = s.image.kind === "registry" ? registryLogins({ registries: args.registries ?? [] }).find((l) => (s.image as { ref: string }).ref.startsWith(`${l.address}/`)) : undefined;
        new SwarmService(
          s.name,
          { spec: serviceSpec(s, image.ref), image: image.pinned, login, binds: s.binds, replicas: s.replicas, readySeconds: s.readySeconds, manager: { ...manager, dependsOn: [...(manager.dependsOn ?? []), ...image.ready] }, swarmCa: args.swarmCa },
          parent,
        );
        this.services[s.name] = { mode: "swarm", image: image.ref, port: s.port, containerPort: s.containerPort, replicas: s.replicas };
      }
    }
    this.registerOutputs({ services: this.services });
  }
}
