import test from "ava";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { parse, stringify } from "yaml";
import { $ } from "zx";
import { type Arch, findHost, loadInventory } from "../lib/config/inventory";
import { boot, crash, heal, partition, shape, unshape } from "../lib/lab/faults";
import { down, labOptions } from "../lib/lab/lab";
import { freshLabStack } from "../lib/lab/stack";
import { UserError } from "../lib/log";
import { migrate } from "../lib/ha/migration";
import { deploy, locate, specOf } from "../lib/ha/service-container";
import { failover, startSync, stopSync } from "../lib/ha/replication";
import { startCapture, tcpSegments } from "../lib/lab/capture";
import { settingDefaults } from "../lib/config/settings";
import { sleep } from "./helpers/poll";
import { ensureImageOn, prepareImage } from "../lib/ha/images";
import { PulumiStack } from "../lib/pulumi";
import { sshExec } from "../lib/host/ssh";
import { projectRoot } from "../lib/toolchain";
import { registerDrillTests } from "./suites/drill";

/*
 * Live migration and failover of the stateful counter on a provisioned lab:
 * real Docker engines, CRIU, checkpoints over SSH and to rsync daemons;
 * state checked exactly; what crosses the network captured. Then the drills
 * (test/suites/drill.ts), on the same lab.
 */
const dir = mkdtempSync(path.join(tmpdir(), "edge-ha-migration-test-"));
const lab = labOptions({ name: "migtest", subnetPrefix: "10.77.204", inventoryFile: path.join(dir, "inventory.yaml") });
const stack = new PulumiStack(projectRoot, "migtest");
const inventory = () => loadInventory(lab.inventoryFile);
const host = (name: string) => findHost(inventory(), name);
const port = 18080;

async function counter(name: string, method = "GET"): Promise<{ count: number; started: string }> {
  const r = await fetch(`http://${host(name).address}:${port}/${method === "POST" ? "incr" : ""}`, { method });
  return (await r.json()) as { count: number; started: string };
}
const runningOn = async () => (await locate(inventory(), "counter")).map((h) => h.name);
/** A demo's image (services/NAME), built the way any service's Dockerfile is. */
const demoImage = (name: "counter" | "web", arch: Arch) => prepareImage({ kind: "build", context: `services/${name}`, dockerfile: "Dockerfile" }, arch, name, `services/${name}`);

test.before(async () => {
  await freshLabStack(lab, stack, 3);
  await stack.up();
  const image = await demoImage("counter", host("node1").arch);
  await ensureImageOn(host("node1"), image);
  await deploy(host("node1"), { name: "counter", image: image.ref, containerPort: 8080, hostPort: port });
  for (let i = 0; i < 50; i++) if ((await fetch(`http://${host("node1").address}:${port}/`).catch(() => undefined))?.ok) break;
  else await new Promise((r) => setTimeout(r, 100));
});

test.after.always(async () => {
  await stack.forget();
  await down(lab);
});

test.serial("migrating the counter keeps its state exactly and serves on the target; migrating back works", async (t) => {
  for (let i = 0; i < 7; i++) await counter("node1", "POST");
  const before = await counter("node1");
  t.is(before.count, 7);
  const r = await migrate(inventory(), "counter", "node2");
  t.deepEqual(await runningOn(), ["node2"]);
  const after = await counter("node2");
  t.deepEqual(after, before, "same count, same process (its start time came along)");
  t.is((await counter("node2", "POST")).count, 8);
  t.true(r.bytes > 0 && r.downtime > 0);
  t.log(`downtime ${(r.downtime * 1000).toFixed(0)} ms: ${JSON.stringify(r.phases)}`);

  await migrate(inventory(), "counter", "node1");
  t.deepEqual(await runningOn(), ["node1"]);
  t.is((await counter("node1")).count, 8);
});

