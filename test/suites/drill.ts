import test from "ava";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { parse, stringify } from "yaml";
import type { DrillReport } from "../../lib/lab/drill";
import { findHost, loadInventory } from "../../lib/config/inventory";
import type { LabOptions } from "../../lib/lab/lab";
import type { PulumiStack } from "../../lib/pulumi";
import { syncOn } from "../../lib/ha/replication";
import { locate } from "../../lib/ha/service-container";
import { hostTools } from "../../lib/host/paths";
import { sshExec } from "../../lib/host/ssh";
import { runDrills } from "../../scripts/commands/drill";
import { writeReports } from "../../lib/lab/report";

/*
 * Services declared in the stack, then the three drills on them: real
 * engines, CRIU, rsync daemons, swarm, crashes. They run on the lab of
 * test/migration.test.ts once its own tests are done (which registers them):
 * the cluster is provisioned already, and a lab of their own cost every run
 * minutes. Their first test clears what those tests left (services started
 * by hand) and declares the services in the stack.
 */

/** The lab and its stack the drills run on. */
export interface DrillLab {
  lab: LabOptions;
  stack: PulumiStack;
  stackFile: string;
}

/** Registers the drills' tests (serial, after those registered before) on `on`'s lab. */
export function registerDrillTests(on: DrillLab): void {
  const { lab, stack, stackFile } = on;
  const dir = mkdtempSync(path.join(tmpdir(), "edge-ha-drill-test-"));
  const inventory = () => loadInventory(lab.inventoryFile);
  const interval = 2;

  test.serial("drills: pulumi up runs the declared services: the CRIU one on its primary, synced to its standby; the swarm one replicated", async (t) => {
    // What the tests before left: services started by hand (with their syncs, addresses and volumes).
    for (const h of inventory().hosts) {
      await sshExec(h, `for s in $(docker ps -a --filter label=edge-ha.service --format '{{.Names}}'); do ${hostTools.ctl} fence "$s" >/dev/null; done; docker volume prune -f >/dev/null`);
    }
    const doc = parse(readFileSync(stackFile, "utf8"));
    doc.config["edge-ha:services"] = [
      // By hand: this is the operator's failover; test/autofailover.test.ts has the agents'.
      { name: "counter", build: "services/counter", ports: ["18080:8080"], primary: "node1", standby: "node2", syncInterval: interval, failover: "manual", volumes: ["counterdata:/data"] },
      { name: "counter-swarm", build: "services/counter", ports: ["18090:8080"], mode: "swarm", replicas: 2 },
    ];
    writeFileSync(stackFile, stringify(doc));
    await stack.up();
    t.deepEqual((await locate(inventory(), "counter")).map((h) => h.name), ["node1"]);
    t.deepEqual(await syncOn(findHost(inventory(), "node1"), "counter"), { standby: "node2", intervalSeconds: interval });
    const tasks = await sshExec(findHost(inventory(), "node1"), `docker service ps counter-swarm --filter desired-state=running --format '{{.Node}}'`);
    t.is(tasks.stdout.trim().split("\n").length, 2);
  });

  let reports: DrillReport[] = [];

  test.serial("drills: the three drills report what a client saw, and the reports are written and parse", async (t) => {
    reports = await runDrills(["migration", "failover", "swarm"], { lab: lab.name, inventory: lab.inventoryFile, service: "counter", swarmService: "counter-swarm" });
    const [migration, failover, swarm] = reports;
    for (const r of reports) t.log(`${r.kind}: gap ${Math.round(r.client.longestGapMs)} ms, ${r.client.failed}/${r.client.requests} failed, lost ${r.client.lostIncrements}, ${JSON.stringify(r.details)}`);

    t.is(migration.client.failed, 0, "the endpoint held clients through the planned migration");
    t.is(migration.client.lostIncrements, 0, "no state lost");
    t.true(migration.client.longestGapMs > 0 && migration.client.requests > 100);

    const fresh = typeof failover.details.checkpointAgeAtCrash === "number" && failover.details.checkpointAgeAtCrash <= interval * 1000;
    // On a miss, what the crashed primary's sync loop logged (its late or failed rounds).
    if (!fresh) t.log((await sshExec(findHost(inventory(), failover.from), "tail -n 20 /var/log/edge-ha-sync.log", { nothrow: true })).stdout);
    t.true(fresh, `state no older than the interval: the checkpoint was ${failover.details.checkpointAgeAtCrash} ms old at the crash`);
    t.true(failover.client.countAfter !== undefined && failover.client.countAfter > 0, "served again, from a checkpoint");
    t.deepEqual((await locate(inventory(), "counter")).map((h) => h.name), [failover.to], "running once, on the standby");
    t.deepEqual(await syncOn(findHost(inventory(), failover.to), "counter"), { standby: failover.from, intervalSeconds: interval }, "the crashed node came back as the standby");

    t.true(Number.isFinite(swarm.client.longestGapMs), "the swarm drill reports a number");
    t.is(typeof swarm.details.swarmRecovered, "number", "swarm ran its replicas again");

    const files = writeReports(reports, dir, "drills");
    const json = JSON.parse(readFileSync(files.json, "utf8"));
    t.deepEqual(json.reports.map((r: DrillReport) => r.kind), ["migration", "failover", "swarm"]);
    t.true(json.reports.every((r: DrillReport) => r.probes.length === r.client.requests));
    const html = readFileSync(files.html, "utf8");
    t.is((html.match(/<svg /g) ?? []).length, 3, "one timeline per drill");
  });

  test.serial("drills: after the drills moved the service, pulumi up changes nothing and starts no second copy", async (t) => {
    const r = await stack.up();
    t.deepEqual(Object.keys(r.summary), ["unchanged"], JSON.stringify(r.summary));
    t.is((await locate(inventory(), "counter")).length, 1);
  });

  test.serial("drills: the service network, the volumes and the swarm service are docker resources; removing the swarm service from the stack removes it from the swarm", async (t) => {
    const resources = JSON.parse(await stack.exportState()).deployment.resources as { type: string; urn: string }[];
    const count = (type: string) => resources.filter((r) => r.type === type).length;
    t.is(count("pulumi:providers:docker"), 3, "one Docker provider per host");
    t.is(count("docker:index/network:Network"), 3, "the service network on every host");
    t.is(count("docker:index/volume:Volume"), 2, "the counter's volume on its primary and its standby");
    t.is(count("docker:index/service:Service"), 1, "the swarm baseline");
    t.is(resources.filter((r) => r.type.startsWith("pulumi-nodejs:dynamic")).length, 0, "no dynamic resources");

    const doc = parse(readFileSync(stackFile, "utf8"));
    doc.config["edge-ha:services"] = doc.config["edge-ha:services"].filter((s: { name: string }) => s.name !== "counter-swarm");
    writeFileSync(stackFile, stringify(doc));
    const r = await stack.up();
    t.is(r.summary.deleted, 3, `the SwarmService component, its docker Service and its in-swarm check: ${JSON.stringify(r.summary)}`);
    const manager = (await Promise.all(inventory().hosts.map(async (h) => ((await sshExec(h, "docker node ls >/dev/null 2>&1", { nothrow: true })).exitCode === 0 ? h : undefined)))).find((h) => h);
    t.truthy(manager, "a manager answers");
    t.is((await sshExec(manager!, "docker service ls --format '{{.Name}}'")).stdout.trim(), "", "the swarm has no service left");
    let tasks = "";
    for (let i = 0; i < 60; i++) {
      tasks = (await Promise.all(inventory().hosts.map((h) => sshExec(h, "docker ps -q --filter label=com.docker.swarm.service.name=counter-swarm", { nothrow: true })))).map((x) => x.stdout.trim()).join("");
      if (!tasks) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    t.is(tasks, "", "its task containers are gone from every node");
    t.deepEqual((await locate(inventory(), "counter")).length, 1, "the CRIU service is untouched");
  });
}
