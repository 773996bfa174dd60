import test from "ava";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { parse, stringify } from "yaml";
import { $ } from "zx";
import { agentEvents, agentState } from "../lib/ha/agent";
import { findHost, loadInventory } from "../lib/config/inventory";
import { down, labOptions } from "../lib/lab/lab";
import { freshLabStack } from "../lib/lab/stack";
import { Prober, summarize } from "../lib/lab/prober";
import { PulumiStack } from "../lib/pulumi";
import { freshness, syncOn } from "../lib/ha/replication";
import { locate } from "../lib/ha/service-container";
import { drainedMark } from "../lib/host/paths";
import { sshExec } from "../lib/host/ssh";
import { projectRoot } from "../lib/toolchain";
import { sleep, until } from "./helpers/poll";

/*
 * Node maintenance on a lab of its own: `edge-ha node drain` empties a node by
 * live migration while clients count through the services' virtual addresses,
 * the agents and pulumi up then leave it alone, and undrain puts it back;
 * a rolling upgrade; an early warning that drains a node by itself, and one
 * the policy "report" only says; roll-outs behind the health check. Real
 * engines, CRIU, swarm and failover agents.
 */
const dir = mkdtempSync(path.join(tmpdir(), "edge-ha-maint-test-"));
const lab = labOptions({ name: "maintest", subnetPrefix: "10.77.209", inventoryFile: path.join(dir, "inventory.yaml") });
const stack = new PulumiStack(projectRoot, "maintest");
const stackFile = path.join(projectRoot, "stacks", "Pulumi.maintest.yaml");
const inventory = () => loadInventory(lab.inventoryFile);
const host = (name: string) => findHost(inventory(), name);
const on = async (name: string, command: string) => (await sshExec(host(name), command)).stdout.trim();
/** Two CRIU services on node1, each with its own address, and a swarm service with a replica on every node. */
const criu = { counter: { vip: "10.77.209.200", port: 18080, standby: "node2" }, ledger: { vip: "10.77.209.201", port: 18082, standby: "node3" } };
const services = [
  ...Object.entries(criu).map(([name, s]) => ({ name, build: "services/counter", ports: [`${s.port}:8080`], primary: "node1", standby: s.standby, syncInterval: 1, failover: "auto", vip: s.vip })),
  { name: "replicas", build: "services/counter", ports: ["18090:8080"], mode: "swarm", replicas: 3 },
];
const edgeHa = (...args: string[]) => $({ quiet: true, nothrow: true })`${path.join(projectRoot, "bin", "edge-ha")} ${args} --inventory ${lab.inventoryFile}`;
const setServices = (list: unknown[]) => {
  const doc = parse(readFileSync(stackFile, "utf8"));
  doc.config["edge-ha:services"] = list;
  writeFileSync(stackFile, stringify(doc));
};
/** The nodes each CRIU service runs on, by name. */
const whereRuns = async () => Object.fromEntries(await Promise.all(Object.keys(criu).map(async (name) => [name, (await locate(inventory(), name)).map((h) => h.name)] as const)));
/** The swarm's tasks of `replicas` running on a node. */
const replicasOn = (name: string) => on(name, "docker ps -q --filter label=com.docker.swarm.service.name=replicas | wc -l");
const availability = () => on("node2", "docker node inspect node1 -f '{{.Spec.Availability}}'");

/** Where the agents read a node's firmware flags in this lab (a lab node has no firmware): a file the tests write, on /run (gone at a reboot). */
const throttledFile = "/run/edge-ha-test-throttled";

test.before(async () => {
  await freshLabStack(lab, stack, 3);
  setServices(services);
  const doc = parse(readFileSync(stackFile, "utf8"));
  // Leases of 2.5 s, not 0.5 s: this lab's three nodes share the test machine's cores with the
  // pulumi ups and image builds of these tests, and a stall of a few hundred ms there fenced a
  // node's services in the middle of a roll-out. Fencing and failover at the fast defaults are
  // autofailover.test.ts's and the nemesis's; here the subject is maintenance.
  doc.config["edge-ha:failover"] = { heartbeatMs: 500, leaseMs: 2500, downAfterMs: 4000, earlyWarnings: { policy: "drain", throttledFile } };
  writeFileSync(stackFile, stringify(doc));
  await stack.up();
});

