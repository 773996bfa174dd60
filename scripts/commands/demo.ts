import { mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { loadInventory } from "../../lib/config/inventory";
import { startDashboard, type Dashboard } from "../../lib/dashboard/server";
import { down, labOptions, listNodes, up, type LabOptions } from "../../lib/lab/lab";
import { progress, UserError } from "../../lib/log";
import { PulumiStack } from "../../lib/pulumi";
import { drillKinds } from "../../lib/lab/drill";
import { renderTable } from "../../lib/lab/report";
import { sshExec } from "../../lib/host/ssh";
import { agentEvents, agentPaths } from "../../lib/ha/agent";
import { locate } from "../../lib/ha/service-container";
import { projectRoot } from "../../lib/toolchain";
import { runDrills } from "./drill";
import { portOption } from "./options";
import { writeReports } from "../../lib/lab/report";

export const help = `Usage: edge-ha demo [options]   (npm run demo: setup first, then this)

End-to-end demo on the local lab: starts 3 blank nodes, runs \`pulumi up\` of
the "lab" stack, which provisions them over SSH (Docker engine with
checkpoint/restore, CRIU built once and shipped, rsync daemons, a 3-manager
swarm, the failover agents) and runs its services (stacks/Pulumi.lab.yaml:
the stateful counter and 2048 on nginx, each synced to a standby and failed
over by the agents, and the counter as a swarm service), checks that a second
\`up\` changes nothing, runs the drills (planned migration, crash with
automatic failover watched beside the swarm service, crash with swarm) under
a 10 ms prober, prints the report (JSON and HTML in reports/), then runs
\`pulumi destroy\` and removes the lab.

Once the nodes are provisioned it serves the dashboard (read-only, on
127.0.0.1) and prints its address: open it to watch the drills live. It
stops with the demo; \`edge-ha dashboard\` serves it again, with actions.

  --keep              leave the lab and the stack in place afterwards
  --dashboard-port N  the dashboard's port (default 8090; when taken, any free one)
  --no-dashboard      do not serve the dashboard
  -h, --help          this text
`;

/** The `edge-ha` subcommand group of this file. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      keep: { type: "boolean" },
      "dashboard-port": { type: "string", default: "8090" },
      "no-dashboard": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return void process.stdout.write(help);
  const dashboardPort = portOption("--dashboard-port", values["dashboard-port"]);

  const lab = labOptions({ name: "lab" });
  const stack = new PulumiStack(projectRoot, "lab");
  const clock = () => {
    const t = Date.now();
    return () => `${((Date.now() - t) / 1000).toFixed(1)} s`;
  };
  let dashboard: Dashboard | undefined;
  try {
    let took = clock();
    progress("starting the local lab (3 blank Debian nodes)");
    // A lab made anew (after lab down) has none of the hosts the lab stack may still record from a
    // kept demo: that record is dropped (nothing to delete: those hosts are gone), so the stack is true.
    const anew = (await listNodes(lab)).length === 0;
    const nodes = await up(lab, 3);
    if (anew && (await stack.exists())) {
      progress("the lab was made anew: dropping the lab stack's record of the old nodes (they are gone; nothing is deleted)");
      await stack.forget({ keepConfig: true });
    }
    progress(`lab up: ${nodes.map((n) => `${n.name}=${n.address}`).join(" ")} (${took()}); inventory ${path.relative(projectRoot, lab.inventoryFile)}`);

    await stack.ensure();
    took = clock();
    progress("pulumi up --stack lab (provisions blank nodes: about 2 minutes)");
    const first = await stack.up({ quiet: false, continueOnError: true });
    progress(`pulumi up: ${JSON.stringify(first.summary)} (${took()})`);
    const provisionedAt = Date.now();
    if (!values["no-dashboard"]) dashboard = await serveDashboard(lab, dashboardPort);
    took = clock();
    const second = await stack.up();
    progress(`second pulumi up: ${JSON.stringify(second.summary)} (${took()})`);
    const leader = loadInventory(lab.inventoryFile).hosts[0];
    console.log((await sshExec(leader, "docker node ls")).stdout.trim());
    const services = (await stack.outputs()).services as Record<string, { mode: string }>;
    console.log(JSON.stringify(services, null, 2));
    await settle(lab, Object.keys(services).filter((name) => services[name].mode === "criu"), provisionedAt);

    took = clock();
    progress("drills: planned migration, crash + automatic failover, crash with swarm (about 2 minutes)");
    const reports = await runDrills([...drillKinds], { lab: lab.name, service: "counter", swarmService: "counter-swarm" });
    const files = writeReports(reports, path.join(projectRoot, "reports"));
    console.log(`\n${renderTable(reports)}\n`);
    progress(`drills done (${took()}); reports: ${path.relative(projectRoot, files.json)}, ${path.relative(projectRoot, files.html)}`);
  } catch (err) {
    // The destroy below removes every trace on the nodes: what they said is kept first.
    if (!values.keep) await keepEvidence(lab).catch((e: Error) => progress(`could not keep the nodes' logs: ${e.message}`));
    throw err;
  } finally {
    await dashboard?.close();
    if (!values.keep) {
      progress("pulumi destroy --stack lab, then lab down");
      await stack.destroy().catch((err) => progress(`destroy failed: ${err.message}`));
      await down(lab);
    }
  }
  progress(values.keep ? "demo done; the lab stays up: 'edge-ha dashboard' shows it live, 'edge-ha lab down' removes it" : "demo done");
}

/**
 * The drills start from each CRIU service running on exactly one node. A
 * node whose lease lapsed under the load of provisioning has fenced its copy,
 * and the controllers restore it within seconds: waited for (up to a minute),
 * and said, with what the agents did since the first pulumi up ended.
 */
async function settle(lab: LabOptions, services: string[], since: number): Promise<void> {
  const inventory = loadInventory(lab.inventoryFile);
  const started = Date.now();
  let waited = false;
  for (const service of services) {
    for (;;) {
      const on = await locate(inventory, service);
      if (on.length === 1) break;
      if (Date.now() - started > 60_000) throw new UserError(`${service} runs on ${on.map((h) => h.name).join(" and ") || "no node"} a minute after pulumi up; the drills need exactly one copy`);
      if (!waited) progress(`${service} runs on ${on.map((h) => h.name).join(" and ") || "no node"}: waiting for the failover agents`);
      waited = true;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  if (!waited) return;
  const events = (await agentEvents(inventory.hosts, 200)).filter((e) => Date.parse(e.at) >= since && /^(fence|failover|restored|stalled|freeze)$/.test(e.kind));
  progress(`settled after ${((Date.now() - started) / 1000).toFixed(1)} s; the agents since provisioning:\n${events.map((e) => `    ${e.at} ${e.node} ${e.kind} ${e.service ?? ""}: ${e.message}`).join("\n")}`);
}

/**
 * What the nodes say of a failed demo, before the destroy removes it: the
 * agents' events, each node's containers and its sync loops' log, in
 * reports/demo-failure/ (one file per node).
 */
async function keepEvidence(lab: LabOptions): Promise<void> {
  const dir = path.join(projectRoot, "reports", "demo-failure");
  mkdirSync(dir, { recursive: true });
  const hosts = loadInventory(lab.inventoryFile).hosts;
  await Promise.all(
    hosts.map(async (h) => {
      const r = await sshExec(
        h,
        `echo "== containers"; docker ps -a --format '{{.Names}} {{.Status}}'; echo "== agent events"; tail -n 400 ${agentPaths.events}; echo "== sync log"; tail -n 100 /var/log/edge-ha-sync.log`,
        { nothrow: true, connectTimeout: 5 },
      );
      writeFileSync(path.join(dir, `${h.name}.txt`), r.stdout + r.stderr);
    }),
  );
  progress(`the nodes' logs of this failure: ${path.relative(projectRoot, dir)}/`);
}

/**
 * The dashboard of the lab, read-only: the demo's drills must not meet a
 * migration clicked on the page. A taken port is no reason to stop a demo.
 */
async function serveDashboard(lab: LabOptions, port: number): Promise<Dashboard> {
  const opts = { inventory: loadInventory(lab.inventoryFile), listen: "127.0.0.1", readOnly: true, reportsDir: path.join(projectRoot, "reports"), lab };
  const dashboard = await startDashboard({ ...opts, port }).catch((err: Error) => {
    if (port === 0 || !(err instanceof UserError) || !/taken/.test(err.message)) throw err;
    progress(`port ${port} is taken: the dashboard takes a free one`);
    return startDashboard({ ...opts, port: 0 });
  });
  progress(`dashboard (read-only while the demo runs): open ${dashboard.url}`);
  return dashboard;
}
