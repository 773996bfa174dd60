import { readFileSync } from "node:fs";
import * as path from "node:path";
import { type Host, type Inventory, runsServices, unameMachines } from "../config/inventory";
import { sshExec, sudoPassword } from "./ssh";

/*
 * Preflight: what each host of an inventory is, read over SSH without
 * changing anything (host/preflight.sh), and what of it would make edge-ha
 * fail later, deep inside `pulumi up` or at a failover: each with the host,
 * what was found and the fix. `edge-ha inventory check --live` runs it.
 */

/** What a host said of itself. */
export interface LiveFacts {
  host: string;
  /** Its user's uid over SSH (0: root). */
  uid: number;
  /** For a login through sudo: whether sudo gave root (as the inventory says: without a prompt, or with its password), or is not installed. */
  sudo?: "yes" | "no" | "missing";
  machine: string;
  kernel: string;
  pageSize: number;
  /** Whether the memory cgroup is enabled (Docker's memory limits and its container stats need it). */
  memoryCgroup: boolean;
  /** Raspberry Pi OS's kernel command line file, when the host has one. */
  cmdline?: string;
  /** Free space where checkpoints go, in MiB. */
  freeMb: number;
  /**
   * Its clock minus this machine's, in ms: as closely as one SSH round trip
   * tells, from the moment the host read its clock (late in the round trip:
   * the connection's setup comes first) to this machine's at the answer;
   * `clockSlackMs` is how much earlier the read may have been.
   */
  clockOffsetMs: number;
  clockSlackMs: number;
}

/** Free space below which checkpoints (the newest two per service, and a migration's) may not fit. */
export const minFreeMb = 1024;
/** Clock offset beyond which a host's times (checkpoint ages, events) are not comparable with the others'. */
export const maxClockOffsetMs = 1000;

const probeScript = readFileSync(path.join(__dirname, "..", "..", "host", "preflight.sh"), "utf8");

