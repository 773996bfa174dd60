import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";

/**
 * A secret generated once on this machine (`local.Command`) and kept in the
 * stack's state, encrypted: it stays the same on every later `up`.
 */
export class GeneratedSecret extends pulumi.ComponentResource {
  readonly value: pulumi.Output<string>;

  constructor(name: string, args: { length?: number } = {}, opts?: pulumi.ComponentResourceOptions) {
    super("edge-ha:secret:GeneratedSecret", name, {}, opts);
    const length = args.length ?? 32;
    // base64url of random bytes: safe in config files and shell words.
    const made = new command.local.Command(
      `${name}-value`,
      {
        create: `head -c ${length * 2} /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=' | cut -c1-${length}`,
        logging: "none",
        addPreviousOutputInEnv: false,
      },
      { parent: this, additionalSecretOutputs: ["stdout"] },
    );
    this.value = pulumi.secret(made.stdout);
    this.registerOutputs({ value: this.value });
  }
}