test.after.always(async () => {
  await stack.forget();
  await down(lab);
});

const probers = new Set<Prober>();
test.afterEach.always(async () => {
  for (const p of probers) await p.stop();
  probers.clear();
});
/**
 * A client counting every 10 ms. It waits up to 10 s for an answer, as real
 * clients do: a connection whose SYN reaches an address in a move's frozen
 * window is answered after TCP's retransmissions (1 s, then 3 s later), which
 * the prober's default of 3 s would count as a failure. The gap says how long
 * a client waited.
 */
const probe = (target: { host: string; port: number }, timeoutMs = 10_000) => {
  const p = new Prober(target, 10, timeoutMs);
  probers.add(p);
  p.start();
  return p;
};

test.serial("the sync's checkpoints every second cost clients no SYN resend: CRIU dumps a running service without its network lock", async (t) => {
  // With the lock, CRIU dropped every packet to the service while it dumped, and a client's SYN
  // dropped is sent again 1, 3, 7 s later: at this 1 s interval a lab's client waited over 0.9 s
  // 32 times in 60 s (7.2 s once); without it, never more than 139 ms.
  const atVip = Object.entries(criu).map(([name, s]) => [name, probe({ host: s.vip, port: s.port })] as const);
  await sleep(15_000);
  for (const [name, p] of atVip) {
    const probes = await p.stop();
    const waited = probes.filter((x) => x.latency >= 950);
    const s = summarize(probes);
    t.log(`${name}: ${s.requests} requests, ${s.failed} failed, ${waited.length} waited a second or more, longest gap ${Math.round(s.longestGapMs)} ms`);
    t.is(s.failed, 0);
    // One allowed: a stall of this shared machine can hold a request that long; the lock held ~10 here.
    t.true(waited.length <= 1, `${name}: ${waited.map((x) => `${Math.round(x.latency)} ms`).join(", ")}`);
  }
  // The sync's last dump read the file without the lock; a migration's (checkpoint_exit) does not.
  const conf = /Parsing config file \/etc\/criu\/edge-ha-leave-running\.conf/;
  // Read between two rounds: each empties CRIU's work folder first.
  t.regex(await until(10, () => on("node1", "head -n 5 /run/edge-ha-criu-counter/dump.log 2>/dev/null || true"), (log) => conf.test(log), 100), conf);
  t.is(await on("node1", "sed -n 2p /etc/criu/default.conf; grep -c network-lock /etc/criu/runc.conf || true"), "network-lock nftables\n0");
});

test.serial("drain of a node running two CRIU services and a swarm replica, under clients: every request at the addresses answered, every count kept, nothing left on the node", async (t) => {
  for (const name of Object.keys(criu)) t.deepEqual((await locate(inventory(), name)).map((h) => h.name), ["node1"], `${name} starts on node1`);
  t.is(await until(60, () => replicasOn("node1"), (n) => n === "1", 500), "1", "a swarm replica runs on node1");

  const atVip = Object.fromEntries(Object.entries(criu).map(([name, s]) => [name, probe({ host: s.vip, port: s.port })]));
  // The replica on a node the drain leaves (ports are published in host mode: a task per node).
  const atSwarm = probe({ host: host("node2").address, port: 18090 });
  await sleep(2000);
  const drain = await edgeHa("node", "drain", "node1", "--json");
  await sleep(2000);
  t.is(drain.exitCode, 0, drain.stderr);
  const result = JSON.parse(drain.stdout);
  t.log(drain.stderr.trim());
  t.log(result.moves.map((m: { service: string; to: string; downtimeMs: number }) => `${m.service} -> ${m.to}: downtime ${m.downtimeMs} ms`).join("; "));
  t.true(result.complete, drain.stdout);

  for (const [name, s] of Object.entries(criu)) {
    const summary = summarize(await atVip[name].stop());
    t.log(`${name} at ${s.vip}: ${summary.requests} requests, ${summary.failed} failed ${JSON.stringify(summary.failures)}, longest gap ${Math.round(summary.longestGapMs)} ms`);
    t.is(summary.failed, 0, `${name}: no request at its address failed: ${JSON.stringify(summary.failures)}`);
    t.is(summary.lostIncrements ?? 0, 0, `${name}: every acknowledged count is kept`);
    const move = result.moves.find((m: { service: string }) => m.service === name);
    t.is(move.to, s.standby, `${name} moved to its standby ${s.standby}`);
    t.deepEqual((await locate(inventory(), name)).map((h) => h.name), [s.standby], `${name} runs once, on ${s.standby}`);
    t.not((await syncOn(host(s.standby), name))?.standby, "node1", `${name}'s checkpoints go elsewhere than node1`);
  }
  const swarm = summarize(await atSwarm.stop());
  t.log(`replicas on node2: ${swarm.requests} requests, ${swarm.failed} failed, longest gap ${Math.round(swarm.longestGapMs)} ms`);
  t.is(swarm.failed, 0, "the replica on node2 answered throughout");
  t.deepEqual(result.swarm, { tasks: 1, below: ["replicas 2/3"] }, "its port in host mode allows one task per node: the drain says the third waits");
  t.is(await on("node1", "docker ps -q | wc -l"), "0", "no container runs on node1");
  t.is(await availability(), "drain");
  t.deepEqual([await replicasOn("node2"), await replicasOn("node3")], ["1", "1"], "the replicas of node2 and node3 run on");

  // The agents know, and do not give node1 its standbys back (their reconcile orders after 3 s).
  t.deepEqual((await agentState(host("node2")))?.drained, ["node1"]);
  await sleep(8000);
  for (const [name, s] of Object.entries(criu)) t.not((await syncOn(host(s.standby), name))?.standby, "node1", `${name}: the agents leave its standby off node1`);
  t.regex((await edgeHa("node", "list")).stdout, /^node1 .* drained$/m);
});

