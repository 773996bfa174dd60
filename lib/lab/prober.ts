import * as http from "node:http";

/*
 * An availability prober: a client that asks the stateful counter service to
 * count, through its endpoint, every few milliseconds, one request at a time
 * (a request that hangs delays the next, as it would for a real client).
 * From its log come the numbers a drill reports.
 */

export interface Probe {
  /** Milliseconds since the prober started, when the request was sent. */
  sent: number;
  /** Milliseconds the request took (to the answer or the failure). */
  latency: number;
  ok: boolean;
  /** Why it failed, as the client saw it: ECONNRESET, ECONNREFUSED, timeout, HTTP 503, a bad body. */
  error?: string;
  /** The counter's value in the answer. */
  count?: number;
  host?: string;
}

export interface ProbeSummary {
  requests: number;
  failed: number;
  /** Each failure, as the client saw it, with when it was sent (ms since the prober started) and how long it took. */
  failures: string[];
  /** Longest time between two successful answers (ms): what a client sees as downtime. */
  longestGapMs: number;
  /** Where that gap started (ms since the prober started). */
  gapAt: number;
  latencyMs: { p50: number; p99: number; max: number };
  /** Counter values around the biggest loss of state, or else around the longest gap. */
  countBefore?: number;
  countAfter?: number;
  /** Increments the service acknowledged and then lost, over the whole run (0 when its state always carried over). */
  lostIncrements?: number;
}

export class Prober {
  readonly probes: Probe[] = [];
  private running = false;
  private loop?: Promise<void>;
  private readonly t0 = process.hrtime.bigint();

  constructor(
    private readonly target: { host: string; port: number },
    private readonly everyMs = 10,
    // A client that waits 10 s for an answer before it gives up: a planned
    // migration's frozen window on a loaded machine has run past 3 s (a
    // browser waits minutes). The wait shows in the gap, not as a failure.
    private readonly timeoutMs = 10_000,
  ) {}

  /** Milliseconds since the prober started: the clock of its probes. */
  now(): number {
    return Number(process.hrtime.bigint() - this.t0) / 1e6;
  }

  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        const sent = this.now();
        const probe = await this.once(sent);
        this.probes.push(probe);
        const wait = this.everyMs - (this.now() - sent);
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
    })();
  }

  /** Stops probing (a second call is harmless) and returns every probe. */
  async stop(): Promise<Probe[]> {
    this.running = false;
    await this.loop;
    return this.probes;
  }

  private once(sent: number): Promise<Probe> {
    return new Promise((resolve) => {
      const done = (p: Omit<Probe, "sent" | "latency">) => resolve({ sent, latency: this.now() - sent, ...p });
      const req = http.request(
        { host: this.target.host, port: this.target.port, path: "/incr", method: "POST", agent: false, timeout: this.timeoutMs },
        (res) => {
          let body = "";
          res.on("data", (d) => (body += d));
          res.on("end", () => {
            try {
              const { count, host } = JSON.parse(body);
              done({ ok: res.statusCode === 200, count, host, ...(res.statusCode === 200 ? {} : { error: `HTTP ${res.statusCode}` }) });
            } catch {
              done({ ok: false, error: `HTTP ${res.statusCode}, not the counter's JSON` });
            }
          });
          res.on("error", (e) => done({ ok: false, error: errorName(e) }));
        },
      );
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", (e) => done({ ok: false, error: errorName(e) }));
      req.end();
    });
  }
}

const errorName = (e: Error & { code?: string }) => e.code ?? e.message;

const percentile = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : 0);

/**
 * Milliseconds from `at` (the prober's clock: a crash) until the client was
 * served again: the first answer that arrived more than 20 ms after it. Not
 * the first answer to a request sent after it: through an endpoint that
 * holds requests, such a request is sent at once and answered only when the
 * service is back. 20 ms: an answer written by a copy killed at `at` does not
 * take that long to cross the lab's link. Undefined when none arrived.
 */
export function servedAgainAfter(probes: Probe[], at: number): number | undefined {
  const back = probes.find((p) => p.ok && p.sent + p.latency > at + 20);
  return back ? back.sent + back.latency - at : undefined;
}

/**
 * The longest time without an answer that overlaps [from, to] (the prober's
 * clock): what a client saw of one event (a migration's frozen window), not
 * of another moment of the run. 0 when answers came throughout.
 */
export function gapAcross(probes: Probe[], from: number, to: number): number {
  const answered = probes.filter((p) => p.ok).map((p) => p.sent + p.latency);
  let longest = 0;
  for (let i = 1; i < answered.length; i++) {
    if (answered[i] >= from && answered[i - 1] <= to) longest = Math.max(longest, answered[i] - answered[i - 1]);
  }
  return longest;
}

export function summarize(probes: Probe[]): ProbeSummary {
  const ok = probes.filter((p) => p.ok);
  let longestGapMs = 0;
  let gapAt = 0;
  let before: Probe | undefined;
  let after: Probe | undefined;
  for (let i = 1; i < ok.length; i++) {
    const prev = ok[i - 1];
    const gap = ok[i].sent + ok[i].latency - (prev.sent + prev.latency);
    if (gap > longestGapMs) {
      longestGapMs = gap;
      gapAt = prev.sent + prev.latency;
      before = prev;
      after = ok[i];
    }
  }
  // Every answer should be one more than the last: each step back is state the service lost.
  let lost: number | undefined = ok.length > 1 && ok.every((p) => p.count !== undefined) ? 0 : undefined;
  let biggestLoss = 0;
  for (let i = 1; lost !== undefined && i < ok.length; i++) {
    const missing = ok[i - 1].count! + 1 - ok[i].count!;
    if (missing > 0) lost += missing;
    if (missing > biggestLoss) [biggestLoss, before, after] = [missing, ok[i - 1], ok[i]];
  }
  const latencies = ok.map((p) => p.latency).sort((a, b) => a - b);
  return {
    requests: probes.length,
    failed: probes.length - ok.length,
    failures: probes.filter((p) => !p.ok).map((p) => `${p.error ?? "failed"} (sent at ${Math.round(p.sent)} ms, after ${Math.round(p.latency)} ms)`),
    longestGapMs,
    gapAt,
    latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies[latencies.length - 1] ?? 0 },
    countBefore: before?.count,
    countAfter: after?.count,
    lostIncrements: lost,
  };
}
