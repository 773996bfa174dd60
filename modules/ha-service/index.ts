import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { componentScript } from "../../lib/host/shell";
import { allPorts, runArgsText, serviceAddress, type ServiceSpec } from "../../lib/ha/service-container";
import { HostCommand } from "../command";
import type { ClusterNode } from "../host-facts";

export interface HaServiceArgs {
  spec: ServiceSpec;
  /** Where the service starts. */
  primary: ClusterNode;
  /** Where its checkpoints are synced to, and where failover restores it. */
  standby: ClusterNode;
  /** Seconds between checkpoints. */
  syncInterval: number;
  /**
   * Seconds the standby's newest checkpoint may lag before the service is
   * paused until one arrives (host/edge-ha-sync's lag guard); none when unset.
   * A change restarts the sync loop, not the service.
   */
  maxLag?: number;
  /** The other hosts it may land on (the agents pick a new standby among them): removal clears them too. */
  others?: ClusterNode[];
  /**
   * Its virtual address (an address of the hosts' LAN that no host has): held
   * by whichever of these hosts runs it, moved with it (host/vip.sh).
   */
  vip?: pulumi.Input<string>;
  /**
   * Seconds a new version (changed settings: image, env, command...) has to
   * pass its health check after its start before it is rolled back (default 30).
   */
  readySeconds?: number;
}

/**
 * A service run as one container that CRIU can move: started on its primary,
 * checkpointed every interval without stopping and synced to its standby's
 * rsync daemon (lib/ha/replication), so that `migrate` can move it and
 * `failover` can restore it when its node dies.
 *
 * The declared primary is where it starts. Once `migrate` or `failover` has
 * moved it, `pulumi up` does not move it back or start a second copy: the
 * start adopts a running container and refuses a stopped one (a stopped copy
 * is what a moved service leaves behind), and the sync refuses a primary the
 * service no longer runs on. Set primary/standby to where it runs now to
 * manage it again; changing them otherwise starts it afresh (without state).
 */
export class HaService extends pulumi.ComponentResource {
  readonly primary: string;
  readonly standby: string;