test.serial("pulumi preview with a new service placed on a drained node refuses it before any change, naming the setting and the fix", async (t) => {
  setServices([...services, { name: "fresh", build: "services/counter", ports: ["18084:8080"], primary: "node1", standby: "node2" }]);
  try {
    const err = await t.throwsAsync(stack.preview());
    t.regex(err!.message, /edge-ha:services\[3\]\.primary: node1 is drained \(edge-ha node drain\) and fresh runs nowhere yet, so pulumi up would start it there\. Set another primary, or run 'edge-ha node undrain node1' first/);
  } finally {
    setServices(services);
  }
  t.is(await on("node1", "docker ps -q | wc -l"), "0", "nothing started on node1");
});

test.serial("undrain puts the node back: no mark, active in the swarm, and the agents make it the standby its placement prefers", async (t) => {
  // Where they run now (a lease that lapsed under load may have moved one since the drain).
  const where = await whereRuns();
  for (const name of Object.keys(criu)) t.is(where[name].length, 1, `${name} runs once: ${where[name].join(", ")}`);
  const undrain = await edgeHa("node", "undrain", "node1");
  t.is(undrain.exitCode, 0, undrain.stderr);
  t.regex(undrain.stdout, /node1 is back in placement and active in the swarm; services stay where they run/);
  t.is(await on("node1", `test -e ${drainedMark} && echo marked || echo none`), "none");
  t.is(await availability(), "active");
  t.is(await until(60, () => replicasOn("node1"), (n) => n === "1", 500), "1", "swarm runs its third replica on node1 again");
  t.deepEqual((await agentState(host("node2")))?.drained, []);
  // Both services list node1 first in their placement: their sync feeds it again, with no command.
  for (const name of Object.keys(criu)) {
    const standby = await until(30, async () => (await syncOn(host(where[name][0]), name))?.standby, (v) => v === "node1", 500);
    t.is(standby, "node1", `${name} on ${where[name][0]} syncs to node1 again`);
    t.deepEqual((await locate(inventory(), name)).map((h) => h.name), where[name], `${name} stays where it runs`);
  }
});

