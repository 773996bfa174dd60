/** Waits `ms` milliseconds. */
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `check`'s value satisfies `ok` (every `everyMs`, at most `seconds`); what it returned last. */
export async function until<T>(seconds: number, check: () => Promise<T>, ok: (v: T) => boolean, everyMs: number): Promise<T> {
  let v = await check();
  for (const end = Date.now() + seconds * 1000; !ok(v) && Date.now() < end; v = await check()) await sleep(everyMs);
  return v;
}

/**
 * Looks at where a service runs (`copies`: its hosts) and remembers the most
 * copies any look saw: a failover or a fence must never show two.
 */
export function copyCounter(copies: () => Promise<string[]>): { look: () => Promise<string[]>; readonly most: number } {
  let most = 0;
  return {
    async look() {
      const r = await copies();
      most = Math.max(most, r.length);
      return r;
    },
    get most() {
      return most;
    },
  };
}
