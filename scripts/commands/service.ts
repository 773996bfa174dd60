import { parseArgs } from "node:util";
import { findHost, loadInventory } from "../../lib/config/inventory";
import { Endpoint, remoteEndpoint, serveControl } from "../../lib/ha/endpoint";
import { UsageError, UserError } from "../../lib/log";
import { migrate } from "../../lib/ha/migration";
import { copyImage, deploy, runningNowhere, soleHost, specOf, unansweredClause, whereRuns } from "../../lib/ha/service-container";
import { failover, freshness, startSync, syncOn } from "../../lib/ha/replication";
import { ensureImageOn, prepareImage } from "../../lib/ha/images";
import { stackOptions } from "./options";
import { agentEvents, agentManages, agentsManage, agentState } from "../../lib/ha/agent";
import { sshExec } from "../../lib/host/ssh";
import { lagPauseMark } from "../../lib/host/paths";
import { vipHolders } from "../../lib/ha/vip";
import { type ImageSource, checkServiceName, isImageReference, parsePort, parseVolume } from "../../lib/config/service-spec";

export const help = `Usage: edge-ha service <command> [options]

Highly available services on a provisioned cluster (see pulumi up).

Commands:
  deploy SERVICE --on NODE (--build DIR | --tarball FILE | --image REF) --port HOST[:CONTAINER]
         [--volume NAME:/path]...        start SERVICE on NODE without Pulumi: its image built here from DIR's
                                         Dockerfile, loaded from a docker save FILE, or pulled by NODE;
                                         published on HOST (to CONTAINER inside), with named volumes
                                         (the demos: --build services/counter --port 18080:8080,
                                         --build services/web --port 18081:80)
  sync SERVICE --standby NODE [--interval S] [--max-lag L]
                                         checkpoint SERVICE every S seconds (default 2) without stopping
                                         it and mirror the checkpoints to NODE's rsync daemon; with L,
                                         pause SERVICE while NODE's newest checkpoint is over L s old
  migrate SERVICE --to NODE              live-migrate SERVICE with CRIU, its file-system changes and named
                                         volumes: dump, transfer, verify, restore;
                                         prints each phase's time; on failure it resumes on the source
  failover SERVICE --to NODE             restore SERVICE on NODE from its newest good synced checkpoint,
                                         when the node it ran on is gone (services with failover "manual";
                                         the failover agents restore the others by themselves)
  status SERVICE                         where SERVICE runs, which host holds its virtual address (vip), its
                                         sync, the standby's freshness, and for failover "auto" the agents'
                                         recent events about it
  logs SERVICE [--tail N]                the last N lines (default 100) of SERVICE's container log, from the
                                         host it runs on now
  endpoint SERVICE [--listen P] [--control C]
                                         run SERVICE's stable client endpoint here until Ctrl-C: clients
                                         connect to port P (default 28080); migrate/failover given
                                         --endpoint http://127.0.0.1:C/ (default C 28081) hold and switch it;
                                         for failover "auto" it checks every host and follows the service

Options:
  --inventory FILE   the fleet (default: inventory/lab.yaml)
  --endpoint URL     control URL of the service's endpoint (held and switched by migrate/failover)
  --json             print results as JSON
  -h, --help         this text
`;

