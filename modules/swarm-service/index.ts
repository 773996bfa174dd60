import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { allPorts, serviceLabel, type ServiceSpec } from "../../lib/ha/service-container";
import { componentScript } from "../../lib/host/shell";
import { HostCommand } from "../command";
import type { ClusterNode } from "../host-facts";

export interface SwarmServiceArgs {
  spec: ServiceSpec;
  /** The image as the swarm should keep it (ServiceImage.pinned); spec.image when not given. */
  image?: pulumi.Input<string>;
  /** The registry login the swarm's nodes pull the image with, when its registry asks for one. */
  login?: { address: string; username: string; password: pulumi.Input<string> };
  /** Host folders mounted into every replica (swarm services may have them; criu ones may not). */
  binds?: { source: string; target: string }[];
  replicas: number;
  /**
   * Seconds each updated replica has to run (and pass its health check, when
   * it has one) before swarm counts the update failed and rolls the service
   * back to its previous spec (default 30).
   */
  readySeconds?: number;
  /** A manager of the swarm (with its Docker provider), which creates and updates the service. */
  manager: ClusterNode;
  /** Which swarm it is (SwarmCluster.swarmCa): when it changes, the service is checked to be in it. */
  swarmCa?: pulumi.Input<string>;
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
    const readySeconds = args.readySeconds ?? 30;
    if (!manager.docker) throw new pulumi.ResourceError(`swarm service ${spec.name}: the manager ${manager.host.name} has no Docker provider`, this);
    this.service = new docker.Service(
      `${name}-service`,
      {
        name: spec.name,
        labels: [{ label: serviceLabel, value: spec.name }],
        taskSpec: {
          containerSpec: {
            image: args.image ?? spec.image,
            // Only what is set: an absent key and an empty one differ to the provider.
            ...(spec.command ? { args: spec.command } : {}),
            // Its values may be passwords: a secret in the stack's state, whatever they hold.
            ...(spec.env ? { env: pulumi.secret(spec.env) } : {}),
            ...(spec.user ? { user: spec.user } : {}),
            mounts: [
              ...(spec.volumes ?? []).map((v) => ({ type: "volume", source: v.name, target: v.target })),
              ...(args.binds ?? []).map((b) => ({ type: "bind", source: b.source, target: b.target })),
              ...(spec.tmpfs ?? []).map((t) => ({ type: "tmpfs", target: t.split(":")[0] })),
            ],
            // Swarm runs it in each replica and replaces those that fail it (a command only: settings refuse the others).
            ...(spec.health?.kind === "command"
              ? { healthcheck: { tests: ["CMD", ...spec.health.command], interval: `${spec.health.intervalMs}ms`, timeout: `${spec.health.timeoutMs}ms`, retries: spec.health.retries } }
              : {}),
          },
          resources: spec.memory || spec.cpus ? { limits: { memoryBytes: spec.memory ? bytes(spec.memory) : undefined, nanoCpus: spec.cpus ? Math.round(spec.cpus * 1e9) : undefined } } : undefined,
        },
        mode: { replicated: { replicas } },
        // A new image or setting: swarm's rolling update, one replica at a time, each watched
        // readySeconds (a replica with a health check counts as running once it passed it);
        // a replica that fails rolls the service back to the spec before. Stop-first: the ports
        // are published in host mode, and a node cannot bind one twice. pulumi up waits for the
        // service to converge and says so when swarm rolled it back. Written as the provider reads
        // them back from the engine ("0.0", "1m30s"): another spelling is a diff at every up, and
        // each such update restarts every replica.
        updateConfig: { parallelism: 1, order: "stop-first", failureAction: "rollback", monitor: goDuration(readySeconds), maxFailureRatio: "0.0" },
        rollbackConfig: { parallelism: 1, order: "stop-first", failureAction: "pause", monitor: goDuration(readySeconds), maxFailureRatio: "0.0" },
        convergeConfig: { delay: "1s", timeout: `${Math.ceil((replicas * (readySeconds + 10) + 60) / 60)}m` },
        ...(args.login ? { auth: { serverAddress: args.login.address, username: args.login.username, password: args.login.password } } : {}),
        endpointSpec: { ports: allPorts(spec).map((p) => ({ targetPort: p.container, publishedPort: p.host, publishMode: "host", protocol: p.protocol })) },
      },
      // The name is the service's identity in the swarm: a new one can only exist once the old one is gone.
      { parent: this, provider: manager.docker, dependsOn: manager.dependsOn, deleteBeforeReplace: true },
    );
    if (args.swarmCa !== undefined) {
      new HostCommand(
        `${name}-in-swarm`,
        { connection: manager.connection, environment: { SERVICE: spec.name, SWARM_CA: args.swarmCa }, create: componentScript(__dirname, "in-swarm.sh") },
        { parent: this, dependsOn: [this.service] },
      );
    }
    this.registerOutputs({});
  }
}

/** A size such as 256m in bytes. */
function bytes(size: string): number {
  const m = /^(\d+)([bkmg]?)$/.exec(size)!;
  return Number(m[1]) * { "": 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]]!;
}

/**
 * Seconds as the Docker provider writes a duration it reads back from the
 * engine (Go's time.Duration.String without trailing zero units: 30s, 1m,
 * 1m30s, 1h, 1h0m1s).
 */
export function goDuration(seconds: number): string {
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  if (h === 0 && m === 0) return `${s}s`;
  if (s !== 0) return h ? `${h}h${m}m${s}s` : `${m}m${s}s`;
  if (h === 0) return `${m}m`;
  return m ? `${h}h${m}m` : `${h}h`;
}
