import * as path from "node:path";
import { parseArgs } from "node:util";
import { loadInventory } from "../../lib/config/inventory";
import { startDashboard } from "../../lib/dashboard/server";
import { labOptions } from "../../lib/lab/lab";
import { UsageError } from "../../lib/log";
import { projectRoot } from "../../lib/toolchain";
import { portOption, stackOptions } from "./options";

export const help = `Usage: edge-ha dashboard [options]

A web page of the fleet, live: every node as the failover agents see it
(up or down, lease, load, memory, Docker and CRIU versions), every service
(where it runs, its address, its standby and the age of the standby's newest
checkpoint with a plot of the last minutes), the agents' events of every
node in one stream, a service's log wherever it runs now, the drill and
bench reports, and alerts (a node down, a service running nowhere or twice,
a checkpoint older than twice its interval). From the page: migrate a
service, run a drill (on the lab). It keeps one SSH session open to each
node and reads it every quarter second; it changes nothing on its own.

It listens on 127.0.0.1 unless told otherwise, and every request needs the
random token in the address it prints (keep that address to yourself).

Options:
  --inventory FILE   the fleet (default: inventory/lab.yaml)
  --port N           the port (default 8090; 0: any free one)
  --listen ADDRESS   the address to listen on (default 127.0.0.1; 0.0.0.0 for a phone on the LAN:
                     anyone who can reach it still needs the token, sent in clear over plain HTTP)
  --read-only        no actions: the page only shows
  --lab NAME         the lab this inventory is (enables drills; default: none, or "lab" for the
                     default inventory)
  --reports DIR      the drill and bench reports (default: reports/)
  --json             print the address and token as JSON, then serve
  -h, --help         this text
`;

/** The `edge-ha` subcommand group of this file. */
export async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...stackOptions,
      port: { type: "string", default: "8090" },
      listen: { type: "string", default: "127.0.0.1" },
      "read-only": { type: "boolean" },
      lab: { type: "string" },
      reports: { type: "string", default: path.join(projectRoot, "reports") },
    },
  });
  if (values.help) return void process.stdout.write(help);
  if (positionals.length) throw new UsageError(`unexpected arguments: ${positionals.join(" ")}`);
  const port = portOption("--port", values.port);
  const inventoryFile = path.resolve(values.inventory!);
  const inventory = loadInventory(inventoryFile);
  const defaultInventory = inventoryFile === path.resolve(stackOptions.inventory.default);
  const labName = values.lab ?? (defaultInventory ? "lab" : undefined);
  const dashboard = await startDashboard({
    inventory,
    listen: values.listen,
    port,
    readOnly: values["read-only"],
    reportsDir: path.resolve(values.reports!),
    ...(labName ? { lab: labOptions({ name: labName, inventoryFile }) } : {}),
  });
  if (values.json) console.log(JSON.stringify({ url: dashboard.url, token: dashboard.token, readOnly: !!values["read-only"] }));
  else console.log(`edge-ha dashboard of ${path.relative(process.cwd(), inventoryFile) || inventoryFile}${values["read-only"] ? " (read-only)" : ""}: open\n  ${dashboard.url}\n(Ctrl-C stops it)`);
  const stop = () => void dashboard.close().then(() => process.exit(0));
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  return new Promise<void>(() => undefined);
}
