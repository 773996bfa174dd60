import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import * as path from "node:path";
import { hostStateDir } from "../../lib/host/paths";
import { componentScript } from "../../lib/host/shell";
import type { PreparedImage } from "../../lib/ha/images";
import { CopyToHost, HostCommand, stagingPath } from "../command";
import type { ClusterNode } from "../host-facts";

export interface ServiceImageArgs {
  /** The image as made ready on this machine (lib/ha/images prepareImage): an archive to load or a reference to pull. */
  image: PreparedImage;
  /** Hosts that get it (all of one architecture: the image's). */
  nodes: ClusterNode[];
}

/**
 * An image on hosts' Docker engines. An archive (docker save format) is
 * copied from this machine (@pulumi/command's CopyToRemote), checked against
 * its sha256 and loaded where the engine lacks its image id; removal untags
 * it where no container uses it. A registry reference is pulled by each
 * host's engine (@pulumi/docker's RemoteImage), which the registry must let
 * in (README, "Your own service").
 */
export class ServiceImage extends pulumi.ComponentResource {
  readonly ref: string;
  /**
   * The reference pinned to what the hosts have: a pulled image's digest
   * (swarm resolves a tag to one and keeps that, so a tag alone would be a
   * change at every run), an archive's reference as it is.
   */
  readonly pinned: pulumi.Output<string>;
  /** What a service that uses the image waits for. */
  readonly ready: pulumi.Resource[] = [];

  constructor(name: string, args: ServiceImageArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edge-ha:service:ServiceImage", name, {}, opts);
    const { image } = args;
    this.ref = image.ref;
    let pinned: pulumi.Output<string> | undefined;
    for (const node of args.nodes) {
      if (image.kind === "pull") {
        if (!node.docker) throw new pulumi.ResourceError(`expected a Docker provider for ${node.host.name} (EdgeCluster.ready), found none`, this);
        // Removed with the stack (services go first); forced, as untag.sh does, past stopped containers such as old swarm tasks.
        const pulled = new docker.RemoteImage(`${name}-${node.host.name}`, { name: image.ref, keepLocally: false, forceRemove: true }, { parent: this, provider: node.docker, dependsOn: node.dependsOn });
        pinned ??= pulled.repoDigest;
        this.ready.push(pulled);
        continue;
      }
      const remote = stagingPath(node.host, `${hostStateDir}/images/${path.basename(image.archive)}`);
      const copied = new CopyToHost(`${name}-${node.host.name}-archive`, { source: image.archive, connection: node.connection, remotePath: remote }, { parent: this, dependsOn: node.dependsOn });
      this.ready.push(
        new HostCommand(
          `${name}-${node.host.name}`,
          {
            connection: node.connection,
            triggers: [image.ref, image.id],
            environment: { REF: image.ref, ID: image.id, ARCHIVE: remote, SHA256: image.sha256 },
            create: componentScript(__dirname, "load.sh"),
            delete: componentScript(__dirname, "untag.sh", "delete"),
          },
          { parent: this, dependsOn: [copied] },
        ),
      );
    }
    this.pinned = pinned ?? pulumi.output(image.ref);
    this.registerOutputs({ ref: this.ref, pinned: this.pinned });
  }
}
