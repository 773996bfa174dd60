import { runMain, UsageError } from "../lib/log";

/*
 * The `edge-ha` command: picks the subcommand group and hands it the rest of
 * the arguments; each group is one file in scripts/commands/ with its own
 * --help. It drives a provisioned stack (and the local lab); `pulumi up` is
 * what provisions.
 */

interface Group {
  summary: string;
  main: (args: string[]) => Promise<void>;
}

// Loaded on use (require, as the project is CommonJS): each group pulls in only what it needs.
const load = <T>(module: string): T => require(module) as T;
const groups: Record<string, Group> = {
  service: { summary: "deploy, sync, migrate, fail over a service; its status and stable endpoint", main: (a) => load<typeof import("./commands/service")>("./commands/service").main(a) },
  node: { summary: "drain a node by live migration for maintenance, and undrain it", main: (a) => load<typeof import("./commands/node")>("./commands/node").main(a) },
  fleet: { summary: "a rolling upgrade of every node, its services served throughout", main: (a) => load<typeof import("./commands/fleet")>("./commands/fleet").main(a) },
  gitops: { summary: "preview a proposed change for review, apply from main only, report drift", main: (a) => load<typeof import("./commands/gitops")>("./commands/gitops").main(a) },
  dashboard: { summary: "a live web page of the fleet: nodes, services, checkpoint ages, events, logs, actions", main: (a) => load<typeof import("./commands/dashboard")>("./commands/dashboard").main(a) },
  drill: { summary: "planned migration, crash with failover, crash with swarm, under a 10 ms prober", main: (a) => load<typeof import("./commands/drill")>("./commands/drill").main(a) },
  bench: { summary: "repeated drills with medians and maxima; 'bench provision', 'bench lab'", main: (a) => load<typeof import("./commands/bench")>("./commands/bench").main(a) },
  inventory: { summary: "check an inventory file, or write one from a docker-machine store", main: (a) => load<typeof import("./commands/inventory")>("./commands/inventory").main(a) },
  lab: { summary: "the local lab: blank hosts as containers, with fault injection", main: (a) => load<typeof import("./commands/lab")>("./commands/lab").main(a) },
  demo: { summary: "the end-to-end demo on the local lab", main: (a) => load<typeof import("./commands/demo")>("./commands/demo").main(a) },
};

export const help = `Usage: edge-ha <group> <command> [options]

Keeps services running on small edge nodes when a node goes away. \`pulumi up\`
provisions the fleet and its services; edge-ha acts on the provisioned stack.

Groups:
${Object.entries(groups)
  .map(([name, g]) => `  ${name.padEnd(11)}${g.summary}`)
  .join("\n")}

Run 'edge-ha <group> --help' for a group's commands and options. Most take
--inventory FILE (default inventory/lab.yaml) and --json.

Exit codes:
  0  done
  1  failed: the message says what failed and what is true on the hosts now
  2  the command line is wrong (see --help)
`;

/** Runs the command line `args` (without the program's name). */
export async function cli(args: string[]): Promise<void> {
  const [name, ...rest] = args;
  if (!name || name === "--help" || name === "-h" || name === "help") return void process.stdout.write(help);
  const group = Object.hasOwn(groups, name) ? groups[name] : undefined;
  if (!group) throw new UsageError(`unknown group "${name}"; expected one of ${Object.keys(groups).join(", ")}`);
  await group.main(rest);
}

if (require.main === module) runMain(() => cli(process.argv.slice(2)));
