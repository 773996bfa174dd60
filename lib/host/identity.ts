import { randomUUID } from "node:crypto";
import type { Host } from "../config/inventory";
import { hostMarker } from "./paths";
import { sshExec } from "./ssh";

/*
 * Which installation of a host the stack provisioned. A Pi whose SD card
 * died comes back with the same name and address and nothing on it; the
 * stack must not believe it is provisioned. Each host carries a marker
 * (hostMarker); the stack records it with a generation, and when the
 * generation grows every command on the host runs its create script again
 * (modules/command HostConnection.generation).
 */

/** The stack's record of a host: its marker's id, and how many times it was found re-imaged. */
export interface HostIdentity {
  id: string;
  generation: number;
  /** Found re-imaged in this run (never recorded). */
  reimaged?: boolean;
}

/** What a look at the host found: unreachable, or reachable with its marker (empty when it has none). */
export type MarkerReading = { reachable: false } | { reachable: true; marker: string };

/** Reads a host's marker over SSH (a few seconds at most: an unreachable host is told apart, not waited for). */
export async function readMarker(host: Host): Promise<MarkerReading> {
  const r = await sshExec(host, `cat ${hostMarker} 2>/dev/null || true`, { nothrow: true, connectTimeout: 3 });
  return r.exitCode === 0 ? { reachable: true, marker: r.stdout.trim() } : { reachable: false };
}

/**
 * The identity this run gives a host, from the stack's previous record and
 * what the host says now, and a sentence when the host is re-provisioned.
 * Unreachable is not re-imaged: the record stands.
 */
export function decideIdentity(name: string, previous: HostIdentity | undefined, now: MarkerReading, newId: () => string = randomUUID): { identity: HostIdentity; note?: string } {
  if (!now.reachable) return { identity: previous ?? { id: newId(), generation: 0 } };
  if (!previous) return { identity: { id: now.marker || newId(), generation: 0 } };
  if (now.marker === previous.id) return { identity: previous };
  const generation = previous.generation + 1;
  if (now.marker === "") {
    return { identity: { id: newId(), generation, reimaged: true }, note: `${name} was re-imaged: its edge-ha marker ${hostMarker} is gone; it will be provisioned from blank` };
  }
  return {
    identity: { id: now.marker, generation, reimaged: true },
    note: `${name} holds another edge-ha marker (${now.marker.slice(0, 8)}) than the one this stack gave it (${previous.id.slice(0, 8)}): it was re-imaged and provisioned by another stack; it will be provisioned again`,
  };
}