test.serial("2048 on nginx is served after a migration, with its file changes and its named volume", async (t) => {
  const image = await demoImage("web", host("node2").arch);
  await ensureImageOn(host("node2"), image);
  await deploy(host("node2"), { name: "web", image: image.ref, containerPort: 80, hostPort: 18081, volumes: [{ name: "webdata", target: "/data" }] });
  const page = (name: string, file = "") => fetch(`http://${host(name).address}:18081/${file}`);
  try {
    for (let i = 0; i < 50 && !(await page("node2").catch(() => undefined))?.ok; i++) await new Promise((r) => setTimeout(r, 100));
    await sshExec(host("node2"), `docker exec web sh -c 'echo kept > /data/state.txt && echo added > /var/www/2048/added.txt && rm /var/www/2048/favicon.ico'`);
    await migrate(inventory(), "web", "node3");
    t.regex(await (await page("node3")).text(), /<title>2048<\/title>/);
    t.is(await (await page("node3", "added.txt")).text(), "added\n", "a file the container added came along");
    t.is((await page("node3", "favicon.ico")).status, 404, "a file the container deleted stays deleted");
    t.is((await sshExec(host("node3"), "docker exec web cat /data/state.txt")).stdout, "kept\n", "the named volume's content came along");
    t.is((await sshExec(host("node2"), "docker ps -aq --filter name=^web$; docker volume ls -q --filter name=^webdata$")).stdout.trim(), "", "nothing left on the source");
  } finally {
    for (const h of inventory().hosts) await sshExec(h, "docker rm -f web; docker volume rm webdata", { nothrow: true });
  }
});

test.serial("bad input is one clear error and changes nothing", async (t) => {
  await t.throwsAsync(migrate(inventory(), "nosuch", "node2"), { instanceOf: UserError, message: /service "nosuch" is not running on any host/ });
  await t.throwsAsync(migrate(inventory(), "counter", "node9"), { instanceOf: UserError, message: /no host "node9".*node1, node2, node3/ });
  await t.throwsAsync(migrate(inventory(), "counter", "node1"), { instanceOf: UserError, message: /already runs on node1/ });
  await sshExec(host("node3"), "mv /usr/local/sbin/criu /usr/local/sbin/criu.away");
  try {
    await t.throwsAsync(migrate(inventory(), "counter", "node3"), { instanceOf: UserError, message: /node3 cannot restore checkpoints: 'criu check' fails there/ });
  } finally {
    await sshExec(host("node3"), "mv /usr/local/sbin/criu.away /usr/local/sbin/criu");
  }
  const cli = await $({ quiet: true, nothrow: true })`bin/edge-ha service --inventory ${lab.inventoryFile} migrate counter --to node1`;
  t.is(cli.exitCode, 1);
  t.regex(cli.stderr, /error: service "counter" already runs on node1/);
  t.deepEqual(await runningOn(), ["node1"]);
  t.is((await counter("node1")).count, 8);
});

test.serial("a target cut off during the transfer leaves the service running on the source, once, with its state", async (t) => {
  // A slow link stretches the transfer so the partition lands in the middle of it.
  await shape(lab, "node2", { rate: "256kbit" });
  let error: unknown;
  try {
    const moving = migrate(inventory(), "counter", "node2").catch((e) => (error = e));
    await new Promise((r) => setTimeout(r, 2500));
    await partition(lab, "node2");
    await moving;
  } finally {
    await heal(lab, "node2").catch(() => undefined);
    await unshape(lab, "node2");
  }
  t.true(error instanceof UserError);
  t.regex((error as Error).message, /counter was dumped, then resumed on node1 from that checkpoint/);
  t.deepEqual(await runningOn(), ["node1"]);
  t.is((await counter("node1")).count, 8, "resumed from the checkpoint: state kept");
  t.is((await sshExec(host("node2"), "docker ps -aq --filter name=^counter$")).stdout.trim(), "", "no copy left on the target");
});

test.serial("a failure after the dump (the target's rsync refuses the checkpoint) resumes the service on the source with the state it had at the dump, and says so", async (t) => {
  const before = await counter("node1");
  // Refused at the transfer, after the connection opened in the prepare step: without its
  // secrets file, the target's rsync refuses every client of its checkpoints module.
  const secrets = "/etc/edge-ha/rsyncd.secrets";
  await sshExec(host("node2"), `mv ${secrets} ${secrets}.away`);
  let error: unknown;
  try {
    await migrate(inventory(), "counter", "node2").catch((e) => (error = e));
  } finally {
    await sshExec(host("node2"), `mv ${secrets}.away ${secrets}`);
  }
  t.true(error instanceof UserError, String(error));
  const message = (error as Error).message;
  t.regex(message, /^migration of counter from node1 to node2 failed: .*rsync/);
  t.regex(message, /counter was dumped, then resumed on node1 from that checkpoint \(m\d+\): it runs there with the state it had at the dump/);
  t.deepEqual(await runningOn(), ["node1"]);
  t.deepEqual(await counter("node1"), before, "same count and same process: the state at the dump, not a restart");
  t.is((await sshExec(host("node2"), "docker ps -aq --filter name=^counter$")).stdout.trim(), "", "no copy left on the target");
});

