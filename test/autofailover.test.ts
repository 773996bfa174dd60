import test from "ava";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { parse, stringify } from "yaml";
import { $ } from "zx";
import { agentEvents, agentPaths, agentState, restoredSince as restoredFrom, type AgentState } from "../lib/ha/agent";
import { Endpoint } from "../lib/ha/endpoint";
import { findHost, loadInventory, type Host } from "../lib/config/inventory";
import { boot, crash, heal, partition, pause, resume } from "../lib/lab/faults";
import { down, labOptions } from "../lib/lab/lab";
import { freshLabStack } from "../lib/lab/stack";
import { Prober, servedAgainAfter, summarize } from "../lib/lab/prober";
import { runNemesis } from "../lib/lab/nemesis";
import { faultKinds } from "../lib/lab/nemesis-plan";
import { renderNemesisText } from "../lib/lab/nemesis-report";
import { PulumiStack } from "../lib/pulumi";
import { syncOn } from "../lib/ha/replication";
import { locate } from "../lib/ha/service-container";
import { sshExec } from "../lib/host/ssh";
import { projectRoot } from "../lib/toolchain";
import { copyCounter, sleep, until as poll } from "./helpers/poll";

/*
 * Automatic failover on a lab of its own: the failover agents pulumi up
 * installs restore the service with no command, fence a cut-off node, and take
 * a returning node back as the standby. Real engines, CRIU, rsync daemons,
 * crashes and partitions.
 */
const dir = mkdtempSync(path.join(tmpdir(), "edge-ha-auto-test-"));
const lab = labOptions({ name: "autotest", subnetPrefix: "10.77.206", inventoryFile: path.join(dir, "inventory.yaml") });
const stack = new PulumiStack(projectRoot, "autotest");
const inventory = () => loadInventory(lab.inventoryFile);
const host = (name: string) => findHost(inventory(), name);
const interval = 2;
const port = 18080;
const runningOn = async () => (await locate(inventory(), "counter")).map((h) => h.name);

test.before(async () => {
  await freshLabStack(lab, stack, 3);
  const file = path.join(projectRoot, "stacks", "Pulumi.autotest.yaml");
  const doc = parse(readFileSync(file, "utf8"));
  doc.config["edge-ha:services"] = [{ name: "counter", build: "services/counter", ports: [`${port}:8080`], primary: "node1", standby: "node2", syncInterval: interval, failover: "auto" }];
  writeFileSync(file, stringify(doc));
  await stack.up();
});

test.after.always(async () => {
  await stack.forget();
  await down(lab);
});

/** A client counting through an endpoint that checks every node and follows the one that answers. */
async function client() {
  const endpoint = new Endpoint({ listen: { host: "127.0.0.1", port: 0 }, healthCheck: { everyMs: 100, failures: 2 } });
  endpoint.setBackends(inventory().hosts.map((h) => ({ host: h.address, port })));
  await endpoint.start();
  const prober = new Prober({ host: "127.0.0.1", port: endpoint.port() }, 10);
  prober.start();
  return {
    prober,
    async stop() {
      const probes = await prober.stop();
      await endpoint.stop();
      return { probes, summary: summarize(probes) };
    },
  };
}

/** Polls until `check` holds (every 100 ms, at most `seconds`); what it returned last. */
const until = <T>(seconds: number, check: () => Promise<T>, ok: (v: T) => boolean) => poll(seconds, check, ok, 100);

/** The checkpoint the agent on `on` restored the counter from after `since` (ms), and its age then. */
async function restoredSince(since: number, on: Host): Promise<{ checkpoint: string; ageMs: number }> {
  const restored = await restoredFrom(on, "counter", since);
  if (!restored) throw new Error(`no restore logged on ${on.name} since the fault`);
  return restored;
}

test.serial("pulumi up runs an agent on every node, holding its lease; the managers are its controllers", async (t) => {
  t.deepEqual(await runningOn(), ["node1"]);
  for (const h of inventory().hosts) {
    const state = JSON.parse((await until(10, async () => (await sshExec(h, `cat ${agentPaths.state} 2>/dev/null`, { nothrow: true })).stdout, (s) => s.includes("leaseMs"))) || "{}");
    t.is(state.node, h.name);
    t.is(state.controller, h.roles.includes("manager"));
    t.true(state.leaseMs > 0 && !state.fenced, `${h.name} holds its lease`);
  }
  t.deepEqual(await syncOn(host("node1"), "counter"), { standby: "node2", intervalSeconds: interval });
});