  constructor(name: string, args: HaServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edge-ha:service:HaService", name, {}, opts);
    const { spec, primary, standby } = args;
    this.primary = primary.host.name;
    this.standby = standby.host.name;
    const service = spec.name;
    // A service's env may hold passwords: whatever it holds, it stays a secret in the stack's state.
    const secretIfEnv = (value: string): pulumi.Input<string> => (spec.env ? pulumi.secret(value) : value);
    // Its named volumes where it starts and where it fails over to, as @pulumi/docker volumes. Kept on
    // removal: they hold the service's data (a migration carries their content; docker makes them elsewhere).
    const volumes = (node: ClusterNode) =>
      (spec.volumes ?? []).map(
        (v) =>
          new docker.Volume(
            `${name}-${node.host.name}-${v.name}`,
            // A re-imaged host gets it anew (labels force a replacement); none at generation 0, as before.
            { name: v.name, labels: node.generation ? [{ label: "edge-ha.host-generation", value: String(node.generation) }] : undefined },
            { parent: this, provider: node.docker, dependsOn: node.dependsOn, retainOnDelete: true },
          ),
      );

    // New settings (an image, env, command, ports: RUN_ARGS) are an update, which rolls the new
    // version out where the service runs, gated by its health check, rolled back when it fails it
    // (rollout.sh). Stacks made before kept their old replacement triggers, unchanged from here on.
    const health = spec.health ?? { kind: "tcp" as const, port: spec.hostPort, intervalMs: 500, timeoutMs: 1000, retries: 1 };
    const started = new HostCommand(
      `${name}-start`,
      {
        connection: primary.connection,
        environment: {
          SERVICE: service,
          RUN_ARGS: secretIfEnv(runArgsText(spec)),
          IMAGE: spec.image,
          HOST_ADDRESS: primary.host.address,
          HEALTH_KIND: health.kind,
          HEALTH_PORT: health.kind === "command" ? "" : String(health.port),
          HEALTH_PATH: health.kind === "http" ? health.path : "",
          HEALTH_COMMAND: health.kind === "command" ? health.command.join("\n") : "",
          HEALTH_TIMEOUT_MS: String(health.timeoutMs),
          HEALTH_INTERVAL_MS: String(health.intervalMs),
          READY_SECONDS: String(args.readySeconds ?? 30),
        },
        create: componentScript(__dirname, "start.sh"),
        update: componentScript(__dirname, "rollout.sh"),
        delete: componentScript(__dirname, "remove.sh", "delete"),
      },
      { parent: this, dependsOn: [...(primary.dependsOn ?? []), ...volumes(primary)], ignoreChanges: ["triggers"] },
    );

    // The standby holds synced checkpoints, and the service after a failover: both go when the service does.
    const standbyHost = new HostCommand(
      `${name}-standby`,
      { connection: standby.connection, environment: { SERVICE: service }, create: ":", delete: componentScript(__dirname, "remove.sh", "delete") },
      { parent: this, dependsOn: [...(standby.dependsOn ?? []), ...volumes(standby)] },
    );
    // A new interval or standby is an update (sync.sh restarts the loop), not a replacement: a
    // replacement runs its delete on the old primary, which may be gone for good or re-imaged (the
    // old host key is refused). The loop on a host the service left was stopped by whatever moved
    // it (migrate, the agents).
    const sync = new HostCommand(
      `${name}-sync`,
      {
        connection: primary.connection,
        environment: {
          SERVICE: service,
          SPEC_JSON: secretIfEnv(JSON.stringify(spec)),
          RUN_ARGS: secretIfEnv(runArgsText(spec)),
          STANDBY_NAME: standby.host.name,
          STANDBY_ADDRESS: standby.host.address,
          INTERVAL_MS: String(Math.round(args.syncInterval * 1000)),
          MAX_LAG_MS: String(Math.round((args.maxLag ?? 0) * 1000)),
        },
        create: componentScript(__dirname, "sync.sh"),
        delete: componentScript(__dirname, "stop-sync.sh", "delete"),
      },
      { parent: this, dependsOn: [started] },
    );
    // A failover may have put it (or its checkpoints) on any host of its architecture: its removal
    // clears them all, or a copy left running would hold the service network there. One resource
    // per host whatever its role, so that a host only changing role (an "other" made the standby
    // or the primary, after a failover moved the service there) keeps it: named per role, its
    // delete cleared the new standby's checkpoints, and would stop a service running there.
    // Deleted before the start, the standby and the sync (which depend on nothing of it), so
    // that no two removals run at once on a host.
    for (const node of [primary, standby, ...(args.others ?? [])]) {
      new HostCommand(
        `${name}-${node.host.name}-cleanup`,
        { connection: node.connection, environment: { SERVICE: service }, create: ":", delete: componentScript(__dirname, "remove.sh", "delete") },
        { parent: this, dependsOn: [...(node.dependsOn ?? []), started, standbyHost, sync], aliases: [{ name: `${name}-${node.host.name}-leftovers` }] },
      );
    }

    // Its address, known to every host it may run on, and held where it runs. Removing the setting
    // (or the service) removes these, and their delete drops the address.
    if (args.vip !== undefined) {
      for (const node of [primary, standby, ...(args.others ?? [])]) {
        new HostCommand(
          `${name}-${node.host.name}-vip`,
          {
            connection: node.connection,
            environment: {
              SERVICE: service,
              VIP: args.vip,
              // Whose packets leave from the address (host/vip.sh vip_snat): the container's, from each port it publishes.
              VIP_PORTS: allPorts(spec).map((p) => `${p.protocol} ${serviceAddress(spec.hostPort)} ${p.container} ${p.host}`).join("\n"),
            },
            create: componentScript(__dirname, "vip.sh"),
            delete: componentScript(__dirname, "vip-remove.sh", "delete"),
          },
          { parent: this, dependsOn: node === primary ? [started] : node.dependsOn },
        );
      }
    }
    this.registerOutputs({ primary: this.primary, standby: this.standby });
  }
}