test.serial("a service moves back and forth ten times in a row, with its volume and file changes: state kept and one copy after every move", async (t) => {
  const spec = { name: "keeper", image: (await specOf(host("node1"), "counter")).image, containerPort: 8080, hostPort: 18082, volumes: [{ name: "keeperdata", target: "/data" }] };
  await deploy(host("node1"), spec);
  const keeper = async (name: string, method = "GET") => (await (await fetch(`http://${host(name).address}:18082/${method === "POST" ? "incr" : ""}`, { method })).json()) as { count: number; started: string };
  try {
    for (let i = 0; i < 50 && !(await keeper("node1").catch(() => undefined)); i++) await new Promise((r) => setTimeout(r, 100));
    // The counter image has no shell: a file in its volume and one in its own layer, written from the host.
    await sshExec(host("node1"), `echo volume > "$(docker volume inspect -f '{{.Mountpoint}}' keeperdata)/v.txt"; echo layer > "$(docker container inspect -f '{{.GraphDriver.Data.UpperDir}}' keeper)/l.txt"`);
    const started = (await keeper("node1")).started;
    const downtimes: number[] = [];
    let on = "node1";
    for (let move = 1; move <= 10; move++) {
      const count = (await keeper(on, "POST")).count;
      const to = on === "node1" ? "node2" : "node1";
      const r = await migrate(inventory(), "keeper", to);
      downtimes.push(Math.round(r.downtime * 1000));
      t.deepEqual((await locate(inventory(), "keeper")).map((h) => h.name), [to], `move ${move}: one copy, on ${to}`);
      t.like(await keeper(to), { count, started }, `move ${move}: same count, same process`);
      const files = await sshExec(host(to), `cat "$(docker volume inspect -f '{{.Mountpoint}}' keeperdata)/v.txt" "$(docker container inspect -f '{{.GraphDriver.Data.UpperDir}}' keeper)/l.txt"`);
      t.is(files.stdout, "volume\nlayer\n", `move ${move}: the volume's file and the container's own file came along`);
      on = to;
    }
    t.log(`downtime per move (ms): ${downtimes.join(" ")}`);
  } finally {
    for (const h of inventory().hosts) await sshExec(h, "docker rm -f keeper; docker volume rm keeperdata", { nothrow: true });
  }
});

test.serial("at rest, after those moves and failed moves: edge-ha's folders are root's alone, and no host keeps more than two checkpoints of a service", async (t) => {
  for (const h of inventory().hosts) {
    // A checkpoint is the service's memory (its secrets too); its folders, settings and the cluster's secrets are root's only.
    const modes = (await sshExec(h, "stat -c '%a %n' /var/lib/edge-ha /etc/edge-ha")).stdout.trim().split("\n");
    t.deepEqual(modes, ["700 /var/lib/edge-ha", "700 /etc/edge-ha"], h.name);
    // Per service: its synced checkpoints, a migration's staged one, and anything else left in its folder.
    const kept = (await sshExec(h, `cd /var/lib/edge-ha/checkpoints && for s in */; do s=\${s%/}; [ "$s" = '*' ] || echo "$s $(ls -d "$s"/sync/s[0-9]* "$s"/m[0-9]* 2>/dev/null | wc -l)"; done`)).stdout.trim();
    for (const line of kept.split("\n").filter(Boolean)) {
      const [service, count] = line.split(" ");
      t.true(Number(count) <= 2, `${h.name} keeps ${count} checkpoints of ${service}`);
    }
  }
});

