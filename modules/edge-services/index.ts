import * as pulumi from "@pulumi/pulumi";
import { serviceHosts, type Arch, type Inventory } from "../../lib/config/inventory";
import { type ServiceImage as BuiltImage } from "../../lib/ha/images";
import type { ServiceSettings } from "../../lib/config/settings";
import { HaService } from "../ha-service";
import type { ClusterNode } from "../host-facts";
import { ServiceImage } from "../service-image";
import { SwarmService } from "../swarm-service";
import { demoServices } from "../../lib/config/service-spec";

export interface EdgeServicesArgs {
  inventory: Inventory;
  services: ServiceSettings[];
  /** The cluster's hosts, ready for services (EdgeCluster.ready). */
  nodes: Record<string, ClusterNode>;
  /** Built images by "<image>-<arch>" (lib/ha/images buildServiceImage), for every image and architecture the services need. */
  images: Record<string, BuiltImage>;
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
  replicas?: number;
}

/** The stack's highly available services, with their images distributed to the hosts that may run them. */
export class EdgeServices extends pulumi.ComponentResource {
  readonly services: Record<string, ServiceOutputs> = {};

  constructor(name: string, args: EdgeServicesArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edge-ha:service:EdgeServices", name, {}, opts);
    const parent = { parent: this };
    const byArch = new Map<Arch, ClusterNode[]>();
    for (const host of serviceHosts(args.inventory)) byArch.set(host.arch, [...(byArch.get(host.arch) ?? []), args.nodes[host.name]]);

    // Every host gets every image it may run: a migration or failover can land anywhere.
    const distributed = new Map<string, ServiceImage>();
    const imageFor = (image: string, arch: Arch) => {
      const key = `${image}-${arch}`;
      const built = args.images[key];
      if (!built) throw new pulumi.ResourceError(`expected a built image ${key} (lib/ha/images buildServiceImage, for every image and architecture the services need), found none`, this);
      if (!distributed.has(key)) distributed.set(key, new ServiceImage(`${name}-${key}`, { image: built, nodes: byArch.get(arch)! }, parent));
      return distributed.get(key)!;
    };

    for (const s of args.services) {
      const containerPort = demoServices[s.image].port;
      if (s.mode === "criu") {
        const primary = args.nodes[s.primary!];
        const image = imageFor(s.image, primary.host.arch);
        const withImage = (n: ClusterNode): ClusterNode => ({ ...n, dependsOn: [...(n.dependsOn ?? []), image] });
        new HaService(
          s.name,
          {
            spec: { name: s.name, image: image.ref, containerPort, hostPort: s.port, volumes: s.volumes },
            primary: withImage(primary),
            standby: withImage(args.nodes[s.standby!]),
            syncInterval: s.syncInterval,
          },
          parent,
        );
        this.services[s.name] = { mode: "criu", image: image.ref, port: s.port, containerPort, primary: s.primary, standby: s.standby, syncInterval: s.syncInterval };
      } else {
        const manager = args.nodes[args.inventory.hosts.find((h) => h.roles.includes("manager"))!.name];
        const archs = [...byArch.keys()];
        if (archs.length > 1) throw new pulumi.ResourceError(`swarm service ${s.name}: expected a swarm of one architecture, found ${archs.join(" and ")} hosts; declare it mode: criu, or keep the swarm to one architecture`, this);
        const image = imageFor(s.image, archs[0]);
        new SwarmService(
          s.name,
          { spec: { name: s.name, image: image.ref, containerPort, hostPort: s.port, volumes: s.volumes }, replicas: s.replicas, manager: { ...manager, dependsOn: [...(manager.dependsOn ?? []), image] } },
          parent,
        );
        this.services[s.name] = { mode: "swarm", image: image.ref, port: s.port, containerPort, replicas: s.replicas };
      }
    }
    this.registerOutputs({ services: this.services });
  }
}