/** Reads a host's facts; an Error naming the host when it does not answer. */
export async function probeHost(host: Host): Promise<LiveFacts> {
  const sent = Date.now();
  const become = host.ssh.become !== "sudo" ? "" : host.ssh.sudoPasswordFile ? "sudo-password" : "sudo";
  const input = become === "sudo-password" ? `${sudoPassword(host)}\n` : undefined;
  const r = await sshExec(host, `BECOME=${become}\n${probeScript}`, { nothrow: true, connectTimeout: 5, asLogin: true, input });
  const back = Date.now();
  if (r.exitCode !== 0) throw new Error(`${host.name} (${host.address}): the probe over SSH failed (exit ${r.exitCode}): ${(r.stderr || r.stdout).trim().split("\n").pop()}`);
  const kv = Object.fromEntries(r.stdout.split("\n").filter((l) => l.includes("=")).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
  return {
    host: host.name,
    uid: Number(kv.user),
    ...(kv.sudo ? { sudo: kv.sudo === "1" ? ("yes" as const) : kv.sudo === "missing" ? ("missing" as const) : ("no" as const) } : {}),
    machine: kv.machine,
    kernel: kv.kernel,
    pageSize: Number(kv.pagesize),
    memoryCgroup: kv.memcg === "1",
    ...(kv.cmdline ? { cmdline: kv.cmdline } : {}),
    freeMb: Math.floor(Number(kv.freekb) / 1024),
    // The host read its clock somewhere between `sent` and `back`, nearly at the end.
    clockOffsetMs: Number(kv.clock) - back,
    clockSlackMs: back - sent,
  };
}

/** Every problem the facts show, each naming the host, what was found and the fix; [] when there is none. */
export function preflightProblems(inventory: Inventory, facts: LiveFacts[]): string[] {
  const problems: string[] = [];
  for (const f of facts) {
    const i = inventory.hosts.findIndex((h) => h.name === f.host);
    const h = inventory.hosts[i];
    const at = `${inventory.file}: hosts[${i}] (${h.name})`;
    if (!unameMachines[h.arch].includes(f.machine)) {
      const actual = Object.entries(unameMachines).find(([, names]) => names.includes(f.machine))?.[0];
      problems.push(`${at}.arch: the inventory says ${h.arch}, the host is ${f.machine}; ${actual ? `set arch: ${actual}` : "edge-ha runs on amd64, arm64 and armhf hosts only"}`);
    }
    if (f.uid !== 0 && h.ssh.become !== "sudo") problems.push(`${at}.ssh.become: ${h.ssh.user} is not root (uid ${f.uid}) and edge-ha runs its commands as root: set become: sudo, or log in as root`);
    if (f.sudo === "missing") problems.push(`${at}.ssh.become: sudo is not installed on the host: install it (apt-get install sudo) and allow ${h.ssh.user} root, or log in as root`);
    if (f.sudo === "no") {
      problems.push(
        h.ssh.sudoPasswordFile
          ? `${at}.ssh.sudoPasswordFile: sudo as ${h.ssh.user} refused the password in ${h.ssh.sudoPasswordFile} (or ${h.ssh.user} may not run commands as root): put ${h.ssh.user}'s password on the file's first line`
          : `${at}.ssh.become: sudo as ${h.ssh.user} asks for a password (or ${h.ssh.user} may not run commands as root): give its password in ssh.sudoPasswordFile, or allow it without one ("${h.ssh.user} ALL=(ALL) NOPASSWD: ALL" in /etc/sudoers.d/)`,
      );
    }
    // A witness runs only the failover agent: no containers, no checkpoints.
    const serves = runsServices(h);
    if (serves && !f.memoryCgroup) {
      problems.push(
        `${h.name}: the memory cgroup is disabled (Docker's memory limits and CRIU's restores of limited containers need it); ` +
          (f.cmdline ? `add "cgroup_enable=memory cgroup_memory=1" to the single line of ${f.cmdline} and reboot` : `enable it on the kernel's command line (cgroup_enable=memory) and reboot`),
      );
    }
    if (serves && f.freeMb < minFreeMb) problems.push(`${h.name}: ${f.freeMb} MiB free for checkpoints (/var/lib), expected at least ${minFreeMb} MiB: free space or give the host a larger disk`);
    // Only what the round trip proves: ahead by more than the bound, or behind by more even if read at the earliest.
    const ahead = f.clockOffsetMs > maxClockOffsetMs;
    const behind = f.clockOffsetMs + f.clockSlackMs < -maxClockOffsetMs;
    if (ahead || behind) {
      const by = ahead ? f.clockOffsetMs : -(f.clockOffsetMs + f.clockSlackMs);
      problems.push(`${h.name}: its clock is at least ${(by / 1000).toFixed(1)} s ${ahead ? "ahead of" : "behind"} this machine's; checkpoint ages and the agents' events compare hosts' clocks: run NTP there (systemd-timesyncd or chrony)`);
    }
  }
  // A checkpoint restores only where memory pages have its size (a Pi 5's 16K kernel is not a Pi 4's 4K).
  for (const arch of new Set(inventory.hosts.map((h) => h.arch))) {
    const sizes = new Map<number, string[]>();
    for (const f of facts.filter((f) => inventory.hosts.find((h) => h.name === f.host)?.arch === arch)) sizes.set(f.pageSize, [...(sizes.get(f.pageSize) ?? []), f.host]);
    if (sizes.size > 1) {
      problems.push(
        `${arch} hosts have different page sizes (${[...sizes].map(([size, hosts]) => `${size / 1024}K: ${hosts.join(", ")}`).join("; ")}): a checkpoint taken on one restores only on hosts of its page size; ` +
          `boot them all with one (on a Pi 5: kernel=kernel8.img in config.txt for 4K pages)`,
      );
    }
  }
  return problems;
}

/**
 * The preflight of `pulumi up` and its preview: every host that answers is
 * probed (at once), and every problem found stops the program before any
 * change, all of them in one error. A host that does not answer is left to
 * its resources, which fail with its name (so --continue-on-error still
 * provisions the others).
 */
export async function preflight(inventory: Inventory): Promise<string[]> {
  const answers = await Promise.all(inventory.hosts.map((h) => probeHost(h).catch(() => undefined)));
  return preflightProblems(inventory, answers.filter((a): a is LiveFacts => a !== undefined));
}