test.serial("a rolling upgrade of the three nodes with real reboots: every request at the addresses answered, every count kept, each node booted anew and whole", async (t) => {
  const nodes = inventory().hosts.map((h) => h.name);
  // /run is a tmpfs: a mark there survives anything but a new boot.
  for (const n of nodes) await on(n, "touch /run/before-upgrade; rm -f /var/lib/edge-ha-upgraded");
  const atVip = Object.fromEntries(Object.entries(criu).map(([name, s]) => [name, probe({ host: s.vip, port: s.port })]));
  const upgrade = await edgeHa("fleet", "upgrade", "--command", "touch /var/lib/edge-ha-upgraded", "--reboot", "always", "--json");
  t.log(upgrade.stderr.trim().split("\n").filter((l) => /upgrade \d|rebooting|->/.test(l)).join("\n"));
  t.is(upgrade.exitCode, 0, upgrade.stderr);
  const result = JSON.parse(upgrade.stdout);
  t.deepEqual(result.upgraded.map((u: { node: string; rebooted: boolean }) => [u.node, u.rebooted]), nodes.map((n) => [n, true]));
  t.log(result.upgraded.map((u: { node: string; seconds: number; backAfterMs: number }) => `${u.node}: ${u.seconds.toFixed(0)} s, up again ${u.backAfterMs} ms after its reboot`).join("; "));

  for (const [name, s] of Object.entries(criu)) {
    const summary = summarize(await atVip[name].stop());
    t.log(`${name} at ${s.vip}: ${summary.requests} requests, ${summary.failed} failed ${JSON.stringify(summary.failures)}, longest gap ${Math.round(summary.longestGapMs)} ms`);
    t.is(summary.failed, 0, `${name}: no request at its address failed: ${JSON.stringify(summary.failures)}`);
    t.is(summary.lostIncrements ?? 0, 0, `${name}: every acknowledged count is kept`);
    t.is((await locate(inventory(), name)).length, 1, `${name} runs once`);
  }
  for (const n of nodes) {
    t.is(await on(n, "test -e /run/before-upgrade && echo same-boot || echo booted; cat /var/lib/edge-ha-upgraded >/dev/null && echo upgraded"), "booted\nupgraded", n);
    const state = await agentState(host(n));
    t.true((state?.leaseMs ?? 0) > 0 && !state?.fenced, `${n}'s agent holds its lease`);
  }
  t.deepEqual((await agentState(host("node1")))?.drained, [], "no node is left drained");
  t.regex(await on("node1", "docker node ls --format '{{.Hostname}} {{.Status}} {{.Availability}}' | sort"), /^node1 Ready Active\nnode2 Ready Active\nnode3 Ready Active$/);
});

test.serial("an early warning: under-voltage on a node's firmware flags drains it by itself; its CRIU services are handed over with every count kept; undrain, and the same signal does not drain it again", async (t) => {
  const where = await whereRuns();
  for (const name of Object.keys(criu)) t.is(where[name].length, 1, `${name} runs once: ${where[name].join(", ")}`);
  // The node that runs the most of them.
  const counts = new Map<string, number>();
  for (const [n] of Object.values(where)) counts.set(n, (counts.get(n) ?? 0) + 1);
  const node = [...counts.entries()].sort((a, b) => b[1] - a[1])[0][0];
  const moving = Object.keys(criu).filter((name) => where[name][0] === node);
  const atVip = Object.fromEntries(moving.map((name) => [name, probe({ host: criu[name as keyof typeof criu].vip, port: criu[name as keyof typeof criu].port })]));
  await sleep(1500);

  const began = Date.now();
  await on(node, `echo 0x50005 > ${throttledFile}`);
  const drained = await until(15, () => on(node, `cat ${drainedMark} 2>/dev/null || true`), (m) => m !== "", 250);
  t.regex(drained, /^early warning: throttled: under-voltage now \(get_throttled 0x50005\)/, "the node drained itself, saying why");
  for (const name of moving) {
    const on2 = await until(30, async () => (await locate(inventory(), name)).map((h) => h.name), (r) => r.length === 1 && r[0] !== node, 250);
    t.log(`${name}: ${node} -> ${on2.join(", ")} ${((Date.now() - began) / 1000).toFixed(1)} s after the signal`);
    t.true(on2.length === 1 && on2[0] !== node, `${name} runs once, elsewhere: ${on2.join(", ")}`);
  }
  await sleep(1500);
  for (const name of moving) {
    const s = summarize(await atVip[name].stop());
    t.log(`${name} at its address: ${s.requests} requests, ${s.failed} failed ${JSON.stringify(s.failures)}, longest gap ${Math.round(s.longestGapMs)} ms, ${s.lostIncrements ?? 0} counts lost`);
    // None: a request held past the client's 10 s came from a second handover ordered on a report
    // sent before the first ended; it found no copy, failed, and held the service 10 s (2 of 13 in a lab).
    t.is(s.failed, 0, `${name}: no request at its address failed: ${JSON.stringify(s.failures)}`);
    t.is(s.lostIncrements ?? 0, 0, `${name}: handed over with its state: every acknowledged count kept`);
  }
  const events = (await agentEvents(inventory().hosts)).filter((e) => Date.parse(e.at) >= began - 1000);
  const said = (kind: string, re: RegExp) => events.some((e) => e.kind === kind && re.test(e.message));
  t.true(said("health", /^throttled critical: under-voltage now/), "the agent said the signal");
  t.true(said("drain", new RegExp(`throttled is critical .*'edge-ha node undrain ${node}'`)), "and that it drains itself");
  for (const name of moving) t.true(events.some((e) => e.kind === "handed-over" && e.service === name), `${name}: handed over`);
  t.regex((await edgeHa("node", "list")).stdout, new RegExp(`^${node} .* drained$`, "m"));
  t.is(await on(node, "docker ps -q --filter label=edge-ha.service | wc -l"), "0", "no CRIU service runs on the drained node");

  // The operator undrains it while the signal holds: it stays in placement.
  t.is((await edgeHa("node", "undrain", node)).exitCode, 0);
  await sleep(5000);
  t.is(await on(node, `test -e ${drainedMark} && echo drained || echo placed`), "placed", "the same signal does not drain it again");
  await on(node, `echo 0x0 > ${throttledFile}`);
  t.true(await until(10, async () => (await agentEvents([host(node)])).some((e) => e.kind === "health" && /^throttled: no longer a sign of trouble/.test(e.message) && Date.parse(e.at) >= began), (v) => v, 500), "the agent said it cleared");
});

