import type { Probe } from "./prober";

/*
 * The nemesis's checker: reads what the clients saw (every acknowledged
 * write), where the service ran (periodic samples) and when each fault
 * began and ended, and says what went wrong. Pure: no lab here, so each rule
 * is tested on made-up histories (test/nemesis.unit.test.ts).
 */

/** Where the services ran at one moment: per service, the nodes with a running (not stopped) copy. */
export interface Sample {
  /** Milliseconds on the client's clock. */
  at: number;
  copies: Record<string, string[]>;
  /** Per service, the processes counted (node, pid, ps state, command), for a violation's message. */
  seen?: Record<string, string[]>;
}

/** A fault as it happened, on the client's clock. */
export interface FaultWindow {
  kind: string;
  node: string;
  peer?: string;
  start: number;
  /** When it was undone (booted, healed, resumed). */
  end: number;
}

export type ViolationKind = "two copies" | "lost writes" | "not served again";

export interface Violation {
  kind: ViolationKind;
  /** Milliseconds on the client's clock. */
  at: number;
  message: string;
}

export interface CheckOptions {
  /** The service's sync interval (ms): writes acknowledged within it before a fault may be lost. */
  intervalMs: number;
  /** Added to the interval for a checkpoint's round time (the tests' bound: interval + 1 s). */
  slackMs?: number;
  /**
   * The service's maxLag (ms), when it declares one: its copy is paused once
   * its standby's newest checkpoint is that old (host/edge-ha-sync), so the
   * writes a failover loses were all acknowledged within maxLag + slack of
   * each other, however long before the fault its standby fell behind.
   */
  maxLagMs?: number;
  /** How long after a fault ended the client must be served again; also the longest time any service may run nowhere. */
  servedAgainWithinMs?: number;
  /** Two copies seen in fewer consecutive samples than this are not reported (a single sample can straddle a fence and a restore). */
  twoCopiesSamples?: number;
  /** The service the probes write to: where it ran (the samples) tells which faults could lose its writes. */
  service?: string;
}

export interface CheckResult {
  violations: Violation[];
  /** Acknowledged writes later missing from the service's state, in all. */
  lostWrites: number;
  /** Per fault: ms from its end until the client was served again (0 when it was served throughout its end). */
  servedAgainMs: (number | undefined)[];
  /** Per fault: the longest time without an answer from its start until the client was served again after its end. */
  longestGapMs: number[];
}

/** Successful answers, in the order they arrived, with their arrival time. */
function acknowledged(probes: Probe[]): { at: number; count: number }[] {
  return probes
    .filter((p) => p.ok && typeof p.count === "number")
    .map((p) => ({ at: p.sent + p.latency, count: p.count! }))
    .sort((a, b) => a.at - b.at);
}

/**
 * Two copies: samples with more than one running copy, merged into windows.
 * Lost writes: whenever the count goes back, the acknowledged writes above
 * the new value are lost; each must have been acknowledged no earlier than
 * (start of the fault that lost them) - (interval + slack), which is all a
 * failover from a checkpoint of that age may lose. The fault that lost them
 * is the first one on the node that acknowledged them (the sampled copy at
 * the earliest lost write) still in effect then, or begun since, before the
 * loss was seen; the most recent fault before the loss when no sample names
 * the node or no fault touched it. A service that declares a maxLag promises
 * that instead: a loss whose writes were acknowledged within maxLag + slack
 * of each other is within it. Not simply the most recent fault: a
 * 30-minute nemesis reported four losses of writes acknowledged in the 2 s
 * before a starved node's agent fenced its copy, measured against a pause
 * or crash elsewhere 10 to 20 s later that only preceded the restore. Served again: after each
 * fault ends, the client must get an answer within the bound.
 */
