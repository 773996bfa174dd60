import { mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { $, ProcessOutput } from "zx";
import { UserError } from "./log";
import { pulumiEnv, toolsDir } from "./toolchain";

/**
 * A pulumi run that failed, said in one message: which run, the errors
 * Pulumi reported (its "error:" lines, once each), and where its whole
 * output was saved. `output` holds that output for callers that read it.
 */
export class PulumiError extends UserError {
  override name = "PulumiError";
  constructor(
    readonly run: string,
    readonly output: string,
    readonly logFile: string,
  ) {
    super(`${run} failed: ${PulumiError.errorsOf(output)} (whole output: ${logFile})`);
  }

  /**
   * Pulumi's own error lines (from its Diagnostics, when it printed them),
   * with the "- ..." lines of a list that follows one and the output a host
   * command printed after its "running ...:" line, without the engine's
   * boilerplate, at most five.
   */
  static errorsOf(output: string): string {
    const all = output.split("\n");
    const diagnostics = all.findIndex((l) => l.trim() === "Diagnostics:");
    const lines: string[] = [];
    const indent = (line: string) => line.length - line.trimStart().length;
    let errorIndent = -1; // of the error line a list or output may follow; -1 when none does
    let saysMore = false; // the error line ends with ":", what follows at its indent is its text
    for (const raw of diagnostics >= 0 ? all.slice(diagnostics + 1) : all) {
      const l = raw.trim();
      if (/(^|\s)error: /.test(l)) {
        errorIndent = -1;
        if (/error: (update|preview|destroy) failed$/.test(l)) continue;
        lines.push(l.replace(/^.*?error: /, ""));
        errorIndent = indent(raw);
        saysMore = l.endsWith(":");
      } else if (errorIndent >= 0 && l.startsWith("- ") && indent(raw) > errorIndent) lines[lines.length - 1] += ` ${l}`;
      else if (errorIndent >= 0 && saysMore && l !== "" && indent(raw) >= errorIndent) lines[lines.length - 1] += `\n  ${raw.slice(errorIndent)}`;
      else errorIndent = -1;
    }
    const unique = [...new Set(lines)];
    if (unique.length === 0) return output.trim().split("\n").slice(-1)[0] || "no output";
    return unique.slice(0, 5).join("; ") + (unique.length > 5 ? `; and ${unique.length - 5} more` : "");
  }
}

/** Runs the Pulumi CLI on one stack of one project folder, with the project's toolchain and backend. */
export class PulumiStack {
  constructor(
    readonly projectDir: string,
    readonly stack: string,
    private readonly extraEnv: Record<string, string> = {},
  ) {}

  /** Runs any pulumi subcommand on this stack; a failure rejects with a PulumiError. */
  async run(args: string[], opts: { quiet?: boolean } = {}): Promise<ProcessOutput> {
    const env = { ...pulumiEnv(), ...this.extraEnv };
    const sh = $({ cwd: this.projectDir, env, quiet: opts.quiet ?? true, nothrow: false });
    try {
      return await sh`pulumi ${args} --stack ${this.stack} --non-interactive --color never`;
    } catch (err) {
      if (!(err instanceof ProcessOutput)) throw err;
      const logFile = path.join(toolsDir, "logs", `pulumi-${this.stack}-${args[0]}.log`);
      mkdirSync(path.dirname(logFile), { recursive: true });
      const output = err.stdout + err.stderr;
      writeFileSync(logFile, output);
      throw new PulumiError(`pulumi ${args.slice(0, args[0] === "stack" || args[0] === "config" ? 2 : 1).join(" ")} --stack ${this.stack}`, output, logFile);
    }
  }

  /** Whether the stack exists in the backend. */
  async exists(): Promise<boolean> {
    const env = { ...pulumiEnv(), ...this.extraEnv };
    const existing = await $({ cwd: this.projectDir, env, quiet: true })`pulumi stack ls --json`;
    return (JSON.parse(existing.stdout) as { name: string }[]).some((s) => s.name === this.stack);
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

  /** `pulumi refresh`: the stack's record made to match what exists (what is gone is dropped). */
  async refresh(opts: { quiet?: boolean } = {}): Promise<{ summary: Record<string, number>; output: string }> {
    const r = await this.run(["refresh", "--yes", "--skip-preview", "--suppress-progress"], opts);
    return { summary: parseSummary(r.stdout), output: r.stdout };
  }

  /** `pulumi preview`; with diff, its output details every change. */
  async preview(opts: { diff?: boolean } = {}): Promise<{ summary: Record<string, number>; output: string }> {
    const r = await this.run(["preview", "--suppress-progress", ...(opts.diff ? ["--diff"] : [])]);
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

  /**
   * Removes the stack and its state without touching its resources (for
   * hosts that are gone); with keepConfig, its stacks/Pulumi.<stack>.yaml stays.
   */
  async forget(opts: { keepConfig?: boolean } = {}): Promise<void> {
    if (await this.exists()) {
      await this.run(["stack", "rm", "--yes", "--force", ...(opts.keepConfig ? ["--preserve-config"] : [])]);
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
