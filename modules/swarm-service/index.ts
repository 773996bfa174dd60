import * as pulumi from "@pulumi/pulumi";
import { hostScript } from "../../lib/remote-shell";
import { serviceLabel, type ServiceSpec } from "../../lib/service-container";
import { RemoteCommand } from "../command";
import type { ClusterNode } from "../host-facts";

export interface SwarmServiceArgs {
  spec: ServiceSpec;
  replicas: number;
  /** A manager of the swarm, which creates and updates the service. */
  manager: ClusterNode;
}

/**
 * The swarm baseline: the same image as a replicated swarm service. Ports are
 * published in host mode (the lab's kernel has no IPVS for the ingress
 * routing mesh); clients reach it through an endpoint that knows the nodes.
 * Swarm restarts lost replicas elsewhere, but each replica has its own state.
 */
export class SwarmService extends pulumi.ComponentResource {
  constructor(name: string, args: SwarmServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edge-ha:service:SwarmService", name, {}, opts);
    const { spec, replicas } = args;
    const mounts = (spec.volumes ?? []).map((v) => ` --mount type=volume,src=${v.name},dst=${v.target}`).join("");
    new RemoteCommand(
      `${name}-service`,
      {
        connection: args.manager.connection,
        triggers: [spec, replicas],
        create: hostScript(`
if docker service inspect ${spec.name} >/dev/null 2>&1; then
  docker service update --quiet --detach --no-resolve-image --image ${spec.image} --replicas ${replicas} ${spec.name} >/dev/null
else
  docker service create --quiet --detach --no-resolve-image --name ${spec.name} --label ${serviceLabel}=${spec.name} \\
    --replicas ${replicas} --publish mode=host,target=${spec.containerPort},published=${spec.hostPort}${mounts} ${spec.image} >/dev/null
fi`),
        delete: hostScript(`docker service rm ${spec.name} >/dev/null 2>&1 || true`),
      },
      { parent: this, dependsOn: args.manager.dependsOn },
    );
    this.registerOutputs({});
  }
}
