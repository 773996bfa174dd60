import * as path from "node:path";
import type { Arch, Host, Inventory } from "../config/inventory";
import { movingMark } from "../host/paths";
import { hostScript } from "../host/shell";
import { newestGood, servicesDir, syncDir, syncStart, syncStop } from "./replication";
import { ensureNetwork, restoreCommand } from "./service-container";
import type { FailoverSettings, ServiceSettings } from "../config/settings";
import { sshExec } from "../host/ssh";
import { goBuild, toolsDir } from "../toolchain";

/*
 * The failover agent (agent/main.go) on every node, and edge-ha-ctl, the
 * shell through which it acts on the node's services. The agent decides
 * (heartbeats, leases, who is down, who restores); edge-ha-ctl does, with the
 * same shell pieces the operator's commands use (lib/ha/replication,
 * lib/ha/service-container), so a restore by the agent is the one `failover`
 * does.
 */

/** Where the agent keeps things on a host. */
export const agentPaths = {
  binary: "/usr/local/sbin/edge-ha-agent",
  ctl: "/usr/local/sbin/edge-ha-ctl",
  config: "/etc/edge-ha/agent.json",
  events: "/var/log/edge-ha-events.jsonl",
  state: "/run/edge-ha-agent.json",
} as const;

/** Builds the agent for an architecture (static Go binary); returns its path on this machine. */
export async function buildAgent(arch: Arch): Promise<string> {
  const binary = path.join(toolsDir, "agent", arch, "edge-ha-agent");
  await goBuild("agent", arch, binary);
  return binary;
}

/** The agent's configuration on `host` (agent/main.go Config); `secret` signs every message and order. */
export function agentConfig(host: Host, inventory: Inventory, failover: FailoverSettings, services: ServiceSettings[], secret: string): string {
  const auto = services.filter((s) => s.mode === "criu" && s.failover === "auto");
  return JSON.stringify({
    self: host.name,
    port: failover.port,
    secret,
    heartbeatMs: failover.heartbeatMs,
    downAfterMs: failover.downAfterMs,
    leaseMs: failover.leaseMs,
    nodes: inventory.hosts.map((h) => ({ name: h.name, address: h.address, manager: h.roles.includes("manager") })),
    services: auto.map((s) => ({ name: s.name, nodes: placement(s, inventory), syncInterval: s.syncInterval })),
    ctl: agentPaths.ctl,
    events: agentPaths.events,
    state: agentPaths.state,
  });
}

/** Where a service may run, best first: its primary, its standby, then the other hosts of its architecture. */
export function placement(s: Pick<ServiceSettings, "primary" | "standby">, inventory: Inventory): string[] {
  const arch = inventory.hosts.find((h) => h.name === s.primary)?.arch;
  const rest = inventory.hosts.filter((h) => h.arch === arch && h.name !== s.primary && h.name !== s.standby).map((h) => h.name);
  return [s.primary!, s.standby!, ...rest];
}

/**
 * edge-ha-ctl, installed on every host:
 *   report NAME...         a line per service: NAME STATE(running, exited, created, absent, unknown) STANDBY(or -) MOVING(moving or -)
 *   newest NAME            the newest good synced checkpoint of NAME here: "<name> <taken>", or nothing
 *   restore NAME           starts NAME here from the newest good synced checkpoint (unless it runs here)
 *   sync NAME STANDBY ADDRESS INTERVAL_MS   (re)starts NAME's checkpoint sync to STANDBY
 *   fence NAME             kills and removes this host's copy of NAME and stops its sync
 */
