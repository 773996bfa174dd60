import { $ } from "zx";
import { pulumiEnv } from "./toolchain";

/** Runs the Pulumi CLI on one stack of one project folder, with the project's toolchain and backend. */
export class PulumiStack {
  constructor(
    readonly projectDir: string,
    readonly stack: string,
    private readonly extraEnv: Record<string, string> = {},
  ) {}

  /** Runs any pulumi subcommand on this stack. */
  run(args: string[], opts: { quiet?: boolean } = {}) {
    const env = { ...pulumiEnv(), ...this.extraEnv };
    const sh = $({ cwd: this.projectDir, env, quiet: opts.quiet ?? true, nothrow: false });
    return sh`pulumi ${args} --stack ${this.stack} --non-interactive --color never`;
  }

  /** Creates the stack when it does not exist yet. */
  async ensure(): Promise<void> {
    const env = { ...pulumiEnv(), ...this.extraEnv };
    const existing = await $({ cwd: this.projectDir, env, quiet: true })`pulumi stack ls --json`;
    const names = (JSON.parse(existing.stdout) as { name: string }[]).map((s) => s.name);
    if (!names.includes(this.stack)) {
      await $({ cwd: this.projectDir, env, quiet: true })`pulumi stack init ${this.stack} --non-interactive`;
    }
  }

  async setConfig(key: string, value: string, secret = false): Promise<void> {
    await this.run(["config", "set", key, value, ...(secret ? ["--secret"] : ["--plaintext"])]);
  }

  /**
   * `pulumi up`; returns the change summary printed at its end. With
   * continueOnError, resources independent of a failed one are still updated
   * (one unreachable host does not hold up the others); it still rejects.
   */
  async up(opts: { quiet?: boolean; continueOnError?: boolean } = {}): Promise<{ summary: Record<string, number>; output: string }> {
    const r = await this.run(["up", "--yes", "--skip-preview", "--suppress-progress", ...(opts.continueOnError ? ["--continue-on-error"] : [])], opts);
    return { summary: parseSummary(r.stdout), output: r.stdout };
  }

  async preview(): Promise<{ summary: Record<string, number>; output: string }> {
    const r = await this.run(["preview", "--suppress-progress"]);
    return { summary: parseSummary(r.stdout), output: r.stdout };
  }

  async outputs(opts: { showSecrets?: boolean } = {}): Promise<Record<string, unknown>> {
    const r = await this.run(["stack", "output", "--json", ...(opts.showSecrets ? ["--show-secrets"] : [])]);
    return JSON.parse(r.stdout);
  }

  async exportState(): Promise<string> {
    return (await this.run(["stack", "export"])).stdout;
  }

  async destroy(opts: { quiet?: boolean } = {}): Promise<void> {
    await this.run(["destroy", "--yes", "--skip-preview", "--suppress-progress"], opts);
  }

  /** Destroys the stack's resources and removes the stack itself, also when the destroy fails. */
  async remove(): Promise<void> {
    try {
      await this.destroy();
    } finally {
      await this.forget();
    }
  }

  /** Removes the stack and its state without touching its resources (for hosts that are gone). */
  async forget(): Promise<void> {
    const env = { ...pulumiEnv(), ...this.extraEnv };
    const existing = await $({ cwd: this.projectDir, env, quiet: true })`pulumi stack ls --json`;
    if ((JSON.parse(existing.stdout) as { name: string }[]).some((s) => s.name === this.stack)) {
      await this.run(["stack", "rm", "--yes", "--force"]);
    }
  }
}

/** Reads the "Resources:" block that `pulumi up`/`preview` print, e.g. { created: 2, unchanged: 1 }. */
export function parseSummary(text: string): Record<string, number> {
  const summary: Record<string, number> = {};
  const block = text.split(/^Resources:$/m)[1] ?? "";
  for (const m of block.matchAll(/^\s+[+~\-±]*\s*(\d+) (to )?([a-z][a-z -]*?)\s*$/gm)) {
    summary[m[3].replace(/ /g, "-")] = Number(m[1]);
  }
  return summary;
}