/** The `edge-ha` subcommand group of this file. */
export async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...stackOptions,
      on: { type: "string" },
      to: { type: "string" },
      standby: { type: "string" },
      interval: { type: "string", default: "2" },
      "max-lag": { type: "string" },
      port: { type: "string" },
      build: { type: "string" },
      tarball: { type: "string" },
      image: { type: "string" },
      listen: { type: "string", default: "28080" },
      control: { type: "string", default: "28081" },
      volume: { type: "string", multiple: true },
      tail: { type: "string", default: "100" },
      endpoint: { type: "string" },
    },
  });
  const [command, service, ...extra] = positionals;
  if (values.help || !command) return void process.stdout.write(help);
  if (!service) throw new UserError(`${command} needs a service name (see --help)`);
  if (extra.length) throw new UserError(`unexpected arguments: ${extra.join(" ")} (see --help)`);
  const inventory = loadInventory(values.inventory!);
  const need = (flag: "on" | "to" | "standby") => {
    const v = values[flag];
    if (!v) throw new UserError(`${command} needs --${flag} NODE`);
    return findHost(inventory, v);
  };
  const print = (result: unknown, text: string) => console.log(values.json ? JSON.stringify(result) : text);
  const endpoint = values.endpoint ? remoteEndpoint(values.endpoint) : undefined;

  switch (command) {
    case "deploy": {
      checkServiceName(service);
      const host = need("on");
      const given = (["build", "tarball", "image"] as const).filter((k) => values[k] !== undefined);
      if (given.length !== 1) throw new UsageError(`deploy: expected exactly one of --build DIR, --tarball FILE or --image REF, found ${given.map((k) => `--${k}`).join(" and ") || "none"}`);
      const source: ImageSource =
        values.build !== undefined ? { kind: "build", context: values.build, dockerfile: "Dockerfile" } : values.tarball !== undefined ? { kind: "tarball", file: values.tarball } : { kind: "registry", ref: values.image! };
      if (source.kind === "registry" && !isImageReference(source.ref)) throw new UsageError(`--image: expected a registry reference such as registry.example:5000/app:1.2, found "${source.ref}"`);
      const port = values.port === undefined ? undefined : parsePort(values.port);
      if (!port || port.protocol !== "tcp") throw new UsageError(`--port: expected HOST:CONTAINER or PORT (tcp), found ${values.port === undefined ? "none" : `"${values.port}"`}`);
      const volumes = (values.volume ?? []).map((v) => {
        const volume = parseVolume(v);
        if (!volume) throw new UsageError(`--volume: expected NAME:/path/in/container, found "${v}"`);
        return volume;
      });
      const image = await prepareImage(source, host.arch, service, `--${given[0]}`);
      await ensureImageOn(host, image);
      await deploy(host, { name: service, image: image.ref, containerPort: port.container, hostPort: port.host, volumes });
      return print({ service, on: host.name, image: image.ref, port: port.host }, `${service} runs on ${host.name}: ${host.address}:${port.host}`);
    }
    case "sync": {
      const standby = need("standby");
      const where = await whereRuns(inventory, service);
      const [primary] = where.running;
      if (!primary) throw runningNowhere(inventory, service, where);
      const spec = await specOf(primary, service);
      if (standby.arch !== primary.arch) throw new UserError(`${standby.name} is ${standby.arch} but ${primary.name} is ${primary.arch}: a checkpoint restores only on the same architecture`);
      // The standby gets the image now, so a failover needs nothing from the dead primary.
      await copyImage(primary, standby, spec.image);
      const maxLag = values["max-lag"] === undefined ? undefined : Number(values["max-lag"]);
      await startSync(primary, standby, spec, { intervalSeconds: Number(values.interval), ...(maxLag !== undefined ? { maxLagSeconds: maxLag } : {}) });
      return print(
        { service, primary: primary.name, standby: standby.name, ...(maxLag !== undefined ? { maxLag } : {}) },
        `${service}: ${primary.name} syncs checkpoints to ${standby.name} every ${values.interval} s${maxLag !== undefined ? `, paused while they are over ${maxLag} s old` : ""}`,
      );
    }
    case "migrate": {
      const r = await migrate(inventory, service, need("to").name, { endpoint });
      const ms = (s: number) => `${Math.round(s * 1000)} ms`;
      return print(
        r,
        `${service}: ${r.from} -> ${r.to}; downtime ${ms(r.downtime)} (dump ${ms(r.phases.dump)}, transfer ${ms(r.phases.transfer)} for ${(r.bytes / 1e6).toFixed(1)} MB, restore ${ms(r.phases.restore)}, switch ${ms(r.phases.switch)}); prepared in ${ms(r.phases.prepare)}` +
          (r.warning ? `\nwarning: ${r.warning}` : ""),
      );
    }
    case "failover": {
      const standby = need("to");
      if (await agentManages(standby, service)) throw new UserError(`${service} has failover "auto": the failover agents restore it by themselves ('edge-ha service status ${service}' shows what they did); set failover: manual in edge-ha:services to fail it over by hand`);
      const r = await failover(inventory, service, standby.name);
      await endpoint?.switchTo({ host: standby.address, port: r.spec.hostPort });
      return print(r, `${service} restored on ${r.to} from ${r.checkpoint} (${r.checkpointAge.toFixed(1)} s old) in ${r.restore.toFixed(2)} s`);
    }
    case "status": {
      const where = await whereRuns(inventory, service);
      const running = where.running;
      // As its healthcheck last found it, where the agent there checks one.
      const health = await Promise.all(running.map(async (h) => (await agentState(h))?.local?.find((l) => l.name === service)?.health));
      const placed = running.map((h, i) => (health[i] ? `${h.name} (${health[i]})` : h.name));
      const lines = [`${running.length ? `${service}: running on ${placed.join(", ")}` : `${service}: RUNNING ON NO HOST of ${inventory.file}`}${unansweredClause(where)}`];
      const result: Record<string, unknown> = { service, running: running.map((h) => h.name), unanswered: where.unanswered.map((h) => h.name), ...(health.some(Boolean) ? { health: Object.fromEntries(running.map((h, i) => [h.name, health[i] ?? null])) } : {}) };
      const vip = await vipHolders(inventory, service);
      if (vip.address) {
        result.vip = vip;
        const port = running.length ? `:${(await specOf(running[0], service)).hostPort}` : "";
        const held = vip.holders.length === 0 ? "held by NO host" : vip.holders.length === 1 ? `held by ${vip.holders[0]}` : `held by ${vip.holders.join(" and ")}: TWO HOSTS ANSWER FOR IT`;
        lines.push(`  address ${vip.address}${port}, ${held}${vip.unknown.length ? ` (${vip.unknown.join(", ")} did not answer)` : ""}`);
      }
      for (const host of running) {
        const sync = await syncOn(host, service);
        if (!sync) continue;
        const fresh = await freshness(findHost(inventory, sync.standby), service);
        // Since when its lag guard holds it paused (host/edge-ha-sync), if it does.
        const mark = (await sshExec(host, `cat ${lagPauseMark(service)} 2>/dev/null`, { nothrow: true })).stdout.trim();
        const pausedSince = mark ? new Date(Number(mark)).toISOString() : undefined;
        result.sync = { ...sync, freshness: fresh, ...(pausedSince ? { pausedSince } : {}) };
        lines.push(`  sync to ${sync.standby} every ${sync.intervalSeconds} s${sync.maxLagSeconds !== undefined ? ` (paused past ${sync.maxLagSeconds} s behind)` : ""}; newest good checkpoint there: ${fresh ? `${fresh.checkpoint}, ${fresh.age.toFixed(1)} s old` : "none yet"}`);
        if (pausedSince) lines.push(`  PAUSED since ${pausedSince.slice(11, 23)}: its standby's newest checkpoint is over ${sync.maxLagSeconds} s old; it resumes when one arrives`);
      }
      // Asked of every host's agent: the service may run nowhere now, and its mode is still what the stack says.
      const auto = await agentsManage(inventory.hosts, service);
      result.failover = auto ? "auto" : "manual";
      if (auto) {
        const events = (await agentEvents(inventory.hosts, 100)).filter((e) => e.service === service || ["down", "up"].includes(e.kind)).slice(-10);
        result.events = events;
        lines.push(`  failover: automatic (failover agents); their latest events:`, ...events.map((e) => `    ${e.at.slice(0, 23).replace("T", " ")} ${e.node} ${e.kind}: ${e.message}`));
      } else lines.push(`  failover: manual (edge-ha service failover ${service} --to NODE)`);
      return print(result, lines.join("\n"));
    }
    case "logs": {
      // Wherever it runs now: a migration or failover moved its container, and with it the log.
      const host = await soleHost(inventory, service);
      const tail = Number(values.tail);
      if (!Number.isInteger(tail) || tail < 1) throw new UsageError(`--tail: expected a whole number from 1, found "${values.tail}"`);
      const out = await sshExec(host, `docker logs --timestamps --tail ${tail} ${service} 2>&1`);
      const lines = out.stdout.split("\n").filter(Boolean);
      return print({ service, host: host.name, lines }, `# ${service} on ${host.name}, last ${tail} lines\n${lines.join("\n")}`);
    }
    case "endpoint": {
      const host = await soleHost(inventory, service);
      const spec = await specOf(host, service);
      // With failover agents, the service may come back on any host: check them all, follow the one that answers.
      const follow = await agentManages(host, service);
      // The service's own http check, when it has one on its main port: a hung server still accepts connections.
      const httpPath = spec.health?.kind === "http" && spec.health.port === spec.hostPort ? spec.health.path : undefined;
      const endpoint = new Endpoint({ listen: { host: "0.0.0.0", port: Number(values.listen) }, ...(follow ? { healthCheck: { everyMs: 100, failures: 2, httpPath } } : {}) });
      endpoint.setBackends([host, ...(follow ? inventory.hosts.filter((h) => h.name !== host.name) : [])].map((h) => ({ host: h.address, port: spec.hostPort })));
      await endpoint.start();
      serveControl(endpoint, Number(values.control));
      console.log(`${service}: clients connect to port ${values.listen} here, now sent to ${host.name} (${host.address}:${spec.hostPort}); control: http://127.0.0.1:${values.control}/ (Ctrl-C stops)`);
      return new Promise<void>(() => undefined);
    }
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}
