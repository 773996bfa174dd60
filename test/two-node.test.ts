import test from "ava";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { parse, stringify } from "yaml";
import { agentEvents, agentPaths, restoredSince, type AgentEvent } from "../lib/ha/agent";
import { findHost, loadInventory } from "../lib/config/inventory";
import { boot, crash, heal, partition } from "../lib/lab/faults";
import { down, labOptions } from "../lib/lab/lab";
import { freshLabStack } from "../lib/lab/stack";
import { PulumiStack } from "../lib/pulumi";
import { syncOn } from "../lib/ha/replication";
import { locate } from "../lib/ha/service-container";
import { sshExec } from "../lib/host/ssh";
import { projectRoot } from "../lib/toolchain";
import { copyCounter, sleep, until as poll } from "./helpers/poll";

/*
 * A two-node site with a witness, the seed paper's setup made able to fail
 * over by itself: two lab nodes (both managers) and a witness that runs only
 * the failover agent. Real engines, CRIU, rsync daemons, crashes, partitions.
 */
const dir = mkdtempSync(path.join(tmpdir(), "edge-ha-two-node-test-"));
const lab = labOptions({ name: "twotest", subnetPrefix: "10.77.207", inventoryFile: path.join(dir, "inventory.yaml") });
const stack = new PulumiStack(projectRoot, "twotest");
const stackFile = path.join(projectRoot, "stacks", "Pulumi.twotest.yaml");
const inventory = () => loadInventory(lab.inventoryFile);
const host = (name: string) => findHost(inventory(), name);
const interval = 1;
const runningOn = async () => (await locate(inventory(), "counter")).map((h) => h.name);

/** Polls until `check` holds (every 200 ms, at most `seconds`); what it returned last. */
const until = <T>(seconds: number, check: () => Promise<T>, ok: (v: T) => boolean) => poll(seconds, check, ok, 200);

/** The agents' events at or after `since` (ms), as lines for a failure's log. */
const eventsSince = async (since: number): Promise<AgentEvent[]> => (await agentEvents(inventory().hosts, 100)).filter((e) => Date.parse(e.at) >= since - 1000);
const show = (events: AgentEvent[]) => events.map((e) => `${e.at} ${e.node} ${e.kind} ${e.service ?? ""}: ${e.message}`).join("\n");

/**
 * Boots a crashed node and waits until its agent writes its state again (it
 * holds a lease) and, on a node that runs services, its engine is back in the
 * swarm: a fault right after a boot would measure the engine's start.
 */
async function bootAndWait(name: string): Promise<void> {
  const since = Date.now();
  await boot(lab, name);
  const engine = name === "witness" ? "" : ` && [ "$(docker info -f '{{.Swarm.LocalNodeState}}' 2>/dev/null)" = active ]`;
  await until(
    90,
    async () => {
      const r = await sshExec(host(name), `cat ${agentPaths.state}${engine}`, { nothrow: true, connectTimeout: 2 });
      try {
        const state = JSON.parse(r.stdout);
        return r.exitCode === 0 && Date.parse(state.at) > since && state.leaseMs > 0 && !state.fenced;
      } catch {
        return false;
      }
    },
    (ok) => ok,
  );
}

function setFailover(failover: object): void {
  const doc = parse(readFileSync(stackFile, "utf8"));
  doc.config["edge-ha:failover"] = failover;
  writeFileSync(stackFile, stringify(doc));
}

test.before(async () => {
  await freshLabStack(lab, stack, 2, { witness: true });
  const doc = parse(readFileSync(stackFile, "utf8"));
  doc.config["edge-ha:services"] = [{ name: "counter", build: "services/counter", ports: ["18080:8080"], primary: "node1", standby: "node2", syncInterval: interval, failover: "auto" }];
  writeFileSync(stackFile, stringify(doc));
  await stack.up();
});

test.after.always(async () => {
  await stack.forget();
  await down(lab);
});

test.serial("the witness runs only the failover agent, as a voting controller: no Docker, no rsync daemon, no service", async (t) => {
  t.deepEqual(inventory().hosts.map((h) => `${h.name}:${h.roles[0]}`), ["node1:manager", "node2:manager", "witness:witness"]);
  const witness = host("witness");
  const state = JSON.parse((await sshExec(witness, `cat ${agentPaths.state}`)).stdout);
  t.true(state.controller, "the witness votes and controls");
  t.true(state.leaseMs > 0);
  const absent = await sshExec(witness, "command -v docker dockerd rsync criu", { nothrow: true });
  t.is(absent.stdout.trim(), "", "nothing but the agent and edge-ha's host tools");
  t.deepEqual(await runningOn(), ["node1"]);
  t.deepEqual(await syncOn(host("node1"), "counter"), { standby: "node2", intervalSeconds: interval });
});

test.serial("crash of the witness: nothing moves, and the agents warn that one more loss stops automatic failover", async (t) => {
  const since = Date.now();
  await crash(lab, "witness");
  try {
    const warning = await until(10, async () => (await eventsSince(since)).find((e) => e.kind === "warning"), (e) => !!e);
    t.regex(warning?.message ?? show(await eventsSince(since)), /2 of 3 voters are up \(witness down\): one more loss stops automatic failover/);
    await sleep(3000);
    t.deepEqual(await runningOn(), ["node1"], "the service stays where it runs");
    t.false((await eventsSince(since)).some((e) => e.kind === "fence" || e.kind === "failover"), show(await eventsSince(since)));
  } finally {
    await bootAndWait("witness");
  }
});