export const ctlScript = "#!/bin/bash\n" + hostScript(String.raw`
${syncStart}
${syncStop}
services=${servicesDir}
restore() {
  s=$1
  exec 9>"/run/edge-ha-ctl-$s.lock"; flock 9
  if [ "$(docker container inspect -f '{{.State.Running}}' "$s" 2>/dev/null)" = true ]; then echo "$s runs here already"; return 0; fi
  found=$(${newestGood("$s")})
  [ -n "$found" ] || { echo "no good synced checkpoint of $s in ${syncDir("$s")}" >&2; return 1; }
  # shellcheck disable=SC2086
  set -- $found; name=$1 taken=$2
  dir=${syncDir("$s")}/$name
  [ -f "$dir/RUN" ] || { echo "checkpoint $name of $s has no RUN file (an older edge-ha made it); use: edge-ha service failover $s" >&2; return 1; }
  docker rm -f "$s" >/dev/null 2>&1
  ${ensureNetwork} || return 1
  # shellcheck disable=SC2046
  id=$(docker create $(cat "$dir/RUN")) || return 1
  if ! ( ${restoreCommand("$s", "$id", "$dir", "$name")} ) >/dev/null; then docker rm -f "$s" >/dev/null 2>&1; return 1; fi
  mkdir -p "$services"; cp "$dir/SPEC.json" "$services/$s.spec.json"; cp "$dir/RUN" "$services/$s.run"
  echo "from checkpoint $name, $(awk "BEGIN { printf \"%.2f\", $(date +%s.%N) - $taken }") s old"
}
fence() {
  s=$1
  # The copy first: it must stop serving now; the rest can take its time.
  if docker container inspect "$s" >/dev/null 2>&1; then docker rm -f "$s" >/dev/null 2>&1; echo "removed its container"; fi
  syncing=no; if [ -f "$services/$s.sync" ] || service_running "sync-$s"; then syncing=yes; fi
  sync_stop "$s"
  [ "$syncing" = no ] || echo "stopped its sync loop"
}
case "$1" in
  report)
    shift
    for s in "$@"; do
      # Bounded (a daemon still starting after a boot may not answer), and "unknown" is
      # not "absent": the controllers never act on a state nobody could read.
      # "paused" is a copy CRIU has frozen for a checkpoint (--leave-running): it runs a moment
      # later with its state, so it counts as running (and is fenced like one); read as not
      # running, reports that fell on a checkpoint again and again made it look gone.
      if out=$(timeout 5 docker container inspect -f '{{.State.Status}}' "$s" 2>&1); then state=$out; [ "$state" != paused ] || state=running
      elif printf '%s' "$out" | grep -q 'No such'; then state=absent
      else state=unknown; fi
      standby=$(cut -d' ' -f1 "$services/$s.sync" 2>/dev/null)
      [ -n "$standby" ] || standby=-
      # A planned migration's mark (lib/ha/migration.ts), younger than two minutes.
      moving=-; [ -n "$(find "${movingMark("$s")}" -mmin -2 2>/dev/null)" ] && moving=moving
      echo "$s $state $standby $moving"
    done ;;
  restore) restore "$2" ;;
  newest) ${newestGood("$2")} ;;
  sync)
    [ -f "$services/$2.run" ] || { echo "$2 has no settings in $services on $(hostname): it never ran here" >&2; exit 1; }
    sync_start "$2" "$3" "$4" "$5" ;;
  fence) fence "$2" ;;
  *) echo "usage: edge-ha-ctl report NAME... | newest NAME | restore NAME | sync NAME STANDBY ADDRESS INTERVAL_MS | fence NAME" >&2; exit 2 ;;
esac
`);

/** One thing an agent did or decided (agent/main.go Event). */
export interface AgentEvent {
  at: string;
  node: string;
  kind: string;
  service?: string;
  message: string;
}

/** The events the agents on `hosts` logged, oldest first (from every host that answers; the newest `limit` of each). */
export async function agentEvents(hosts: Host[], limit = 50): Promise<AgentEvent[]> {
  const all = await Promise.all(
    hosts.map(async (h) => {
      const r = await sshExec(h, `tail -n ${limit} ${agentPaths.events} 2>/dev/null`, { nothrow: true, connectTimeout: 2 });
      return r.stdout
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as AgentEvent);
    }),
  );
  return all.flat().sort((a, b) => a.at.localeCompare(b.at));
}

/**
 * The checkpoint the agent on `host` restored `service` from at or after
 * `sinceMs` (epoch ms), and how old it was at `sinceMs`: the state a fault at
 * that moment lost. A synced checkpoint is named after the time it was taken
 * (s<ns>); `undefined` when no such restore was logged there.
 */
export async function restoredSince(host: Host, service: string, sinceMs: number): Promise<{ checkpoint: string; ageMs: number } | undefined> {
  const events = await agentEvents([host]);
  const restored = events.reverse().find((e) => e.kind === "restored" && e.service === service && Date.parse(e.at) >= sinceMs - 1000);
  const taken = /from checkpoint (s(\d+))/.exec(restored?.message ?? "");
  return taken ? { checkpoint: taken[1], ageMs: sinceMs - Number(BigInt(taken[2]) / 1_000_000n) } : undefined;
}

/** Whether the failover agent on `host` runs and restores `service` (failover "auto"). */
export async function agentManages(host: Host, service: string): Promise<boolean> {
  const r = await sshExec(host, `cat ${agentPaths.state} 2>/dev/null`, { nothrow: true });
  try {
    const state = JSON.parse(r.stdout) as { at: string; local?: { name: string }[] };
    return (state.local ?? []).some((l) => l.name === service);
  } catch {
    return false;
  }
}
