import { existsSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { loadInventory, type Inventory } from "../../lib/config/inventory";
import { checkApplyFrom, checkoutOf } from "../../lib/gitops/checkout";
import { findDrift } from "../../lib/gitops/drift";
import { changeReport, reportMarkdown } from "../../lib/gitops/report";
import { progress, UsageError, UserError } from "../../lib/log";
import { PulumiError, PulumiStack } from "../../lib/pulumi";
import { projectRoot } from "../../lib/toolchain";

export const help = `Usage: edge-ha gitops <command> --stack NAME [options]

The fleet changes only through reviewed commits. For pipelines (examples/gitops/):
a pull request gets 'preview', its merge to main runs 'apply', a schedule runs 'drift'.

Commands:
  preview   what the checked-out commit would change, per host: Markdown for a review comment
            (--md FILE) and JSON (--json). Only operations, resource names and the names of the
            properties that change: never a value, so no secret. Exit 1 when the preview fails
            (a bad setting: its message is the output).
  apply     pulumi up, only from a clean checkout of the main branch (--branch); refuses
            otherwise, changing nothing. Two applies never run at once: the second is refused by
            the backend's lock and says so, or with --wait S waits up to S seconds for it.
  drift     what differs on the fleet from the stack and the inventory: resources Pulumi reads
            back (pulumi refresh --preview-only), and each swarm node's role and labels.
            Exit 0: no drift; 3: drift (listed); 1: it could not tell (the error says why).

Options:
  --stack NAME       the Pulumi stack (required)
  --project DIR      the Pulumi project (default: this checkout's edge-ha project)
  --md FILE          preview: also write the Markdown summary to FILE
  --branch NAME      apply: the branch changes come from (default: main)
  --wait S           apply: while another apply holds the stack's lock, wait up to S seconds (default 0)
  --json             print the result as JSON
  -h, --help         this text
`;

/** The exit code of a drift found (0: none, 1: an error). */
export const driftExitCode = 3;

/** The `edge-ha` subcommand group of this file. */
export async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      stack: { type: "string" },
      project: { type: "string", default: projectRoot },
      md: { type: "string" },
      branch: { type: "string", default: "main" },
      wait: { type: "string", default: "0" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  const [command, ...extra] = positionals;
  if (values.help || !command) return void process.stdout.write(help);
  if (extra.length) throw new UsageError(`unexpected arguments: ${extra.join(" ")}`);
  if (!["preview", "apply", "drift"].includes(command)) throw new UsageError(`unknown command "${command}"; expected preview, apply or drift`);
  if (!values.stack) throw new UsageError(`${command} needs --stack NAME`);
  const project = path.resolve(values.project!);
  if (!existsSync(path.join(project, "Pulumi.yaml"))) throw new UsageError(`--project: expected a folder with a Pulumi.yaml, found none in ${project}`);
  const stack = new PulumiStack(project, values.stack);
  if (!(await stack.exists())) throw new UserError(`stack ${values.stack} does not exist in the backend of ${project} (pulumi stack ls lists those that do)`);

  switch (command) {
    case "preview": {
      const inventory = await inventoryOf(stack);
      const checkout = await checkoutOf(project).catch(() => undefined);
      const out = await stack.run(["preview", "--json", "--suppress-progress"]).catch((err: unknown) => {
        // With --json, Pulumi's errors are in the JSON's diagnostics, not in lines of text.
        if (err instanceof PulumiError) throw new UserError(`the preview of stack ${stack.stack} failed: ${jsonErrors(err.output) || err.message}`);
        throw err;
      });
      const report = changeReport(out.stdout, stack.stack, inventory?.hosts.map((h) => h.name) ?? [], checkout?.commit);
      const markdown = reportMarkdown(report);
      if (values.md) writeFileSync(values.md, markdown);
      return void console.log(values.json ? JSON.stringify(report) : markdown.trimEnd());
    }
    case "apply": {
      const checkout = await checkoutOf(project);
      const wait = Number(values.wait);
      if (!Number.isInteger(wait) || wait < 0) throw new UsageError(`--wait: expected whole seconds from 0, found "${values.wait}"`);
      checkApplyFrom(checkout, values.branch!);
      const until = Date.now() + wait * 1000;
      for (;;) {
        try {
          const r = await stack.up();
          return void console.log(values.json ? JSON.stringify({ stack: stack.stack, commit: checkout.commit, summary: r.summary }) : `applied ${checkout.commit.slice(0, 12)} to stack ${stack.stack}: ${summaryText(r.summary)}`);
        } catch (err) {
          if (!(err instanceof PulumiError && /currently locked|locked by/i.test(err.output))) throw err;
          if (Date.now() >= until) {
            throw new UserError(`another apply of stack ${stack.stack} is running (the backend holds its lock): this one changed nothing; run it again once that one has ended${wait ? ` (waited ${wait} s)` : ", or give --wait S"} (a lock left by an apply that died: pulumi cancel --stack ${stack.stack})`);
          }
          progress(`another apply of stack ${stack.stack} holds its lock: waiting`);
          await new Promise((r) => setTimeout(r, 2000));
        }
      }
    }
    case "drift": {
      const inventory = await inventoryOf(stack);
      const report = await findDrift(stack, inventory);
      console.log(values.json ? JSON.stringify(report) : report.items.length ? `drift in stack ${stack.stack}:\n${report.items.map((i) => `  ${i.subject}: ${i.what}`).join("\n")}` : `no drift in stack ${stack.stack}`);
      if (report.items.length) process.exitCode = driftExitCode;
      return;
    }
  }
}

/** The stack's inventory (edge-ha:inventory, relative to the project), or undefined for a project that is not edge-ha's. */
async function inventoryOf(stack: PulumiStack): Promise<Inventory | undefined> {
  const r = await stack.run(["config", "get", "edge-ha:inventory"]).catch(() => undefined);
  const file = r?.stdout.trim();
  return file ? loadInventory(path.resolve(stack.projectDir, file)) : undefined;
}

/** The error diagnostics of a `pulumi … --json` run's output, without colours and stack frames ("" when none). */
export function jsonErrors(output: string): string {
  let diagnostics: { message?: string; severity?: string }[] = [];
  try {
    diagnostics = (JSON.parse(output) as { diagnostics?: typeof diagnostics }).diagnostics ?? [];
  } catch {
    return "";
  }
  return diagnostics
    .filter((d) => d.severity === "error" && d.message)
    .map((d) =>
      d
        .message!.replace(/\u001b\[[0-9;]*m/g, "")
        .split("\n")
        .filter((l) => l.trim() && !/^\s+at /.test(l))
        .map((l) => l.replace(/^error: /, ""))
        .join(" "),
    )
    .join("; ");
}

/** { created: 1, unchanged: 3 } as "created 1, unchanged 3". */
function summaryText(summary: Record<string, number>): string {
  return Object.entries(summary).map(([k, v]) => `${k} ${v}`).join(", ") || "nothing to do";
}
