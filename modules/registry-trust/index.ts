import * as pulumi from "@pulumi/pulumi";
import { componentScript } from "../../lib/host/shell";
import { HostCommand, type HostConnection } from "../command";

export interface RegistryTrustArgs {
  connection: pulumi.Input<HostConnection>;
  /** The registry, as images name it: HOST:PORT. */
  address: string;
  /** Its CA certificate (PEM): the registry's TLS certificate must be signed by it. */
  caPem: string;
}

/**
 * A host's Docker engine trusting a private registry by its CA, as Docker
 * documents for a self-signed registry (certs.d), so that hosts pull from it
 * over TLS without insecure-registries. Removal takes only that file.
 */
export class RegistryTrust extends pulumi.ComponentResource {
  constructor(name: string, args: RegistryTrustArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edge-ha:node:RegistryTrust", name, {}, opts);
    new HostCommand(
      `${name}-ca`,
      {
        connection: args.connection,
        environment: { ADDRESS: args.address, CA_PEM: args.caPem },
        create: componentScript(__dirname, "install.sh"),
        delete: componentScript(__dirname, "remove.sh", "delete"),
      },
      { parent: this },
    );
    this.registerOutputs({});
  }
}
