import test from "ava";
import { check, type FaultWindow, type Sample } from "../lib/lab/nemesis-check";
import { faultKinds, plan, resolveTarget } from "../lib/lab/nemesis-plan";
import type { Probe } from "../lib/lab/prober";

/** A client's history: one acknowledged increment per [sent ms, count], each answered in 2 ms. */
const acks = (...pairs: [number, number][]): Probe[] => pairs.map(([sent, count]) => ({ sent, latency: 2, ok: true, count }));
const crashOf = (node: string, start: number, end: number): FaultWindow => ({ kind: "crash", node, start, end });

test("a seed gives the same schedule every time; another seed another; faults never overlap and end in time", (t) => {
  const a = plan({ seed: 7, durationMs: 120_000, kinds: faultKinds });
  t.deepEqual(plan({ seed: 7, durationMs: 120_000, kinds: faultKinds }), a);
  t.notDeepEqual(plan({ seed: 8, durationMs: 120_000, kinds: faultKinds }), a);
  t.true(a.length >= 4, `${a.length} faults in 2 minutes`);
  for (const [i, f] of a.entries()) {
    t.true(f.at + f.holdMs <= 120_000);
    if (i > 0) t.true(f.at >= a[i - 1].at + a[i - 1].holdMs, "one fault at a time");
  }
  t.deepEqual(new Set(plan({ seed: 1, durationMs: 3_600_000, kinds: ["crash", "pause-node"] }).map((f) => f.kind)), new Set(["crash", "pause-node"]));
});

test("a fault aimed at the serving node hits it; one aimed elsewhere does not; a pair partition gets another node as peer", (t) => {
  const nodes = ["node1", "node2", "node3"];
  t.is(resolveTarget({ at: 0, kind: "crash", target: "serving", pick: 0.9, holdMs: 1 }, nodes, ["node2"]).node, "node2");
  t.not(resolveTarget({ at: 0, kind: "crash", target: "other", pick: 0.9, holdMs: 1 }, nodes, ["node2"]).node, "node2");
  for (const pick of [0, 0.3, 0.6, 0.99]) {
    const { node, peer } = resolveTarget({ at: 0, kind: "pair-partition", target: "other", pick, holdMs: 1 }, nodes, ["node1"]);
    t.truthy(peer);
    t.not(peer, node);
  }
});

test("no violation: counting on across a crash, the writes of the last interval before it lost", (t) => {
  // Interval 1 s: the copy restored at 6 s holds count 40 (checkpoint at 4.1 s); the writes acknowledged as 41 and 45 (4.2 and 4.9 s) are lost.
  const probes = acks([1000, 10], [4100, 40], [4200, 41], [4900, 45], [6000, 41], [6100, 42]);
  const r = check(probes, [{ at: 0, copies: { counter: ["node1"] } }, { at: 5900, copies: { counter: ["node2"] } }], [crashOf("node1", 5000, 5900)], { intervalMs: 1000 });
  t.deepEqual(r.violations, []);
  t.is(r.lostWrites, 2, "the acknowledgements of 41 and 45 the client saw");
  t.deepEqual(r.servedAgainMs, [0]);
});

test("lost writes older than the interval + slack before the fault are a violation, with the numbers", (t) => {
  // The restored copy holds 20: the writes acknowledged as 21 (at 2.0 s, 3 s before the crash at 5 s) and 45 are lost.
  const probes = acks([1000, 20], [2000, 21], [4900, 45], [7000, 21]);
  const r = check(probes, [], [crashOf("node1", 5000, 6000)], { intervalMs: 1000 });
  t.is(r.violations.length, 1);
  t.is(r.violations[0].kind, "lost writes");
  t.regex(r.violations[0].message, /from 45 to 21 .* 2 acknowledged writes lost, the earliest acknowledged at 2002 ms, 2998 ms before the crash of node1 began \(allowed: 2000\)/);
});

test("lost writes are measured against the fault on the node that acknowledged them: a starved primary's, not a crash elsewhere that came later; a fault on another node excuses nothing", (t) => {
  const onNode1: Sample[] = [{ at: 0, copies: { counter: ["node1"] } }, { at: 27_000, copies: { counter: ["node2"] } }];
  const starve: FaultWindow = { kind: "starve-node", node: "node1", start: 5000, end: 15_000 };
  // Checkpoint at 4.4 s (40); node1, starved at 5 s, acknowledges up to 45 until its agent fences the copy at 6.5 s; restored at 26 s, after a crash of node3.
  const probes = acks([1000, 10], [4400, 40], [4500, 41], [6500, 45], [26_000, 41], [30_500, 42]);
  const measured = check(probes, onNode1, [starve, crashOf("node3", 25_000, 30_000)], { intervalMs: 1000, service: "counter" });
  t.deepEqual(measured.violations, [], "within the interval + slack before the starvation began");
  t.is(measured.lostWrites, 2);
  t.is(check(probes, onNode1, [starve, crashOf("node3", 25_000, 30_000)], { intervalMs: 1000 }).violations.length, 1, "without the service, the most recent fault, as before");

  // A partition of node2 at 5 s has nothing to do with node1's copy, which ran 25 s ahead of its standby until node1 crashed.
  const stale = acks([1000, 10], [4400, 40], [4500, 41], [29_000, 60], [31_000, 41]);
  const r = check(stale, onNode1, [{ kind: "partition", node: "node2", start: 5000, end: 8000 }, crashOf("node1", 30_000, 31_000)], { intervalMs: 1000, service: "counter" });
  t.is(r.violations.length, 1);
  t.regex(r.violations[0].message, /the earliest acknowledged at 4502 ms, 25498 ms before the crash of node1 began/);
});

