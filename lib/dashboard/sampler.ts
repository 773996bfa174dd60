import type { Inventory } from "../config/inventory";
import type { AgentEvent } from "../ha/agent";
import { fleetView, type FleetView } from "./fleet-view";
import { streamSamples, type HostSample } from "./sample";

/*
 * Samples every node of the fleet on its own stream (a node that does not
 * answer holds up no other), keeps the newest sample of each, the agents'
 * events of every node in one time-ordered list, and each service's
 * checkpoint age over the last minutes; tells its listener after every
 * sample what changed.
 */

export interface SamplerOptions {
  /** How many events are kept (default 1000) and how long the freshness history runs (ms; default 10 min). */
  keepEvents?: number;
  historyMs?: number;
}

/** A service's checkpoint age (ms) at a time (ms). */
export type AgePoint = [at: number, ageMs: number];

export class FleetSampler {
  readonly samples = new Map<string, HostSample>();
  readonly events: AgentEvent[] = [];
  readonly history = new Map<string, AgePoint[]>();
  private readonly known = new Set<string>();
  private readonly seenEvents = new Set<string>();
  private readonly stopping = new AbortController();
  private streams: Promise<void>[] = [];
  private readonly opts: Required<SamplerOptions>;

  constructor(
    private readonly inventory: Inventory,
    /** Called after each sample with the view and the events new since the last call. */
    private readonly onChange: (view: FleetView, newEvents: AgentEvent[]) => void,
    opts: SamplerOptions = {},
  ) {
    this.opts = { keepEvents: 1000, historyMs: 10 * 60_000, ...opts };
  }

  start(): void {
    this.streams = this.inventory.hosts.map((h) =>
      streamSamples(
        h,
        (s) => {
          if (s) this.samples.set(h.name, s);
          this.changed(s?.events ?? []);
        },
        this.stopping.signal,
      ),
    );
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await Promise.all(this.streams);
  }

  view(now = Date.now()): FleetView {
    return fleetView(this.inventory, this.samples, now, this.known);
  }

  private changed(found: AgentEvent[]): void {
    const fresh = found.filter((e) => {
      const key = eventKey(e);
      if (this.seenEvents.has(key)) return false;
      this.seenEvents.add(key);
      return true;
    });
    if (fresh.length) {
      this.events.push(...fresh);
      this.events.sort((a, b) => a.at.localeCompare(b.at));
      const extra = this.events.length - this.opts.keepEvents;
      if (extra > 0) for (const e of this.events.splice(0, extra)) this.seenEvents.delete(eventKey(e));
    }
    const now = Date.now();
    const view = this.view(now);
    for (const s of view.services) {
      if (s.mode === "criu") this.known.add(s.name);
      if (s.checkpointAgeMs === undefined) continue;
      const points = this.history.get(s.name) ?? [];
      // One point a quarter second is plenty for a plot of minutes.
      if (!points.length || now - points[points.length - 1][0] >= 250) points.push([now, Math.round(s.checkpointAgeMs)]);
      while (points.length && now - points[0][0] > this.opts.historyMs) points.shift();
      this.history.set(s.name, points);
    }
    this.onChange(view, fresh);
  }
}

/** What tells one event from another (a session opened again re-reads the log's last lines). */
const eventKey = (e: AgentEvent) => `${e.at} ${e.node} ${e.kind} ${e.service ?? ""} ${e.message}`;
