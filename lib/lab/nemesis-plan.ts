/*
 * The nemesis's schedule: a seeded random sequence of faults, so that a run
 * that found a violation can be replayed with its seed. Pure: no lab here.
 */

export type FaultKind = "crash" | "partition" | "pair-partition" | "one-way" | "pause-node" | "pause-agent" | "starve-node";
// New kinds go last: a seed replays its schedule with the same list (--faults), which a kind put in between would change.
export const faultKinds: readonly FaultKind[] = ["crash", "partition", "pair-partition", "one-way", "pause-node", "pause-agent", "starve-node"];

/**
 * One fault of the schedule. Its node is chosen when the fault starts:
 * `serving` is the node that runs the service then (the interesting one,
 * half of the time), `other` one that does not; `peer` (pair-partition) is
 * another node, by its place among the rest.
 */
export interface PlannedFault {
  /** Milliseconds after the run's start. */
  at: number;
  kind: FaultKind;
  target: "serving" | "other";
  /** A number in [0, 1) that picks among the candidate nodes (and the peer), so a replay picks the same. */
  pick: number;
  /** How long the fault lasts before it is undone (the node boots, heals, resumes). */
  holdMs: number;
}

export interface PlanOptions {
  seed: number;
  durationMs: number;
  kinds: readonly FaultKind[];
  /** Quiet time between one fault's end and the next's start, in ms [min, max]. */
  quietMs?: [number, number];
  /** How long a fault lasts, in ms [min, max]. */
  holdMs?: [number, number];
}

/** mulberry32: a small, well-mixed 32-bit generator; the same seed gives the same numbers everywhere. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Faults one after the other (each undone before the next starts; the
 * quiet time between them is often shorter than the recovery of the last,
 * so recoveries overlap faults). The last ends before `durationMs`.
 */
export function plan(options: PlanOptions): PlannedFault[] {
  const { seed, durationMs, kinds } = options;
  const [quietMin, quietMax] = options.quietMs ?? [3000, 12000];
  const [holdMin, holdMax] = options.holdMs ?? [2000, 15000];
  if (kinds.length === 0) throw new Error("plan: expected at least one fault kind");
  const next = random(seed);
  const between = (min: number, max: number) => Math.round(min + next() * (max - min));
  const faults: PlannedFault[] = [];
  for (let at = between(quietMin, quietMax); ; ) {
    const kind = kinds[Math.floor(next() * kinds.length)];
    const target = next() < 0.5 ? "serving" : "other";
    const pick = next();
    const holdMs = between(holdMin, holdMax);
    if (at + holdMs > durationMs) break;
    faults.push({ at, kind, target, pick, holdMs });
    at += holdMs + between(quietMin, quietMax);
  }
  return faults;
}

/** The node a planned fault hits, and its peer for a pair partition, among the data nodes given where the service runs. */
export function resolveTarget(fault: PlannedFault, nodes: string[], serving: string[]): { node: string; peer?: string } {
  const others = nodes.filter((n) => !serving.includes(n));
  const candidates = fault.target === "serving" && serving.length > 0 ? serving : others.length > 0 ? others : nodes;
  const node = candidates[Math.floor(fault.pick * candidates.length)];
  if (fault.kind !== "pair-partition") return { node };
  const rest = nodes.filter((n) => n !== node);
  // The second pick reuses the first's fraction, scaled past it: deterministic, and independent enough for a peer.
  const peer = rest[Math.floor(((fault.pick * 7919) % 1) * rest.length)];
  return { node, peer };
}
