import test from "ava";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { parse, stringify } from "yaml";
import { $ } from "zx";
import { agentEvents, agentState, restoredSince } from "../lib/ha/agent";
import { syncOn } from "../lib/ha/replication";
import { Endpoint } from "../lib/ha/endpoint";
import { findHost, loadInventory } from "../lib/config/inventory";
import { migrate } from "../lib/ha/migration";
import { boot, crash } from "../lib/lab/faults";
import { pushArchive, startRegistry } from "../lib/lab/registry";
import { down, labOptions } from "../lib/lab/lab";
import { freshLabStack } from "../lib/lab/stack";
import { PulumiStack } from "../lib/pulumi";
import { locate } from "../lib/ha/service-container";
import { sshExec } from "../lib/host/ssh";
import { projectRoot } from "../lib/toolchain";
import { sleep, until as poll } from "./helpers/poll";

/*
 * Users' own services, not the demos: two off-the-shelf servers Debian
 * packages, a key-value store (redis-server) built from a Dockerfile and a
 * message broker (mosquitto) given as a `docker save` archive and pulled from
 * the lab's TLS registry, all made without any public registry
 * (examples/), declared in a stack and
 * driven by their own stock clients (redis-cli, mosquitto_pub/_sub) through a
 * planned migration and a crash with automatic failover. Real engines, CRIU,
 * rsync daemons and crashes.
 */
const dir = mkdtempSync(path.join(tmpdir(), "edge-ha-own-test-"));
const lab = labOptions({ name: "owntest", subnetPrefix: "10.77.208", inventoryFile: path.join(dir, "inventory.yaml") });
const stack = new PulumiStack(projectRoot, "owntest");
const stackFile = path.join(projectRoot, "stacks", "Pulumi.owntest.yaml");
const inventory = () => loadInventory(lab.inventoryFile);
const host = (name: string) => findHost(inventory(), name);
const interval = 1;
/**
 * The kv's healthcheck interval: its sync loop sends a checkpoint once a check
 * after it passed, so a crash may lose interval + this. Its timeout is the
 * same (at most the interval, the settings say): a check is a docker exec,
 * which timed out at 0.4 s on this 2-core lab under load (kv's agent logged
 * "failing" five times in 70 s beside one busy process), and three in a row
 * replaced kv in the middle of other tests in CI runs.
 */
const checkInterval = 1;
const kvPort = 16379;
const brokerPort = 11883;
const queuePort = 11884;
const brokerArchive = path.join(dir, "broker.tar");
const services: Record<string, unknown>[] = [
  { name: "kv", build: "examples/redis", ports: [`${kvPort}:6379`], primary: "node1", standby: "node2", syncInterval: interval, tmpfs: ["/run/redis"], healthcheck: { command: ["redis-cli", "ping"], interval: checkInterval, timeout: checkInterval, retries: 3 } },
  { name: "broker", tarball: brokerArchive, ports: [`${brokerPort}:1883`], primary: "node2", standby: "node3", syncInterval: interval },
];
/** The same broker, from the lab's registry (set in test.before), as a swarm service: every host pulls it. */
let queueImage = "";
let registryCa = "";
const runningOn = async (service: string) => (await locate(inventory(), service)).map((h) => h.name);
const until = <T>(seconds: number, check: () => Promise<T>, ok: (v: T) => boolean) => poll(seconds, check, ok, 200);

function setServices(list: object[]): void {
  const doc = parse(readFileSync(stackFile, "utf8"));
  doc.config["edge-ha:services"] = list;
  writeFileSync(stackFile, stringify(doc));
}