test.serial("crash of the primary's node, which runs the acting controller too: served again from the standby with no command, state no older than the sync interval", async (t) => {
  const c = await client();
  await sleep(3 * interval * 1000);
  const crashedAt = await crash(lab, "node1");
  const probeClock = c.prober.now() - (Date.now() - crashedAt);
  const others = { ...inventory(), hosts: inventory().hosts.filter((h) => h.name !== "node1") };
  const on = await until(30, async () => (await locate(others, "counter")).map((h) => h.name), (r) => r.length === 1);
  await sleep(1000);
  const { probes, summary } = await c.stop();
  t.deepEqual(on, ["node2"], "restored on the standby, once");
  const back = servedAgainAfter(probes, probeClock);
  t.truthy(back, "the client was served again");
  const restored = await restoredSince(crashedAt, host("node2"));
  const decidedBy = (await agentEvents(inventory().hosts)).find((e) => e.kind === "failover" && Date.parse(e.at) >= crashedAt - 1000);
  t.truthy(decidedBy && decidedBy.node !== "node1", "another controller decided it");
  t.true(restored.ageMs <= interval * 1000, `state lost: the checkpoint was ${restored.ageMs} ms old at the crash`);
  // Not a speed target (that is npm run bench's), a bound far above it: a failover that waits
  // for something else (the swarm's ~20 s leader change once) fails here.
  t.true(back! < 10_000, `served again ${Math.round(back!)} ms after the crash`);
  t.log(`crash to serving ${Math.round(back!)} ms; checkpoint ${restored.ageMs} ms old at the crash; ${summary.lostIncrements} increments lost; ${summary.failed}/${summary.requests} failed; decided by ${decidedBy?.node}`);
});

test.serial("the old primary boots again: it never runs a second copy, and becomes the standby again", async (t) => {
  await boot(lab, "node1");
  // Up to 80 s was seen between such a boot and the fence of the stale copy (the long cases
  // are open, issue 14, which bounds it to 5 s): the wait covers them; on a miss the agents'
  // events are logged below.
  const copies = copyCounter(runningOn);
  const sync = await until(90, async () => (await copies.look(), syncOn(host("node2"), "counter")), (s) => s?.standby === "node1");
  t.is(copies.most, 1, "one copy at every look");
  if (sync?.standby !== "node1") t.log((await agentEvents(inventory().hosts)).slice(-40).map((e) => `${e.at} ${e.node} ${e.kind} ${e.service ?? ""}: ${e.message}`).join("\n"));
  t.deepEqual(sync, { standby: "node1", intervalSeconds: interval });
  t.is((await sshExec(host("node1"), "docker container inspect counter >/dev/null 2>&1", { nothrow: true })).exitCode, 1, "its stale copy is gone");
});

test.serial("partition of the primary's node: exactly one copy serves; after heal the cut-off copy is gone and its node is the standby", async (t) => {
  await sleep(2 * interval * 1000);
  const c = await client();
  await sleep(1000);
  const copies = copyCounter(runningOn);
  let cutAt = 0;
  try {
    await partition(lab, "node2");
    cutAt = Date.now();
    // This machine still reaches the cut-off node (the partition is between the nodes), so every copy is seen.
    const on = await until(30, copies.look, (r) => r.length === 1 && r[0] === "node1");
    t.deepEqual(on, ["node1"], "restored on the standby");
    const fenced = (await agentEvents([host("node2")])).find((e) => e.kind === "fence" && Date.parse(e.at) >= cutAt - 1000);
    t.regex(fenced?.message ?? "", /lease lapsed/, "the cut-off node killed its own copy");
  } finally {
    await heal(lab, "node2");
  }
  const { summary } = await c.stop();
  t.is(copies.most, 1, "never two copies at once");
  const restored = await restoredSince(cutAt, host("node1"));
  t.true(restored.ageMs <= interval * 1000, `state lost: the checkpoint was ${restored.ageMs} ms old at the cut`);
  t.log(`longest gap ${Math.round(summary.longestGapMs)} ms (the cut-off copy served until it fenced itself); checkpoint ${restored.ageMs} ms old at the cut; ${summary.lostIncrements} increments lost`);
  const sync = await until(60, () => syncOn(host("node1"), "counter"), (s) => s?.standby === "node2");
  t.deepEqual(sync, { standby: "node2", intervalSeconds: interval }, "the healed node is the standby");
  t.deepEqual(await runningOn(), ["node1"]);
  t.is((await sshExec(host("node2"), "docker container inspect counter >/dev/null 2>&1", { nothrow: true })).exitCode, 1, "the cut-off copy is gone");
});

