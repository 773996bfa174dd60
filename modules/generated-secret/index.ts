import * as pulumi from "@pulumi/pulumi";

/*
 * A random secret made once and kept in the stack's state (encrypted), like
 * @pulumi/random's RandomPassword, whose provider plugin cannot be had here.
 */
const provider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: { length: number }) {
    const crypto = require("node:crypto") as typeof import("node:crypto");
    // base64url of random bytes: safe in config files and shell words.
    const value = crypto.randomBytes(Math.ceil((inputs.length * 3) / 4)).toString("base64url").slice(0, inputs.length);
    return { id: crypto.randomBytes(8).toString("hex"), outs: { length: inputs.length, value } };
  },
  async diff(_id: string, olds: { length: number }, news: { length: number }) {
    const changes = olds.length !== news.length;
    return { changes, replaces: changes ? ["length"] : [] };
  },
};

export interface GeneratedSecretArgs {
  /** Characters (default 32). */
  length?: number;
}

export class GeneratedSecret extends pulumi.dynamic.Resource {
  declare readonly value: pulumi.Output<string>;

  constructor(name: string, args: GeneratedSecretArgs = {}, opts?: pulumi.CustomResourceOptions) {
    super(provider, name, { length: args.length ?? 32, value: undefined }, { ...opts, additionalSecretOutputs: ["value"] }, "edge-ha", "GeneratedSecret");
  }
}