test.before(async () => {
  await freshLabStack(lab, stack, 3);
  // The broker as a user on an air-gapped site brings it: an image saved on another machine.
  await $({ quiet: true })`docker build -q -t edge-ha-test/broker:2.0.11 ${path.join(projectRoot, "examples", "mosquitto")}`;
  await $({ quiet: true })`docker save -o ${brokerArchive} edge-ha-test/broker:2.0.11`;
  // ... and a registry on the site's network, trusted by its CA, for the third source.
  const registry = await startRegistry(lab);
  registryCa = registry.ca;
  queueImage = await pushArchive(lab, brokerArchive, "broker:2.0.11");
  services.push({ name: "queue", image: queueImage, ports: [`${queuePort}:1883`], mode: "swarm", replicas: 2 });
  setServices(services);
  const doc = parse(readFileSync(stackFile, "utf8"));
  doc.config["edge-ha:registries"] = [{ address: registry.address, ca: registry.ca, username: registry.username, password: registry.password }];
  // Not the default port: the sync loop, migrations and failovers must all use the one set.
  doc.config["edge-ha:rsyncPort"] = 8873;
  writeFileSync(stackFile, stringify(doc));
  await stack.up();
});

test.after.always(async () => {
  await stack.forget();
  await down(lab);
  await $({ quiet: true, nothrow: true })`docker image rm edge-ha-test/broker:2.0.11`;
});

/** redis-cli against a node (or any address), one command; its reply, or undefined when it failed. */
async function redis(address: string, port: number, ...args: string[]): Promise<string | undefined> {
  const r = await $({ quiet: true, nothrow: true, timeout: "2s" })`redis-cli -h ${address} -p ${port} ${args}`;
  return r.exitCode === 0 && !/^(ERR|Could not connect|Error)/.test(r.stdout) ? r.stdout.trim() : undefined;
}

/** An endpoint that follows the node that answers, as clients at a site would use (lib/ha/endpoint). */
async function endpointFor(port: number): Promise<Endpoint> {
  const endpoint = new Endpoint({ listen: { host: "127.0.0.1", port: 0 }, healthCheck: { everyMs: 100, failures: 2 } });
  endpoint.setBackends(inventory().hosts.map((h) => ({ host: h.address, port })));
  await endpoint.start();
  return endpoint;
}

/**
 * A redis client writing key w:N = N every ~20 ms through `endpoint` until
 * stopped: the moment each write was acknowledged, and the failures.
 */
function writer(endpoint: Endpoint) {
  const acked: { key: string; at: number }[] = [];
  let failed = 0;
  let running = true;
  const done = (async () => {
    for (let n = 0; running; n++) {
      const key = `w:${n}`;
      if ((await redis("127.0.0.1", endpoint.port(), "SET", key, String(n))) === "OK") acked.push({ key, at: Date.now() });
      else failed++;
      await sleep(20);
    }
  })();
  return {
    acked,
    get failed() {
      return failed;
    },
    async stop() {
      running = false;
      await done;
    },
  };
}

/** Runs `attempt` until it gives a value, at most `tries` times 200 ms apart; throws what it last said. */
async function withRetries<T>(what: string, attempt: () => Promise<T | undefined>, tries = 5): Promise<T> {
  for (let i = 1; ; i++) {
    const v = await attempt();
    if (v !== undefined) return v;
    if (i === tries) throw new Error(`${what}: no answer in ${tries} tries`);
    await sleep(200);
  }
}

/** Which of `keys` a node's kv has, with the value its name ends with (a read that gets no answer fails, never counts as lost). */
async function present(address: string, keys: string[]): Promise<Set<string>> {
  const found = new Set<string>();
  for (let i = 0; i < keys.length; i += 500) {
    const chunk = keys.slice(i, i + 500);
    const values = (await withRetries(`MGET of ${chunk.length} keys from ${address}`, () => redis(address, kvPort, "MGET", ...chunk))).split("\n");
    chunk.forEach((k, j) => values[j] === k.split(":")[1] && found.add(k));
  }
  return found;
}