test.serial("a partition between two controllers only (node3 still hears both): one controller acts throughout, and nothing moves", async (t) => {
  // What the agents say of themselves (agent/actor.go): whom each backs, and whether it acts.
  const states = async () => Promise.all(inventory().hosts.map(agentState));
  const before = await runningOn();
  await partition(lab, "node1", { from: "node2" });
  const samples: string[][] = [];
  let last: (AgentState | undefined)[] = [];
  try {
    // Past downAfter: node1 and node2 now suspect each other, and each would back itself.
    await sleep(2000);
    for (let i = 0; i < 8; i++) {
      last = await states();
      samples.push(last.filter((s) => s?.acting).map((s) => s!.node));
      await sleep(500);
    }
  } finally {
    await heal(lab, "node1", "node2");
  }
  t.true(samples.every((a) => a.length <= 1), `never two acting controllers: ${JSON.stringify(samples)}`);
  t.true(samples.every((a) => a.join() === "node1"), `node1 acts throughout, as node3 backs it: ${JSON.stringify(samples)}`);
  t.is(last.find((s) => s?.node === "node2")?.backs, "node2", "node2, which cannot hear node1, backs itself: a minority of one");
  t.deepEqual(await runningOn(), before, "no controller saw a node down: nothing moved");
});

test.serial("the service command: status shows the agents' events; a failover by hand of a service the agents manage is refused and changes nothing", async (t) => {
  const service = (...args: string[]) => $({ quiet: true, nothrow: true, cwd: projectRoot })`bin/edge-ha service ${args} --inventory ${lab.inventoryFile}`;
  const before = await runningOn();
  const status = await service("status", "counter", "--json");
  t.is(status.exitCode, 0, status.stderr);
  const result = JSON.parse(status.stdout);
  t.is(result.failover, "auto");
  t.deepEqual(result.running, before);
  t.true(result.events.some((e: { kind: string }) => e.kind === "restored"), "the restores of the tests above are among its events");
  const logs = await service("logs", "counter", "--tail", "5", "--json");
  t.is(logs.exitCode, 0, logs.stderr);
  t.like(JSON.parse(logs.stdout), { service: "counter", host: before[0] }, "the log comes from where it runs now");
  const standby = inventory().hosts.find((h) => !before.includes(h.name))!;
  const refused = await service("failover", "counter", "--to", standby.name);
  t.is(refused.exitCode, 1);
  t.regex(refused.stderr, /counter has failover "auto": the failover agents restore it by themselves/);
  t.deepEqual(await runningOn(), before);
});

test.serial("the agent of the primary's node stops (its services run on): its watchdog fences the copy, which is restored elsewhere; never two copies", async (t) => {
  const [primary] = await runningOn();
  const copies = copyCounter(runningOn);
  const since = Date.now();
  await pause(lab, primary, true);
  let on: string[] = [];
  try {
    on = await until(30, copies.look, (r) => r.length === 1 && r[0] !== primary);
  } finally {
    await resume(lab, primary);
  }
  t.true(on.length === 1 && on[0] !== primary, `restored elsewhere, found on: ${on.join(", ") || "none"}`);
  t.is(copies.most, 1, "never two copies at once");
  const fenced = (await agentEvents([host(primary)])).filter((e) => e.kind === "fence" && Date.parse(e.at) >= since);
  t.true(fenced.some((e) => /the watchdog did: removed its container/.test(e.message)), `the watchdog fenced it: ${JSON.stringify(fenced)}`);
});

test.serial("a seeded nemesis (2 min of crashes, partitions, one-way loss and pauses of a node or its agent): never two copies, no acknowledged write lost beyond the interval, served again after every fault", async (t) => {
  const report = await runNemesis({ lab, inventory: inventory(), service: "counter", port, seed: 20261127, durationMs: 120_000, kinds: faultKinds, settleMs: 15_000 });
  t.log(renderNemesisText(report));
  t.true(report.faults.length >= 5, `${report.faults.length} faults injected`);
  const gaps = report.samples.slice(1).map((s, i) => s.at - report.samples[i].at);
  t.true(report.samples.length > 100 && Math.max(...gaps) < 2000, `the sampler saw where the service ran all along: ${report.samples.length} samples, at most ${Math.round(Math.max(...gaps))} ms apart`);
  t.deepEqual(report.check.violations, []);
  t.deepEqual(await runningOn(), report.samples[report.samples.length - 1].copies.counter, "one copy at the end, where the sampler saw it");
});