test.serial("new service settings roll out where the service runs, behind its health check: a new image that never passes it is rolled back, the old version restored with every count; settings that pass replace it, clients at its address waiting through the switch", async (t) => {
  // The stack says where each CRIU service runs now (the tests before moved them), as an operator would.
  const placed = await Promise.all(
    services.map(async (s): Promise<Record<string, unknown>> => {
      if ("mode" in s) return s;
      const [runs] = (await locate(inventory(), s.name)).map((h) => h.name);
      // Its sync to the standby the agents chose (restarted after the drain tests' moves, in their time).
      const sync = await until(30, () => syncOn(host(runs), s.name), (v) => !!v, 500);
      return { ...s, primary: runs, standby: sync!.standby };
    }),
  );
  setServices(placed);
  await stack.up();
  const counter = placed.find((s) => s.name === "counter") as { primary: string; standby: string };
  const withCounter = (change: Record<string, unknown>) => setServices(placed.map((s) => (s.name === "counter" ? { ...s, ...change } : s)));

  // Clients that wait 30 s: a failed roll-out leaves no version serving for readySeconds and a few
  // seconds more (dump, start, restore), and TCP's resends (a SYN's at 1, 3, 7, 15 s) can take a
  // client past a 10 s wait. What is checked is that no client is refused or finds no host; the gap
  // says how long they waited.
  const atVip = probe({ host: criu.counter.vip, port: criu.counter.port }, 30_000);
  await sleep(1500);
  withCounter({ build: "test/fixtures/never-ready", readySeconds: 3 });
  const refused = await t.throwsAsync(stack.up());
  t.regex(
    refused!.message,
    new RegExp(`counter on ${counter.primary}: the new version \\(edge-ha/never-ready:[0-9a-f]{12}\\) did not pass its tcp health check within 3 s \\(readySeconds\\) of its start; rolled back: the old version \\(edge-ha/counter:[0-9a-f]{12}\\) is restored from the checkpoint taken as it stopped, with its state`),
  );
  await sleep(1000);
  const rolledBack = summarize(await atVip.stop());
  t.log(`rollback: ${rolledBack.requests} requests at the address, ${rolledBack.failed} failed ${JSON.stringify(rolledBack.failures)}, longest gap ${Math.round(rolledBack.longestGapMs)} ms at ${Math.round(rolledBack.gapAt)} ms, ${rolledBack.lostIncrements ?? 0} counts lost`);
  t.is(rolledBack.lostIncrements ?? 0, 0, "the old version goes on from the count it had: every acknowledged count kept");
  t.is(rolledBack.failed, 0, "clients at its address waited, none was refused");
  t.deepEqual((await locate(inventory(), "counter")).map((h) => h.name), [counter.primary], "it runs once, where it ran");
  t.is(await on(counter.primary, "docker ps -aq --filter name=counter-before-rollout | wc -l"), "0", "nothing of the roll-out left");
  t.truthy(await until(15, () => freshness(host(counter.standby), "counter"), (f) => !!f && f.age < 3, 500), "its sync runs again: the standby gets fresh checkpoints");

  // The old settings again: nothing to do for the service (the failed update changed nothing in the
  // stack's state); only the new image the failed up sent to the nodes goes.
  setServices(placed);
  const back = await stack.up();
  t.deepEqual(Object.keys(back.summary).filter((k) => k !== "unchanged" && k !== "deleted"), [], back.output);
  t.notRegex(back.output, /counter-(start|sync)/, "the service itself is untouched");
  for (const line of back.output.split("\n").filter((l) => / deleted \(/.test(l))) t.regex(line, /never-ready/, "only the never-ready image goes");

  // New settings that pass: the new version serves in its place.
  const atVip2 = probe({ host: criu.counter.vip, port: criu.counter.port }, 30_000);
  await sleep(1500);
  withCounter({ env: { RELEASE: "2" } });
  const upped = await stack.up();
  await sleep(1000);
  const rolledOut = summarize(await atVip2.stop());
  t.log(`roll-out: ${rolledOut.requests} requests at the address, ${rolledOut.failed} failed ${JSON.stringify(rolledOut.failures)}, longest gap ${Math.round(rolledOut.longestGapMs)} ms; the new version started from count ${rolledOut.countAfter}`);
  t.is(rolledOut.failed, 0, "clients at its address waited through the switch, none was refused");
  t.regex(await on(counter.primary, "docker container inspect -f '{{.Config.Env}}' counter"), /RELEASE=2/, "the new settings run");
  t.deepEqual((await locate(inventory(), "counter")).map((h) => h.name), [counter.primary], "once, where it ran");
  t.regex(upped.output, /counter-start.*updated|updated.*counter-start|~.*counter-start/s);
  t.truthy(await until(15, () => freshness(host(counter.standby), "counter"), (f) => !!f && f.age < 3, 500), "the new version syncs to the standby");
  t.deepEqual(Object.keys((await stack.up()).summary), ["unchanged"], "then up is a no-op");
});

test.serial("with the early-warning policy report, a critical signal is only said: the node is not drained and its services run on where they are", async (t) => {
  const doc = parse(readFileSync(stackFile, "utf8"));
  doc.config["edge-ha:failover"] = { ...doc.config["edge-ha:failover"], earlyWarnings: { policy: "report", throttledFile } };
  writeFileSync(stackFile, stringify(doc));
  await stack.up();
  const before = await whereRuns();
  const [node] = before.counter;
  const began = Date.now();
  try {
    await on(node, `echo 0x50005 > ${throttledFile}`);
    const signal = (e: { kind: string; message: string }) => e.kind === "health" && /^throttled critical: under-voltage now/.test(e.message);
    const since = await until(10, async () => (await agentEvents([host(node)])).filter((e) => Date.parse(e.at) >= began), (es) => es.some(signal), 500);
    t.true(since.some(signal), "the agent said the signal");
    // With drain, the mark came within a signal round (2 s) and the handover began a heartbeat later.
    await sleep(6000);
    t.is(await on(node, `test -e ${drainedMark} && echo drained || echo placed`), "placed", `${node} is not drained`);
    t.deepEqual(await whereRuns(), before, "every service runs where it ran");
    const moved = (await agentEvents(inventory().hosts)).filter((e) => Date.parse(e.at) >= began && ["drain", "handover", "handed-over", "failover"].includes(e.kind));
    t.deepEqual(moved.map((e) => `${e.kind} ${e.message}`), [], "no drain, handover or failover");
  } finally {
    await on(node, `echo 0x0 > ${throttledFile}`);
  }
});
