import test from "ava";
import { parseInventory } from "../lib/config/inventory";
import { fleetView } from "../lib/dashboard/fleet-view";
import { parseSample, type HostSample } from "../lib/dashboard/sample";

/*
 * The dashboard's rules that need no hosts: how a node's sample reads, when
 * a node is down as the agents see it, and which alerts the page shows. The
 * page itself is tested in a real browser on the lab (dashboard.test.ts).
 */

const fleet = parseInventory(`cluster: lab\ndefaults: { ssh: { privateKeyFile: id, knownHostsFile: kh } }\nhosts:\n${[1, 2, 3].map((n) => `  - { name: node${n}, address: 10.0.0.${n}, roles: [manager] }\n`).join("")}`, "inventory/lab.yaml");
const now = 1_000_000;

/** A sample of `node` taken `agoMs` before now, its agent having heard each node `heard` ms before it wrote its state, `stateAgeMs` before the sample. */
function sample(node: string, heard: Record<string, number>, more: Partial<HostSample> = {}, agoMs = 100, stateAgeMs = 200): HostSample {
  const nodeNow = now - agoMs;
  return {
    ...parseSample(node, `@now ${nodeNow}\n@downAfterMs 800\n`, now - agoMs),
    agent: { node, at: new Date(nodeNow - stateAgeMs).toISOString(), heardMsAgo: heard, services: ["counter"], leaseMs: 400 },
    ...more,
  };
}

test("a round's lines: load, memory, versions, swarm, containers, syncs, vips, checkpoints, events; what a round does not read is the round before's", (t) => {
  const s = parseSample(
    "node2",
    [
      "@now 1700000000123",
      "@load 0.50 0.40 0.30",
      "@mem 1000 250",
      "@arch x86_64",
      "@docker 20.10.24",
      "@criu 4.1.1",
      "@downAfterMs 800",
      "@swarm-list",
      "@swarm web\t2/3\t*:18090->8080/tcp",
      '@state {"node":"node2","at":"2023-11-14T22:13:20.000Z","leaseMs":300}',
      "@services",
      "@container counter\trunning\t18080\tUp 3 minutes",
      "@sync counter node3 2",
      "@sync ledger node1 1 3",
      "@paused ledger 1700000000000",
      "@vip counter 10.0.0.200 held",
      "@newest ledger s1700000000 1699999999.5",
      '@event {"at":"2023-11-14T22:13:19.000Z","node":"node2","kind":"restored","service":"counter","message":"restored"}',
    ].join("\n"),
    42,
  );
  t.like(s, { node: "node2", receivedAt: 42, nodeNow: 1700000000123, arch: "x86_64", docker: "20.10.24", criu: "4.1.1", downAfterMs: 800 });
  t.deepEqual(s.load, [0.5, 0.4, 0.3]);
  t.deepEqual(s.memory, { totalKb: 1000, availableKb: 250 });
  t.deepEqual(s.swarmServices, [{ name: "web", replicas: "2/3", ports: "*:18090->8080/tcp" }]);
  t.deepEqual(s.containers, [{ service: "counter", state: "running", hostPort: 18080, status: "Up 3 minutes" }]);
  t.deepEqual(s.syncs, [{ service: "counter", standby: "node3", intervalSeconds: 2 }, { service: "ledger", standby: "node1", intervalSeconds: 1, maxLagSeconds: 3 }]);
  t.deepEqual(s.paused, [{ service: "ledger", since: 1700000000000 }]);
  t.deepEqual(s.vips, [{ service: "counter", address: "10.0.0.200", held: true }]);
  t.deepEqual(s.newest, [{ service: "ledger", checkpoint: "s1700000000", takenAt: 1699999999500 }]);
  t.is(s.events.length, 1);
  const next = parseSample("node2", "@now 1700000000373\n@load 0.6 0.4 0.3\n@mem 1000 200\n", 43, s);
  t.like(next, { nodeNow: 1700000000373, docker: "20.10.24", downAfterMs: 800, events: [] });
  t.deepEqual([next.containers, next.syncs, next.paused, next.vips, next.newest, next.swarmServices], [s.containers, s.syncs, s.paused, s.vips, s.newest, s.swarmServices], "a round without them carries them over");
  t.deepEqual(parseSample("node2", "@now 1\n@services\n", 44, s).containers, [], "a services round that finds none: none");
  t.is(parseSample("node2", "@now 1\n@services\n@engine down\n", 1).containers, undefined, "an engine that does not answer: no containers known (not none)");
});

