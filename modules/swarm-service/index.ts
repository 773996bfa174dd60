import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { serviceLabel, type ServiceSpec } from "../../lib/ha/service-container";
import type { ClusterNode } from "../host-facts";

export interface SwarmServiceArgs {
  spec: ServiceSpec;
  replicas: number;
  /** A manager of the swarm (with its Docker provider), which creates and updates the service. */
  manager: ClusterNode;
}

/**
 * The swarm baseline: the same image as a replicated swarm service, a
 * @pulumi/docker `Service` on a manager's engine. Ports are published in host
 * mode (the lab's kernel has no IPVS for the ingress routing mesh); clients
 * reach it through an endpoint that knows the nodes. Swarm restarts lost
 * replicas elsewhere, but each replica has its own state.
 */
export class SwarmService extends pulumi.ComponentResource {
  readonly service: docker.Service;

  constructor(name: string, args: SwarmServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edge-ha:service:SwarmService", name, {}, opts);
    const { spec, replicas, manager } = args;
    if (!manager.docker) throw new pulumi.ResourceError(`swarm service ${spec.name}: the manager ${manager.host.name} has no Docker provider`, this);
    this.service = new docker.Service(
      `${name}-service`,
      {
        name: spec.name,
        labels: [{ label: serviceLabel, value: spec.name }],
        taskSpec: {
          containerSpec: {
            image: spec.image,
            mounts: (spec.volumes ?? []).map((v) => ({ type: "volume", source: v.name, target: v.target })),
          },
        },
        mode: { replicated: { replicas } },
        endpointSpec: { ports: [{ targetPort: spec.containerPort, publishedPort: spec.hostPort, publishMode: "host", protocol: "tcp" }] },
      },
      // The name is the service's identity in the swarm: a new one can only exist once the old one is gone.
      { parent: this, provider: manager.docker, dependsOn: manager.dependsOn, deleteBeforeReplace: true },
    );
    this.registerOutputs({});
  }
}