test.serial("pulumi up runs a Dockerfile-built key-value store, a saved broker from a user's archive and the broker pulled from a TLS registry with a login as a swarm service, each image on every host that may run it; a second preview changes nothing", async (t) => {
  const kvOn = await runningOn("kv");
  // Should it not run where the stack put it (two CI runs found it nowhere: the first agent up
  // fenced it, fixed in agent/lease.go firstStartLease): what the agents did, in
  // the assertion's message, which a failure's summary prints whole (a log line may be cut off).
  const why = kvOn.join() === "node1" ? "" : (await agentEvents(inventory().hosts, 200)).filter((e) => e.service === "kv" || !e.service).map((e) => `${e.at} ${e.node} ${e.kind} ${e.service ?? ""}: ${e.message}`).join("\n");
  t.deepEqual(kvOn, ["node1"], `kv runs where the stack put it${why && `; the agents' events:\n${why}`}`);
  t.deepEqual(await runningOn("broker"), ["node2"]);
  t.is(await redis(host("node1").address, kvPort, "PING"), "PONG");
  for (const h of inventory().hosts) {
    const images = (await sshExec(h, "docker image ls --format '{{.Repository}}:{{.Tag}}'")).stdout;
    t.regex(images, /^edge-ha\/redis:[0-9a-f]{12}$/m, `${h.name} has the kv image built here (named by its folder, examples/redis)`);
    t.regex(images, /^edge-ha-test\/broker:2\.0\.11$/m, `${h.name} has the broker loaded from the archive`);
    t.true(images.split("\n").includes(queueImage), `${h.name} pulled ${queueImage}`);
  }
  // The registry refuses anyone without the login: the hosts pulled with the one the stack holds.
  const anonymous = await $({ quiet: true, nothrow: true })`curl -s -o /dev/null -w ${"%{http_code}"} --cacert ${registryCa} ${`https://${queueImage.split("/")[0]}/v2/`}`;
  t.is(anonymous.stdout, "401");
  const state = await stack.exportState();
  const password: string = parse(readFileSync(stackFile, "utf8")).config["edge-ha:registries"][0].password;
  t.false(state.includes(password), "the registry password is in the state only encrypted");
  // Two replicas of the registry's broker, each a broker: a message published to one reaches its subscriber.
  const replicas = await until(30, async () => (await Promise.all(inventory().hosts.map(async (h) => ((await $({ quiet: true, nothrow: true })`mosquitto_pub -h ${h.address} -p ${queuePort} -t ping -m x`).exitCode === 0 ? h.name : "")))).filter(Boolean), (r) => r.length === 2);
  t.is(replicas.length, 2, `queue answers on ${replicas.join(", ")}`);
  const size = (ref: string) => $({ quiet: true })`docker image inspect -f '{{.Size}}' ${ref}`.then((r) => Math.round(Number(r.stdout) / 1e6));
  t.log(`image sizes: broker ${await size("edge-ha-test/broker:2.0.11")} MB`);
  const { summary, output } = await stack.preview({ diff: true });
  t.deepEqual(Object.keys(summary), ["unchanged"], output);
});

test.serial("a criu-mode service with a host bind mount or host networking is refused before any change, each key named; what runs is left alone", async (t) => {
  const before = (await sshExec(host("node1"), "docker container inspect -f '{{.Id}}' kv")).stdout.trim();
  setServices([{ ...services[0], volumes: ["/srv/kv:/data"], network: "host" }, ...services.slice(1)]);
  try {
    const err = await t.throwsAsync(stack.up());
    t.regex(err!.message, /edge-ha:services\[0\]\.volumes: "\/srv\/kv:\/data" is a host bind mount, which a criu-mode service cannot have: a host folder is not part of the container/);
    t.regex(err!.message, /edge-ha:services\[0\]\.network: a criu-mode service cannot have network: host/);
  } finally {
    setServices(services);
  }
  t.is((await sshExec(host("node1"), "docker container inspect -f '{{.Id}}' kv")).stdout.trim(), before, "the same container still runs");
});

test.serial("a service whose trial checkpoint fails is reported with CRIU's reason and the likely cause, and left running where it started, unsynced", async (t) => {
  // A deleted 2 MB file held open (a rotated log, say): more than CRIU carries of such files.
  const ghost = { name: "ghost", build: "examples/redis", ports: ["16390:6379"], primary: "node2", standby: "node3", syncInterval: interval, command: ["sh", "-c", "head -c 2000000 /dev/zero >/var/tmp/big && exec 3</var/tmp/big && rm /var/tmp/big && exec redis-server --protected-mode no"] };
  setServices([...services, ghost]);
  try {
    const err = await t.throwsAsync(stack.up());
    t.regex(err!.message, /ghost cannot be checkpointed on node2, so edge-ha could neither move it nor fail it over; it runs on, unsynced/);
    t.regex(err!.message, /ghost file/i, "CRIU's own words");
    t.regex(err!.message, /Likely cause: a deleted file the service still holds open is larger than CRIU carries/);
    t.deepEqual(await runningOn("ghost"), ["node2"]);
    t.is(await redis(host("node2").address, 16390, "PING"), "PONG", "it still serves");
    t.is((await sshExec(host("node2"), "cat /etc/edge-ha/services/ghost.sync 2>/dev/null", { nothrow: true })).stdout, "", "no sync was started");
  } finally {
    setServices(services);
    await stack.up();
  }
  t.deepEqual(await runningOn("ghost"), [], "removed with its settings");
});

test.serial("planned migration of the key-value store: every key written before is read back on the new node, and every write a client had acknowledged during the move", async (t) => {
  const keys = Array.from({ length: 2000 }, (_, i) => `k:${i}`);
  const loaded = await $({ quiet: true, input: keys.map((k) => `SET ${k} ${k.split(":")[1]}\n`).join("") })`redis-cli -h ${host("node1").address} -p ${kvPort}`;
  t.is(loaded.stdout.split("\n").filter((l) => l === "OK").length, keys.length);
  const endpoint = await endpointFor(kvPort);
  const w = writer(endpoint);
  try {
    await sleep(1000);
    const result = await migrate(inventory(), "kv", "node3", { endpoint });
    await sleep(1000);
    await w.stop();
    t.deepEqual(await runningOn("kv"), ["node3"]);
    const all = [...keys, ...w.acked.map((a) => a.key)];
    const found = await present(host("node3").address, all);
    t.is(found.size, all.length, `missing after the move: ${all.filter((k) => !found.has(k)).slice(0, 10).join(", ")}`);
    t.true(w.failed <= 5, `${w.failed} writes failed during the move`);
    t.log(`kv: downtime ${Math.round(result.downtime * 1000)} ms (dump ${Math.round(result.phases.dump * 1000)}, transfer ${Math.round(result.phases.transfer * 1000)}, restore ${Math.round(result.phases.restore * 1000)}); checkpoint ${(result.bytes / 1e6).toFixed(1)} MB; ${all.length} keys all read back; ${w.failed}/${w.acked.length + w.failed} writes failed`);
  } finally {
    await w.stop();
    await endpoint.stop();
  }
});

/** mosquitto_pub of `count` retained messages edge/N = v-N to a broker (each retried on no answer). */
async function publishRetained(address: string, count: number, prefix: string): Promise<void> {
  const publish = async (n: number) => ((await $({ quiet: true, nothrow: true })`mosquitto_pub -h ${address} -p ${brokerPort} -q 1 -r -t ${`${prefix}/${n}`} -m ${`v-${n}`}`).exitCode === 0 ? true : undefined);
  for (let i = 0; i < count; i += 50) {
    // Up to 5 s each: under the full suite's load a broker once left a publish unanswered 5 times in 1 s
    // (its checkpoints freeze it for a moment every second); what is checked is what it delivers later.
    await Promise.all(Array.from({ length: Math.min(50, count - i) }, (_, j) => withRetries(`publish ${prefix}/${i + j} to ${address}`, () => publish(i + j), 25)));
  }
}

/** The retained messages under `prefix` a broker gives a new subscriber, as topic → message. */
async function readRetained(address: string, prefix: string, count: number): Promise<Map<string, string>> {
  const r = await $({ quiet: true, nothrow: true })`mosquitto_sub -h ${address} -p ${brokerPort} -t ${`${prefix}/#`} -v -C ${count} -W 5`;
  return new Map(r.stdout.split("\n").filter(Boolean).map((l) => l.split(" ") as [string, string]));
}

test.serial("planned migration of the broker: every retained message published before is delivered by the new node", async (t) => {
  await publishRetained(host("node2").address, 300, "plan");
  const result = await migrate(inventory(), "broker", "node1");
  t.deepEqual(await runningOn("broker"), ["node1"]);
  const got = await readRetained(host("node1").address, "plan", 300);
  t.is(got.size, 300);
  t.true([...got].every(([topic, m]) => m === `v-${topic.split("/")[1]}`));
  t.log(`broker: downtime ${Math.round(result.downtime * 1000)} ms; checkpoint ${(result.bytes / 1e6).toFixed(1)} MB; 300/300 retained messages delivered`);
});

/** Boots a crashed node and waits until its engine answers again. */
async function bootAndWait(name: string): Promise<void> {
  await boot(lab, name);
  await until(90, async () => (await sshExec(host(name), "docker info >/dev/null 2>&1", { nothrow: true, connectTimeout: 2 })).exitCode === 0, (ok) => ok);
}

test.serial("crash of the key-value store's node: the agents restore it elsewhere; every write acknowledged more than its sync interval and check interval before the crash is there, one copy runs", async (t) => {
  const endpoint = await endpointFor(kvPort);
  const w = writer(endpoint);
  const on = (await runningOn("kv"))[0];
  let crashedAt = 0;
  try {
    await sleep(3000);
    crashedAt = await crash(lab, on);
    const others = { ...inventory(), hosts: inventory().hosts.filter((h) => h.name !== on) };
    const now = await until(30, async () => (await locate(others, "kv")).map((h) => h.name), (r) => r.length === 1);
    t.is(now.length, 1, "restored on one node");
    const servedAt = await until(30, async () => ((await redis("127.0.0.1", endpoint.port(), "PING")) === "PONG" ? Date.now() : 0), (v) => v > 0);
    await sleep(1000);
    await w.stop();
    const restored = await restoredSince(host(now[0]), "kv", crashedAt);
    const promise = (interval + checkInterval) * 1000;
    const promised = w.acked.filter((a) => a.at < crashedAt - promise).map((a) => a.key);
    const found = await present(host(now[0]).address, promised);
    t.is(found.size, promised.length, `lost: ${promised.filter((k) => !found.has(k)).slice(0, 10).join(", ")}`);
    const lostAfter = w.acked.filter((a) => a.at >= crashedAt - promise && a.at < crashedAt).length;
    t.log(`kv: crash to serving ${servedAt - crashedAt} ms on ${now[0]}; checkpoint ${restored?.ageMs} ms old; ${promised.length} writes from before crash - ${promise} ms (sync + check interval) all there; ${w.failed} client errors`);
    t.true(servedAt - crashedAt < 15_000);
    t.true(w.failed * 20 < 30_000, `${w.failed} client errors`);
    t.log(`writes within the last interval before the crash (may be lost): ${lostAfter}`);
  } finally {
    await w.stop();
    await endpoint.stop();
    if (crashedAt) await bootAndWait(on);
  }
  const copies = await until(60, () => runningOn("kv"), (r) => r.length === 1 && r[0] !== on);
  t.is(copies.length, 1, "one copy after the crashed node is back");
});

test.serial("crash of the broker's node: retained messages published more than one sync interval before are delivered by the node it is restored on", async (t) => {
  const on = (await runningOn("broker"))[0];
  await publishRetained(host(on).address, 200, "crash");
  await sleep(2 * interval * 1000 + 500);
  const crashedAt = await crash(lab, on);
  try {
    const others = { ...inventory(), hosts: inventory().hosts.filter((h) => h.name !== on) };
    const now = await until(30, async () => (await locate(others, "broker")).map((h) => h.name), (r) => r.length === 1);
    t.is(now.length, 1);
    const got = await until(30, () => readRetained(host(now[0]).address, "crash", 200), (m) => m.size === 200);
    t.is(got.size, 200);
    t.log(`broker: restored on ${now[0]} ${Date.now() - crashedAt} ms after the crash (until read back); 200/200 retained messages`);
  } finally {
    await bootAndWait(on);
  }
  const copies = await until(60, () => runningOn("broker"), (r) => r.length === 1 && r[0] !== on);
  t.is(copies.length, 1, "one copy after the crashed node is back");
});

test.serial("a hung key-value store (CLIENT PAUSE: it accepts connections and answers nothing) fails its healthcheck: the agents fence it and restore the standby's last checkpoint a passing check vouched for; one copy runs and serves, every write acknowledged before the hang is there", async (t) => {
  // Settled after the crash before: every node's agent holds its lease again, kv runs once and syncs.
  const began = Date.now();
  await until(60, async () => (await Promise.all(inventory().hosts.map((h) => agentState(h)))).every((st) => (st?.leaseMs ?? 0) > 0), (ok) => ok);
  const where = await until(30, () => runningOn("kv"), (r) => r.length === 1);
  t.is(where.length, 1, `kv runs once before the hang: ${where.join(", ")}`);
  const on = where[0];
  t.truthy(await until(30, async () => (await syncOn(host(on), "kv"))?.standby, (v) => !!v), "and syncs to a standby");
  const acked: { key: string; at: number }[] = [];
  for (let n = 0; n < 100; n++) {
    if ((await redis(host(on).address, kvPort, "SET", `h:${n}`, String(n))) === "OK") acked.push({ key: `h:${n}`, at: Date.now() });
    await sleep(20);
  }
  await sleep((interval + checkInterval) * 1000 + 1000);
  const status = await $({ quiet: true, nothrow: true, cwd: projectRoot })`bin/edge-ha service status kv --json --inventory ${lab.inventoryFile}`;
  t.is(status.exitCode, 0, status.stderr);
  const health = JSON.parse(status.stdout).health;
  // Should it have moved before the hang, what the agents did (nothing of this test moves it).
  if (JSON.stringify(health) !== JSON.stringify({ [on]: "healthy" })) t.log((await agentEvents(inventory().hosts, 200)).filter((e) => Date.parse(e.at) >= began).map((e) => `${e.at} ${e.node} ${e.kind} ${e.service ?? ""}: ${e.message}`).join("\n"));
  t.deepEqual(health, { [on]: "healthy" }, "status shows what its healthcheck found");
  const hungAt = Date.now();
  t.is(await redis(host(on).address, kvPort, "CLIENT", "PAUSE", "300000", "ALL"), "OK");
  const now = await until(40, () => runningOn("kv"), (r) => r.length === 1 && r[0] !== on);
  t.true(now.length === 1 && now[0] !== on, `kv runs on ${now.join(", ") || "no node"}, expected one node other than the hung ${on}`);
  const servedAt = await until(30, async () => ((await redis(host(now[0]).address, kvPort, "PING")) === "PONG" ? Date.now() : 0), (v) => v > 0);
  t.true(servedAt > 0, "the restored copy answers: its checkpoint is from before the hang");
  const found = await present(host(now[0]).address, acked.map((a) => a.key));
  t.is(found.size, acked.length, `lost: ${acked.filter((a) => !found.has(a.key)).slice(0, 10).map((a) => a.key).join(", ")}`);
  const events = (await agentEvents(inventory().hosts, 200)).filter((e) => e.service === "kv" && Date.parse(e.at) >= hungAt - 1000);
  t.true(events.some((e) => e.kind === "unhealthy" && e.node === on), `the hung node's agent said unhealthy: ${JSON.stringify(events.map((e) => `${e.node} ${e.kind}`))}`);
  t.true(events.some((e) => e.kind === "failover" && /fails its healthcheck/.test(e.message)), "the controller said why it replaced it");
  t.log(`kv: hung to serving on ${now[0]} ${servedAt - hungAt} ms (checks every ${checkInterval} s, 3 failures); ${acked.length}/${acked.length} writes from before the hang there`);
});