test.serial("crash of the standby's node: the primary keeps serving, and gets a standby again when the node is back", async (t) => {
  const since = Date.now();
  await crash(lab, "node2");
  try {
    await sleep(4000);
    t.deepEqual(await runningOn(), ["node1"], "the primary keeps its lease (node1 and the witness are a majority) and serves");
    t.false((await eventsSince(since)).some((e) => e.kind === "fence" && e.node === "node1"), show(await eventsSince(since)));
  } finally {
    await bootAndWait("node2");
  }
  const sync = await until(60, () => syncOn(host("node1"), "counter"), (s) => s?.standby === "node2");
  t.deepEqual(sync, { standby: "node2", intervalSeconds: interval });
});

test.serial("crash of the primary's node: served again from the standby with no command, state no older than the interval", async (t) => {
  await sleep(3 * interval * 1000);
  const crashedAt = await crash(lab, "node1");
  const others = { ...inventory(), hosts: inventory().hosts.filter((h) => h.name === "node2") };
  const on = await until(30, async () => (await locate(others, "counter")).map((h) => h.name), (r) => r.length === 1);
  t.deepEqual(on, ["node2"], show(await eventsSince(crashedAt)));
  const restored = await restoredSince(host("node2"), "counter", crashedAt);
  t.truthy(restored, "restored from a synced checkpoint");
  t.true(restored!.ageMs <= interval * 1000, `state lost: the checkpoint was ${restored!.ageMs} ms old at the crash`);
  const timeline = await eventsSince(crashedAt);
  const restoredAt = Date.parse(timeline.find((e) => e.kind === "restored")!.at);
  t.log(`checkpoint ${restored!.ageMs} ms old at the crash; restored ${((restoredAt - crashedAt) / 1000).toFixed(1)} s after it`);
  if (restoredAt - crashedAt > 5000) t.log(show(timeline));
  await bootAndWait("node1");
  const copies = copyCounter(runningOn);
  const sync = await until(90, async () => (await copies.look(), syncOn(host("node2"), "counter")), (s) => s?.standby === "node1");
  t.is(copies.most, 1, "one copy at every look");
  t.deepEqual(sync, { standby: "node1", intervalSeconds: interval }, show(await eventsSince(crashedAt)));
});

test.serial("partition of the primary's node from the others: it fences itself, the service is restored on the other node", async (t) => {
  await sleep(2 * interval * 1000);
  const cutAt = Date.now();
  const copies = copyCounter(runningOn);
  try {
    await partition(lab, "node2");
    const on = await until(30, copies.look, (r) => r.length === 1 && r[0] === "node1");
    t.deepEqual(on, ["node1"], show(await eventsSince(cutAt)));
    const fenced = (await agentEvents([host("node2")])).find((e) => e.kind === "fence" && Date.parse(e.at) >= cutAt - 1000);
    t.regex(fenced?.message ?? "", /lease lapsed/, "the cut-off node killed its own copy");
  } finally {
    await heal(lab, "node2");
  }
  t.is(copies.most, 1, "never two copies at once");
  const sync = await until(60, () => syncOn(host("node1"), "counter"), (s) => s?.standby === "node2");
  t.deepEqual(sync, { standby: "node2", intervalSeconds: interval }, "the healed node is the standby");
});

test.serial("two of three voters lost: with noQuorum stop (the default) the survivor stops its copy; with freeze it keeps serving", async (t) => {
  // stop: node1 runs it; its standby's node and the witness die.
  let since = Date.now();
  await crash(lab, "witness");
  await crash(lab, "node2");
  const stopped = await until(10, runningOn, (r) => r.length === 0);
  t.deepEqual(stopped, [], "stop: no majority, so its copy is killed (it may be the cut-off side)");
  t.true((await agentEvents([host("node1")])).some((e) => e.kind === "fence" && Date.parse(e.at) >= since - 1000 && /lease lapsed/.test(e.message)));
  await Promise.all([bootAndWait("witness"), bootAndWait("node2")]);
  // Back to a majority: the agents restore it from its synced checkpoint.
  const back = await until(60, runningOn, (r) => r.length === 1);
  t.is(back.length, 1, show(await eventsSince(since)));

  // freeze: the same losses, and the survivor goes on serving.
  setFailover({ noQuorum: "freeze" });
  await stack.up();
  const survivor = (await runningOn())[0];
  const others = ["node1", "node2", "witness"].filter((n) => n !== survivor);
  await sleep(2000);
  since = Date.now();
  for (const n of others) await crash(lab, n);
  const frozen = await until(10, async () => (await agentEvents([host(survivor)])).find((e) => e.kind === "freeze" && Date.parse(e.at) >= since - 1000), (e) => !!e);
  t.regex(frozen?.message ?? "", /noQuorum freeze: keeping what runs here, starting nothing/);
  await sleep(3000);
  t.deepEqual(await runningOn(), [survivor], "freeze: it keeps serving without a majority");
  const served = await fetch(`http://${host(survivor).address}:18080/`, { signal: AbortSignal.timeout(2000) });
  t.true(served.ok, `it answers: ${served.status}`);
});