export function check(probes: Probe[], samples: Sample[], faults: FaultWindow[], options: CheckOptions): CheckResult {
  const slack = options.slackMs ?? 1000;
  const within = options.servedAgainWithinMs ?? 30000;
  const minSamples = options.twoCopiesSamples ?? 2;
  const violations: Violation[] = [];

  const services = [...new Set(samples.flatMap((s) => Object.keys(s.copies)))].sort();
  for (const service of services) {
    // Two copies at once.
    let run: Sample[] = [];
    const flush = () => {
      if (run.length >= minSamples) {
        const nodes = [...new Set(run.flatMap((s) => s.copies[service]))].sort();
        violations.push({
          kind: "two copies",
          at: run[0].at,
          message:
            `${service}: ${nodes.join(" and ")} both ran it from ${Math.round(run[0].at)} to ${Math.round(run[run.length - 1].at)} ms (${run.length} samples)` +
            (run[0].seen?.[service]?.length ? `; first sample: ${run[0].seen[service].join(", ")}` : ""),
        });
      }
      run = [];
    };
    // Running nowhere for longer than the bound (a service no client watches is checked so too).
    let nowhereSince: number | undefined;
    const absent = (until: number, still: boolean) => {
      if (nowhereSince !== undefined && (until - nowhereSince > within || still)) {
        violations.push({
          kind: "not served again",
          at: nowhereSince,
          message: `${service} ran on no node from ${Math.round(nowhereSince)} ms ${still ? "to the end of the run" : `to ${Math.round(until)} ms`} (allowed: ${within})`,
        });
      }
      nowhereSince = undefined;
    };
    for (const s of samples) {
      const copies = s.copies[service] ?? [];
      if (copies.length > 1) run.push(s);
      else flush();
      if (copies.length === 0) nowhereSince ??= s.at;
      else absent(s.at, false);
    }
    flush();
    absent(samples[samples.length - 1]?.at ?? 0, true);
  }

  // Acknowledged writes lost beyond the interval.
  const acks = acknowledged(probes);
  const ackedAt = new Map<number, number>();
  let highest = -Infinity;
  let lostWrites = 0;
  for (const a of acks) {
    if (a.count <= highest) {
      const lost = [...ackedAt.entries()].filter(([count]) => count >= a.count && count <= highest);
      lostWrites += lost.length;
      const earliest = Math.min(...lost.map(([, at]) => at));
      const on = options.service ? copiesAt(samples, options.service, earliest) : [];
      const touched = (f: FaultWindow) => on.includes(f.node) || (f.peer !== undefined && on.includes(f.peer));
      const fault =
        faults.filter((f) => f.start <= a.at && f.end >= earliest && touched(f)).sort((x, y) => x.start - y.start)[0] ??
        [...faults].reverse().find((f) => f.start <= a.at);
      const bound = fault ? fault.start - (options.intervalMs + slack) : Infinity;
      const span = Math.max(...lost.map(([, at]) => at)) - earliest;
      const withinLag = options.maxLagMs !== undefined && span <= options.maxLagMs + slack;
      if (lost.length > 0 && earliest < bound && !withinLag) {
        violations.push({
          kind: "lost writes",
          at: a.at,
          message:
            `the count went back from ${highest} to ${a.count} at ${Math.round(a.at)} ms: ${lost.length} acknowledged writes lost, the earliest acknowledged at ${Math.round(earliest)} ms, ` +
            (fault
              ? `${Math.round(fault.start - earliest)} ms before the ${fault.kind} of ${fault.node} began (allowed: ${options.intervalMs + slack})`
              : "with no fault before it") +
            (options.maxLagMs !== undefined ? `; acknowledged over ${Math.round(span)} ms (maxLag ${options.maxLagMs} + ${slack} allowed)` : ""),
        });
      }
      for (const [count] of lost) ackedAt.delete(count);
      highest = a.count;
    } else highest = a.count;
    ackedAt.set(a.count, a.at);
  }

  // Served again after each fault.
  const servedAgainMs = faults.map((f) => {
    if (acks.some((a) => a.at >= f.end - 1000 && a.at <= f.end)) return 0;
    const next = acks.find((a) => a.at > f.end);
    return next ? next.at - f.end : undefined;
  });
  faults.forEach((f, i) => {
    const ms = servedAgainMs[i];
    if (ms === undefined || ms > within) {
      violations.push({
        kind: "not served again",
        at: f.end,
        message: `after the ${f.kind} of ${f.node} ended at ${Math.round(f.end)} ms, the client was ${ms === undefined ? "never served again" : `served again only ${Math.round(ms)} ms later`} (allowed: ${within})`,
      });
    }
  });
  const longestGapMs = faults.map((f, i) => {
    const until = f.end + (servedAgainMs[i] ?? within);
    let previous = [...acks].reverse().find((a) => a.at <= f.start)?.at ?? f.start;
    let longest = 0;
    for (const a of acks.filter((a) => a.at > f.start && a.at <= until + 1)) {
      longest = Math.max(longest, a.at - previous);
      previous = a.at;
    }
    return Math.round(Math.max(longest, servedAgainMs[i] === undefined ? until - previous : 0));
  });
  return { violations: violations.sort((a, b) => a.at - b.at), lostWrites, servedAgainMs, longestGapMs };
}

/** The nodes `samples` saw running `service` at `at` (the last sample at or before it). */
function copiesAt(samples: Sample[], service: string, at: number): string[] {
  let last: Sample | undefined;
  for (const s of samples) if (s.at <= at && (!last || s.at >= last.at)) last = s;
  return last?.copies[service] ?? [];
}