test("a node is down when a majority of the controllers had not heard it for downAfterMs when they wrote their state", (t) => {
  const at = (heard1: number) => new Map([["node2", sample("node2", { node1: heard1, node2: 0, node3: 150 })], ["node3", sample("node3", { node1: heard1, node2: 100, node3: 0 })]]);
  t.is(fleetView(fleet, at(800), now).nodes[0].agents, "up", "800 ms is not more than downAfterMs");
  t.is(fleetView(fleet, at(801), now).nodes[0].agents, "down");
  t.is(fleetView(fleet, at(700), now + 1000).nodes[0].agents, "up", "not aged by the time since: the node may have been heard since (aging said down of live nodes)");
  // One controller alone is no majority of three.
  const one = new Map([["node2", sample("node2", { node1: 5000, node2: 0, node3: 100 })], ["node3", sample("node3", { node1: 100, node2: 100, node3: 0 })]]);
  t.is(fleetView(fleet, one, now).nodes[0].agents, "up");
  // A controller whose agent stopped writing (state 4 s old) is not counted: the other alone is no majority.
  const stale = new Map([["node2", sample("node2", { node1: 5000 })], ["node3", sample("node3", { node1: 5000 }, {}, 100, 4000)]]);
  t.is(fleetView(fleet, stale, now).nodes[0].agents, "unknown", "node2 alone says down, node3's word is too old to count: no majority either way");
  t.is(fleetView(fleet, new Map(), now).nodes[0].agents, "unknown", "no controller answers: no word");
});

test("alerts: a node down, a service running nowhere, or on two nodes, a standby's checkpoint older than twice the interval, a copy its lag guard paused", (t) => {
  const running = (node: string) => ({ containers: [{ service: "counter", state: "running", hostPort: 18080, status: "Up" }], syncs: [{ service: "counter", standby: "node2", intervalSeconds: 1 }] });
  const node2 = (takenAgo: number) => sample("node2", { node1: 100 }, { newest: [{ service: "counter", checkpoint: "s1", takenAt: now - 100 - takenAgo }] });
  const ok = fleetView(fleet, new Map([["node1", sample("node1", { node1: 0 }, running("node1"))], ["node2", node2(1500)], ["node3", sample("node3", { node1: 100 })]]), now);
  t.deepEqual(ok.alerts, []);
  const paused = fleetView(fleet, new Map([["node1", sample("node1", { node1: 0 }, { ...running("node1"), containers: [{ service: "counter", state: "paused", status: "Up (Paused)" }] })], ["node2", node2(1500)], ["node3", sample("node3", { node1: 100 })]]), now);
  t.deepEqual(paused.services[0].runningOn, ["node1"], "paused by CRIU for a checkpoint (--leave-running) is running");
  t.like(ok.services[0], { name: "counter", runningOn: ["node1"], standby: "node2", intervalSeconds: 1, endpoint: "10.0.0.1:18080", failover: "auto" });
  t.is(Math.round(ok.services[0].checkpointAgeMs!), 1600, "its age now: taken 1500 ms before a sample 100 ms old");

  const stale = fleetView(fleet, new Map([["node1", sample("node1", { node1: 0 }, running("node1"))], ["node2", node2(2100)], ["node3", sample("node3", { node1: 100 })]]), now);
  t.deepEqual(stale.alerts.map((a) => a.kind), ["stale-checkpoint"]);
  t.regex(stale.alerts[0].message, /counter: the newest checkpoint on node2 is 2\.2 s old, more than twice its 1 s interval/);

  const twice = fleetView(fleet, new Map([["node1", sample("node1", { node1: 0 }, running("node1"))], ["node2", sample("node2", { node1: 100 }, running("node2"))], ["node3", sample("node3", {})]]), now);
  t.true(twice.alerts.some((a) => a.kind === "two-copies" && a.message === "counter runs on node1 and node2: two copies"));

  // Its lag guard holds it paused (maxLag 3 s): said, with how long, on this machine's clock.
  const held = fleetView(fleet, new Map([["node1", sample("node1", { node1: 0 }, { containers: running("node1").containers, syncs: [{ service: "counter", standby: "node2", intervalSeconds: 1, maxLagSeconds: 3 }], paused: [{ service: "counter", since: now - 100 - 3900 }] })], ["node2", node2(500)], ["node3", sample("node3", { node1: 100 })]]), now);
  t.like(held.services[0], { maxLagSeconds: 3, pausedSince: now - 4000 });
  t.deepEqual(held.alerts.map((a) => a.message), ["counter is paused (for 4.0 s): its standby node2 lags more than its maxLag of 3 s; it resumes when a checkpoint gets there"]);

  // node1 went down, with the service: it runs nowhere, known from before.
  const gone = fleetView(fleet, new Map([["node2", sample("node2", { node1: 3000 })], ["node3", sample("node3", { node1: 3000 })]]), now, new Set(["counter"]));
  t.deepEqual(gone.alerts.map((a) => `${a.kind} ${a.node ?? a.service}`), ["node-down node1", "runs-nowhere counter"]);
  t.false(gone.nodes[0].answers);

  // An agent's critical early warning (agent/signals.go) is an alert; a warning only shows on its node.
  const warned = (level: string) => sample("node3", { node1: 100 }, { agent: { node: "node3", at: new Date(now - 300).toISOString(), heardMsAgo: { node1: 100 }, signals: [{ name: "throttled", level, message: "under-voltage now" }] } });
  const critical = fleetView(fleet, new Map([["node1", sample("node1", { node1: 0 }, running("node1"))], ["node2", node2(500)], ["node3", warned("critical")]]), now);
  t.deepEqual(critical.alerts.map((a) => a.message), ["node3: throttled: under-voltage now"]);
  t.deepEqual(fleetView(fleet, new Map([["node1", sample("node1", { node1: 0 }, running("node1"))], ["node2", node2(500)], ["node3", warned("warning")]]), now).alerts, []);
});