test.serial("crash of the primary, then failover: served from the standby with state no older than the sync interval", async (t) => {
  const interval = 2;
  await startSync(host("node1"), host("node3"), await specOf(host("node1"), "counter"), { intervalSeconds: interval });
  await ensureImageOn(host("node3"), await demoImage("counter", host("node3").arch));
  // Let a few syncs happen while a client counts, a request every 10 ms.
  const deadline = Date.now() + 3 * interval * 1000;
  let acked = 0;
  while (Date.now() < deadline) {
    acked = (await counter("node1", "POST")).count;
    await new Promise((r) => setTimeout(r, 10));
  }
  const crashedAt = await crash(lab, "node1");
  try {
    const failoverAt = Date.now();
    const r = await failover(inventory(), "counter", "node3");
    // checkpointAge is read when the failover starts.
    const ageAtCrash = r.checkpointAge - (failoverAt - crashedAt) / 1000;
    t.true(ageAtCrash <= interval, `the checkpoint was ${ageAtCrash.toFixed(2)} s old at the crash`);
    const restored = await counter("node3");
    t.true(restored.count <= acked && restored.count > 8, `restored ${restored.count}, last acknowledged ${acked}`);
    // Not a speed target (npm run bench has those), a bound far above it: a failover that waits for
    // something else (the swarm's ~20 s leader change, when node1 led it) fails here.
    t.true(r.restore < 10, `failover took ${r.restore.toFixed(2)} s (checked ${r.steps.checked.toFixed(2)}, prepared ${r.steps.prepared.toFixed(2)})`);
    t.log(`failover restore ${r.restore.toFixed(2)} s (checked ${r.steps.checked.toFixed(2)}, prepared ${r.steps.prepared.toFixed(2)}); state lost: ${acked - restored.count} increments, checkpoint ${ageAtCrash.toFixed(2)} s old at the crash`);
    await t.throwsAsync(failover(inventory(), "counter", "node2"), { message: /still runs on node3/ }, "never a second copy");
  } finally {
    await boot(lab, "node1");
  }
  t.deepEqual(await runningOn(), ["node3"], "the old primary does not start its copy again when it boots");
});

/**
 * A service with `marker` in its environment, synced from node1 to node2 and
 * migrated to node3 while tcpdump captures the lab network; then removed. What
 * the capture holds, and how the migration's checkpoint travelled.
 */
async function captureSyncAndMigration(label: string, marker: string): Promise<{ pcap: string; transport: string; bytes: number }> {
  const image = await demoImage("counter", host("node1").arch);
  const spec = { name: "secretive", image: image.ref, containerPort: 8080, hostPort: 18086, env: { MARKER: marker } };
  await ensureImageOn(host("node1"), image);
  await deploy(host("node1"), spec);
  const pcap = path.join(dir, `${label}.pcap`);
  const capture = await startCapture(lab, "tcp", pcap);
  try {
    await startSync(host("node1"), host("node2"), spec, { intervalSeconds: 1 });
    // A few rounds of the sync loop, each a checkpoint sent to node2.
    await sleep(3500);
    const r = await migrate(inventory(), "secretive", "node3");
    return { pcap, transport: r.transport, bytes: r.bytes };
  } finally {
    await capture.stop();
    for (const h of inventory().hosts) {
      await stopSync(h, "secretive");
      await sshExec(h, "docker rm -f secretive >/dev/null 2>&1; rm -rf /var/lib/edge-ha/checkpoints/secretive", { nothrow: true });
    }
  }
}

test.serial("checkpoints cross the network encrypted: a marker in a service's environment never shows in a capture of its sync and its migration; with checkpointTransport rsyncd it does, and the transport is gone from every host", async (t) => {
  const marker = `edge-ha-marker-${randomBytes(8).toString("hex")}`;
  const port = settingDefaults.transferPort;
  const encrypted = await captureSyncAndMigration("ssh", marker);
  t.is(encrypted.transport, "ssh");
  const overSsh = tcpSegments(encrypted.pcap).filter((s) => s.dport === port || s.sport === port);
  const carried = overSsh.reduce((n, s) => n + s.payload.length, 0);
  t.true(carried > encrypted.bytes, `the capture holds the migration's checkpoint (${encrypted.bytes} bytes) and the syncs, over port ${port}: ${carried} bytes`);
  t.false(readFileSync(encrypted.pcap).includes(marker), "the marker never crossed the network in clear");

  // The setting turned off: every host sends to the rsync daemons, in clear.
  const file = path.join(projectRoot, "stacks", "Pulumi.migtest.yaml");
  const doc = parse(readFileSync(file, "utf8"));
  doc.config["edge-ha:checkpointTransport"] = "rsyncd";
  writeFileSync(file, stringify(doc));
  await stack.up();
  for (const h of inventory().hosts) {
    const left = await sshExec(h, `ls -d /etc/edge-ha/transfer 2>/dev/null; ss -Hltn 'sport = :${port}'`, { nothrow: true });
    t.is(left.stdout.trim(), "", `${h.name}: no checkpoints sshd nor its keys left`);
  }
  const clear = await captureSyncAndMigration("rsyncd", marker);
  t.is(clear.transport, "rsyncd");
  t.true(readFileSync(clear.pcap).includes(marker), "in clear, the capture finds the marker: the check above can fail");
});

// The drills, on this lab (test/suites/drill.ts): services declared in the stack this time.
registerDrillTests({ lab, stack, stackFile: path.join(projectRoot, "stacks", "Pulumi.migtest.yaml") });