test("a service with a maxLag promises that instead: a loss acknowledged within maxLag + slack is within it, however early the standby fell behind; a longer one is a violation", (t) => {
  // The standby fell behind at 4.4 s (count 40); the copy, paused 2 s later by its lag guard, acknowledged 41-45 until 6.4 s; node1 crashed at 30 s.
  const onNode1: Sample[] = [{ at: 0, copies: { counter: ["node1"] } }, { at: 31_000, copies: { counter: ["node2"] } }];
  const paused = acks([1000, 10], [4400, 40], [4500, 41], [6400, 45], [31_000, 41]);
  const crash = [crashOf("node1", 30_000, 31_000)];
  t.is(check(paused, onNode1, crash, { intervalMs: 1000, service: "counter" }).violations.length, 1, "without maxLag: lost long before the crash");
  const r = check(paused, onNode1, crash, { intervalMs: 1000, maxLagMs: 2000, service: "counter" });
  t.deepEqual(r.violations, []);
  t.is(r.lostWrites, 2);
  // Served on unpaused for 24 s: acknowledged over 24.5 s, far past maxLag.
  const unpaused = acks([1000, 10], [4400, 40], [4500, 41], [29_000, 60], [31_000, 41]);
  const v = check(unpaused, onNode1, crash, { intervalMs: 1000, maxLagMs: 2000, service: "counter" }).violations;
  t.is(v.length, 1);
  t.regex(v[0].message, /acknowledged over 24500 ms \(maxLag 2000 \+ 1000 allowed\)/);
});

test("state going back with no fault before it is a violation", (t) => {
  const r = check(acks([1000, 5], [2000, 6], [3000, 4]), [], [], { intervalMs: 1000 });
  t.deepEqual(r.violations.map((v) => v.kind), ["lost writes"]);
  t.regex(r.violations[0].message, /with no fault before it/);
});

test("two running copies of a service in consecutive samples are a violation naming it, both nodes and the processes first counted; a single sample is not", (t) => {
  const counter = (...nodes: string[]) => ({ counter: nodes, web: ["node3"] });
  const samples: Sample[] = [
    { at: 0, copies: counter("node1") },
    { at: 250, copies: counter("node1", "node2") },
    { at: 500, copies: counter("node2") },
    { at: 750, copies: counter("node2", "node3"), seen: { counter: ["node2 pid 41 Ss node", "node3 pid 52 Ss node"] } },
    { at: 1000, copies: counter("node2", "node3") },
    { at: 1250, copies: counter("node3") },
  ];
  const r = check([], samples, [], { intervalMs: 1000 });
  t.deepEqual(r.violations.map((v) => v.kind), ["two copies"]);
  t.regex(r.violations[0].message, /counter: node2 and node3 both ran it from 750 to 1000 ms \(2 samples\); first sample: node2 pid 41 Ss node, node3 pid 52 Ss node$/);
});

test("a service that runs on no node longer than the bound, or at the end, is a violation, watched by a client or not", (t) => {
  const at = (ms: number, web: string[]) => ({ at: ms, copies: { counter: ["node1"], web } });
  const samples: Sample[] = [at(0, ["node2"]), at(1000, []), at(5000, ["node3"]), at(6000, []), at(50_000, []), at(60_000, ["node1"]), at(61_000, [])];
  const r = check([], samples, [], { intervalMs: 1000, servedAgainWithinMs: 30_000 });
  t.deepEqual(r.violations.map((v) => v.message), [
    "web ran on no node from 6000 ms to 60000 ms (allowed: 30000)",
    "web ran on no node from 61000 ms to the end of the run (allowed: 30000)",
  ]);
});

test("a client never served again after a fault, or served too late, is a violation; the time to serve again and the longest gap are measured", (t) => {
  const probes = acks([1000, 1], [1100, 2], [20_000, 3]);
  const r = check(probes, [], [crashOf("node1", 1500, 5000)], { intervalMs: 1000, servedAgainWithinMs: 10_000 });
  t.deepEqual(r.violations.map((v) => v.kind), ["not served again"]);
  t.is(Math.round(r.servedAgainMs[0]!), 15_002);
  t.is(r.longestGapMs[0], 18_900);
  t.deepEqual(check(acks([1000, 1]), [], [crashOf("node1", 1500, 5000)], { intervalMs: 1000 }).violations.map((v) => v.message), [
    "after the crash of node1 ended at 5000 ms, the client was never served again (allowed: 30000)",
  ]);
});
