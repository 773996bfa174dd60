import * as pulumi from "@pulumi/pulumi";
import * as path from "node:path";
import { hostStateDir } from "../../lib/host/paths";
import { componentScript } from "../../lib/host/shell";
import type { ServiceImage as BuiltImage } from "../../lib/ha/images";
import { CopyToHost, HostCommand } from "../command";
import type { ClusterNode } from "../host-facts";

export interface ServiceImageArgs {
  /** The image as built on this machine (lib/ha/images): reference, root file system tarball, import changes. */
  image: BuiltImage;
  /** Hosts that get it (all of one architecture: the image's). */
  nodes: ClusterNode[];
}

/**
 * An image on hosts' Docker engines without a registry: its root file system
 * is copied from this machine (@pulumi/command's CopyToRemote), checked
 * against its sha256 and `docker import`ed. The
 * reference is tagged by content, so an unchanged image is never copied again.
 * Removal untags it where no container uses it.
 */
export class ServiceImage extends pulumi.ComponentResource {
  readonly ref: string;

  constructor(name: string, args: ServiceImageArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edge-ha:service:ServiceImage", name, {}, opts);
    const { image } = args;
    this.ref = image.ref;
    const remoteTar = `${hostStateDir}/images/${path.basename(image.rootfs)}`;
    for (const node of args.nodes) {
      const copied = new CopyToHost(
        `${name}-${node.host.name}-rootfs`,
        { source: image.rootfs, connection: node.connection, remotePath: remoteTar },
        { parent: this, dependsOn: node.dependsOn },
      );
      new HostCommand(
        `${name}-${node.host.name}`,
        {
          connection: node.connection,
          triggers: [image.ref],
          environment: { REF: image.ref, TARBALL: remoteTar, SHA256: image.sha256, CHANGES: image.changes.join("\n") },
          create: componentScript(__dirname, "import.sh"),
          delete: componentScript(__dirname, "untag.sh", "delete"),
        },
        { parent: this, dependsOn: [copied] },
      );
    }
    this.registerOutputs({ ref: this.ref });
  }
}
