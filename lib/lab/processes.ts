import { readFileSync } from "node:fs";

/*
 * A lab node's processes as this machine sees them: its process table and
 * the cgroup freezer. What powering off, pausing and the nemesis's sampler
 * all read, so that a node looks the same to each of them.
 */

/** `ps` arguments for the table processesUnder reads. */
export const psTable = ["-e", "-o", "pid=,ppid=,stat=,comm="];

/** A process of a node, with whether it is stopped (ps state T). */
export interface NodeProcess {
  pid: number;
  ppid: number;
  comm: string;
  stopped: boolean;
  /** A zombie (ps state Z): it has ended, and only waits for its parent to collect it. */
  zombie: boolean;
  /** ps's state letters. */
  stat: string;
}

/** The processes under `root` (itself included) in a `ps -e -o pid=,ppid=,stat=,comm=` table. */
export function processesUnder(root: number, table: string): NodeProcess[] {
  const rows = table
    .trim()
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .map(([pid, ppid, stat, ...comm]) => ({ pid: Number(pid), ppid: Number(ppid), stopped: stat.startsWith("T"), zombie: stat.startsWith("Z"), stat, comm: comm.join(" ") }));
  const under = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const r of rows) if (under.has(r.ppid) && !under.has(r.pid)) (under.add(r.pid), (grew = true));
  }
  return rows.filter((r) => under.has(r.pid));
}

/** The freezer.state file of a process's cgroup (cgroup v1; nested containers' cgroups are this machine's), or undefined. */
export function freezerOf(pid: number): string | undefined {
  const cgroup = /^\d+:freezer:(.*)$/m.exec(readText(`/proc/${pid}/cgroup`))?.[1];
  return cgroup === undefined ? undefined : `/sys/fs/cgroup/freezer${cgroup}/freezer.state`;
}

/** The cpu.cfs_quota_us file of a process's cgroup (cgroup v1 cpu controller, alone or as cpu,cpuacct), or undefined. */
export function cpuQuotaOf(pid: number): string | undefined {
  const m = /^\d+:((?:[^:]*,)?cpu(?:,[^:]*)?):(.*)$/m.exec(readText(`/proc/${pid}/cgroup`));
  return m === null ? undefined : `/sys/fs/cgroup/${m[1]}${m[2]}/cpu.cfs_quota_us`;
}

/**
 * Whether a process's cgroup is frozen (cgroup v1 freezer): by a lab pause,
 * or by CRIU while it dumps (a dump cut short leaves it so). A frozen
 * process runs nothing and serves nobody; ps does not show it stopped.
 */
export function frozen(pid: number): boolean {
  const f = freezerOf(pid);
  const state = f ? readText(f) : "";
  return state === "FROZEN" || state === "FREEZING";
}

/** A file's text, trimmed; "" when it cannot be read (a process or cgroup gone meanwhile). */
export function readText(file: string): string {
  try {
    return readFileSync(file, "utf8").trim();
  } catch {
    return "";
  }
}
