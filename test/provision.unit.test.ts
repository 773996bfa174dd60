import test from "ava";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { parse } from "yaml";
import { recordResources, unwrap } from "./helpers/mocks";

const registered = recordResources();
// Imported after the mocks are in place, as Pulumi's unit-testing guide asks.
import { parseInventory } from "../lib/config/inventory";
import { checkServicePlacement, parseSettings, settingDefaults, SettingsError } from "../lib/config/settings";
import { EdgeCluster } from "../modules/edge-cluster";
import { runArgs, serviceSpec } from "../lib/ha/service-container";
import { RegistryTrust } from "../modules/registry-trust";
import { HaService } from "../modules/ha-service";
import { EdgeServices } from "../modules/edge-services";
import { Criu, criuDefaultConfig, criuLeaveRunningConfig, runcConfig } from "../modules/criu";
import { connectionFor } from "../modules/host-facts";
import { daemonConfig, DockerEngine, registryLogins } from "../modules/docker-engine";
import { rsyncdConfig } from "../modules/rsync-daemon";
import { authorizedKeyLine, parseHostKeys, transferSshdConfig } from "../modules/checkpoint-transport";
import { FailoverAgents } from "../modules/failover-agent";
import { agentConfig } from "../lib/ha/agent";
import { hostKeyFrom } from "../lib/host/known-hosts";
import { syncInstallScript } from "../lib/ha/replication";
import { restoreCommand } from "../lib/ha/service-container";
import { restoreStepsOf } from "../lib/ha/migration";
import { hostTools } from "../lib/host/paths";
import type { HealthCheck } from "../lib/config/service-spec";
import { hostFile, hostVariables } from "../lib/host/shell";
import { spawnSync } from "node:child_process";
import { goDuration, SwarmService } from "../modules/swarm-service";
import { hostCommandScript } from "../modules/command";
import { rootCommand, sudoMarker } from "../lib/host/ssh";

const dir = mkdtempSync(path.join(tmpdir(), "edge-ha-unit-"));
writeFileSync(path.join(dir, "id"), "-----BEGIN OPENSSH PRIVATE KEY-----\nKEY\n-----END OPENSSH PRIVATE KEY-----\n");
writeFileSync(path.join(dir, "known_hosts"), "10.0.0.1 ssh-ed25519 AAAA1\n10.0.0.2 ssh-ed25519 AAAA2\n10.0.0.3 ssh-ed25519 AAAA3\n10.0.0.4 ssh-ed25519 AAAA4\n");
const inventory = parseInventory(
  `
cluster: shop
defaults: { ssh: { privateKeyFile: id, knownHostsFile: known_hosts } }
hosts:
  - { name: pi1, address: 10.0.0.1, arch: arm64, roles: [manager], labels: { zone: a } }
  - { name: pi2, address: 10.0.0.2, arch: arm64, roles: [worker] }
  - { name: vm1, address: 10.0.0.3, arch: amd64, roles: [worker], labels: { zone: c } }
`,
  path.join(dir, "inventory.yaml"),
);
const settings = parseSettings({ inventory: "inventory.yaml" }, "stacks/Pulumi.unit.yaml");
const cluster = new EdgeCluster("shop", { inventory, settings });
const fakeImage = (image: string, arch: string) => ({ kind: "load" as const, ref: `edge-ha/${image}:${arch}0000`, archive: `/images/${image}-${arch}.tar`, sha256: "0".repeat(64), id: `sha256:${"1".repeat(64)}` });
const services = new EdgeServices("shop-services", {
  inventory,
  services: parseSettings(
    {
      inventory: "inventory.yaml",
      services: JSON.stringify([
        { name: "counter", build: "services/counter", ports: ["18080:8080"], primary: "pi1", standby: "pi2", syncInterval: 1, volumes: ["data:/data"] },
        { name: "web", build: "services/web", ports: ["18081:80"], primary: "vm1", standby: "pi1" },
        { name: "counter-swarm", build: "services/counter", ports: ["18090:8080"], mode: "swarm", replicas: 2 },
      ]),
    },
    "stacks/Pulumi.unit.yaml",
  ).services.filter((s) => s.name !== "counter-swarm"),
  nodes: cluster.ready,
  images: { "counter-arm64": fakeImage("counter", "arm64"), "web-amd64": fakeImage("web", "amd64") },
});
const serviceSettings = parseSettings(
  {
    inventory: "inventory.yaml",
    services: JSON.stringify([
      { name: "counter", build: "services/counter", ports: ["18080:8080"], primary: "pi1", standby: "pi2", syncInterval: 1 },
      { name: "by-hand", build: "services/counter", ports: ["18082:8080"], primary: "pi2", standby: "pi1", failover: "manual" },
      { name: "counter-swarm", build: "services/counter", ports: ["18090:8080"], mode: "swarm" },
    ]),
    failover: JSON.stringify({ heartbeatMs: 100, leaseMs: 300, downAfterMs: 500 }),
  },
  "stacks/Pulumi.unit.yaml",
);
new SwarmService("counter-swarm", {
  spec: { name: "counter-swarm", image: "edge-ha/counter:arm640000", containerPort: 8080, hostPort: 18090, volumes: [{ name: "cache", target: "/cache" }] },
  replicas: 2,
  manager: cluster.ready.pi1,
});
writeFileSync(path.join(dir, "agent-arm64"), "arm64 agent");
writeFileSync(path.join(dir, "agent-amd64"), "amd64 agent");
new FailoverAgents("shop-failover", {
  inventory,
  failover: serviceSettings.failover,
  services: serviceSettings.services,
  nodes: cluster.ready,
  binaries: { arm64: path.join(dir, "agent-arm64"), amd64: path.join(dir, "agent-amd64") },
});
/** The script a host command sends on stdin (modules/command), and the environment it exports. */
const script = (r: { inputs: Record<string, any> }): string => r.inputs.stdin ?? "";
const envOf = (r: { inputs: Record<string, any> }): Record<string, string> =>
  Object.fromEntries([...script(r).matchAll(/^export ([A-Z0-9_]+)='((?:[^']|'\\'')*)'$/gm)].map((m) => [m[1], m[2].replace(/'\\''/g, "'")]));
const named = (name: string) => {
  const r = registered.find((x) => x.name === name);
  if (!r) throw new Error(`no resource ${name}; have: ${registered.map((x) => x.name).join(", ")}`);
  return r;
};

test("every host gets its facts checked, a Docker engine, an rsync daemon and CRIU, each over its own connection", async (t) => {
  await unwrap(cluster.nodes.pi1.docker!);
  for (const [host, address] of [["pi1", "10.0.0.1"], ["pi2", "10.0.0.2"], ["vm1", "10.0.0.3"]]) {
    for (const name of [`${host}-facts`, `${host}-engine`, `${host}-rsyncd`, `shop-${host}`]) {
      const r = named(name);
      t.is(r.type, "command:remote:Command", name);
      t.is(r.inputs.connection.host, address, name);
      t.is(r.inputs.connection.hostKey, `ssh-ed25519 AAAA${address.slice(-1)}`, `${name} trusts only its host's key`);
      t.is(r.inputs.create, "bash -s -- create", `${name}: the script travels on stdin, not in the command line`);
    }
  }
  t.is(envOf(named("pi1-engine")).PACKAGES, "docker.io");
  t.is(named("pi1-host-tools").inputs.connection.host, "10.0.0.1", "edge-ha's host library goes to every host");
  t.regex(script(named("pi1-facts")), /aarch64/, "arm64 hosts must say aarch64");
});

test("CRIU is staged once per architecture; the other hosts of that architecture pull it from the first one's rsync daemon", (t) => {
  const stages = registered.filter((r) => r.name.endsWith("-stage")).map((r) => [r.name, r.inputs.connection.host]);
  t.deepEqual(stages.sort(), [["shop-amd64-stage", "10.0.0.3"], ["shop-arm64-stage", "10.0.0.1"]]);
  t.deepEqual(
    ["pi1", "pi2", "vm1"].map((h) => [h, envOf(named(`shop-${h}`)).FROM_HOST]),
    [["pi1", ""], ["pi2", "10.0.0.1"], ["vm1", ""]],
  );
  t.regex(script(named("shop-pi2")), /rsync:\/\/\$RSYNC_USER@\$FROM_HOST\/\$EDGE_HA_ARTIFACTS_MODULE\/criu\/criu/);
  t.regex(script(named("shop-pi2")), /install_staged "\$from" \/usr\/local\/sbin\/criu "\$CRIU_SHA256"/, "the pulled binary is checked against the sha256 its builder reported");
});

test("the CRIU edge-ha builds is kept on this machine: offered to each architecture's first host before its stage, kept after it; the host reached with its own key and host key, secret; no path of this machine in the inputs", async (t) => {
  const offers = registered.filter((r) => r.name.endsWith("-cache-offer"));
  t.deepEqual(offers.map((r) => [r.name, r.type, r.inputs.environment.ADDRESS]).sort(), [["shop-amd64-cache-offer", "command:local:Command", "10.0.0.3"], ["shop-arm64-cache-offer", "command:local:Command", "10.0.0.1"]]);
  const offer = named("shop-arm64-cache-offer");
  const keep = named("shop-arm64-cache-keep");
  for (const step of [offer, keep]) {
    const env = step.inputs.environment;
    t.is(env.CACHE, "~/.cache/edge-ha/criu", "the setting as written: expanded on the machine that runs it");
    t.regex(env.NAME, /^criu-4\.2\.1-arm64-[0-9a-f]{12}$/);
    t.deepEqual([env.LOGIN, env.PORT, env.HOST_KEY], ["root", "22", "ssh-ed25519 AAAA1"]);
    t.regex(env.PRIVATE_KEY, /^-----BEGIN OPENSSH PRIVATE KEY-----/);
    t.true(step.secretInputs.includes("environment.PRIVATE_KEY") || step.secretInputs.includes("environment"), `${step.name}: the private key is secret`);
    t.notRegex(JSON.stringify(step.inputs), new RegExp(dir), `${step.name}: no path of this machine (another operator's preview would differ)`);
    t.regex(step.inputs.create, /StrictHostKeyChecking=yes[\s\S]*UserKnownHostsFile="\$work\/known_hosts"/);
  }
  t.is(envOf(named("shop-arm64-stage")).OFFERED, offer.inputs.environment.OFFERED, "the stage looks where the offer puts it");
  t.regex(script(named("shop-arm64-stage")), /trap '\[ -z "\$offered" \] \|\| rm -f "\$offered"' EXIT/, "and removes it, used or not");
  t.is(keep.inputs.environment.ORIGIN, "mock-shop-arm64-stage", "kept from what the stage reported");

  new Criu("nocache", { nodes: [{ host: inventory.hosts[2], connection: connectionFor(inventory.hosts[2]) }] });
  for (let i = 0; i < 100 && !registered.some((r) => r.name === "nocache-vm1"); i++) await new Promise((r) => setTimeout(r, 10));
  t.truthy(registered.find((r) => r.name === "nocache-amd64-stage"));
  t.false(registered.some((r) => r.name.startsWith("nocache-") && r.name.includes("-cache-")), "no cache: no cache steps");
  t.throws(() => parseSettings({ inventory: "i.yaml", criuCache: "cache" }, "stacks/Pulumi.unit.yaml"), { message: /edge-ha:criuCache: expected an absolute folder \(or one under ~\/\) on the machine that runs pulumi, or none, found "cache"/ });
});

test("the swarm is initialized on the first manager; others join with the worker token, and labels are set from the manager", (t) => {
  t.is(named("shop-init").inputs.connection.host, "10.0.0.1");
  const member = named("shop-pi2-member");
  t.is(member.inputs.connection.host, "10.0.0.2");
  t.is(envOf(member).LEADER, "10.0.0.1");
  t.true("TOKEN" in envOf(member));
  t.false(registered.some((r) => r.name === "shop-pi1-member"), "the first manager does not join itself");
  const settingsOfVm = named("shop-vm1-settings");
  t.is(settingsOfVm.inputs.connection.host, "10.0.0.1");
  t.deepEqual([envOf(settingsOfVm).LABELS, envOf(settingsOfVm).ROLE], ["zone=c", "worker"]);
  t.is(settingsOfVm.inputs.delete, "bash -s -- delete");
  t.regex(script(settingsOfVm).split("edge_ha_delete()")[1], /--availability drain[\s\S]*demote[\s\S]*node rm/);
});

test("secrets stay secret: join tokens, the generated rsync password, and no secret inside any script", async (t) => {
  t.true((await unwrap(cluster.nodes.pi1.swarmNodeId!)).value.length > 0);
  t.truthy(registered.find((r) => r.type === "edge-ha:secret:GeneratedSecret"));
  t.is(named("shop-rsync-password-value").type, "command:local:Command", "generated on this machine by @pulumi/command");
  for (const r of registered.filter((x) => x.type === "command:remote:Command")) {
    // The fixture's private key ("KEY") and the inventory's host keys (AAAA1..); the hosts' public checkpoint keys are not secret.
    t.notRegex(script(r), /PRIVATE KEY|^KEY$|AAAA\d/m, `${r.name}'s script carries no key`);
  }
  t.regex(script(named("pi1-rsyncd")), /"\$RSYNC_SECRET"/, "the password reaches the host through the environment");
  t.true(named("pi1-rsyncd").secretInputs.includes("connection"));
  t.true(named("pi1-rsyncd").secretInputs.includes("stdin"), "the generated password makes the script's stdin secret");
  t.true(named("shop-pi2-member").secretInputs.includes("stdin"), "the join token makes the script's stdin secret");
  t.false(named("pi1-facts").secretInputs.includes("stdin"), "a script without secrets stays readable in a preview's diff");
});

test("daemon.json, runc.conf and rsyncd.conf say what the settings ask", (t) => {
  t.deepEqual(daemonConfig({ logMaxSize: "5m", logMaxFiles: 2, daemonOptions: { "max-concurrent-downloads": 1 } }), {
    experimental: true,
    "log-driver": "json-file",
    "log-opts": { "max-size": "5m", "max-file": "2" },
    "max-concurrent-downloads": 1,
  });
  t.is(runcConfig({ tcpEstablished: false, extra: ["ext-unix-sk"] }).split("\n").slice(1).join(" ").trim(), "file-locks skip-in-flight ext-unix-sk");
  // The lock is in default.conf, which CRIU reads before the sync's file (no lock) and runc.conf.
  t.regex(criuDefaultConfig(), /^# Written by edge-ha: .*\nnetwork-lock nftables\n$/);
  t.regex(criuDefaultConfig({ networkLock: "iptables" }), /\nnetwork-lock iptables\n$/);
  t.regex(criuLeaveRunningConfig, /^# Written by edge-ha: .*\nnetwork-lock skip\n$/);
  const conf = rsyncdConfig({ allowedHosts: ["10.0.0.1", "10.0.0.2"] });
  t.regex(conf, /hosts allow = 127\.0\.0\.1 10\.0\.0\.1 10\.0\.0\.2\n\s+hosts deny = \*/);
  t.regex(conf, /auth users = edge-ha/);
  t.notRegex(conf, /secret[^s]/i);
});

test("settings: defaults, and every bad key named with the stack file", (t) => {
  t.like(parseSettings({ inventory: "x.yaml" }, "f"), { dockerSource: "debian", criuSource: "auto", criuVersion: "4.2.1", rsyncPort: 873, criuTcpEstablished: true });
  const err = t.throws(() => parseSettings({ criuSource: "sometimes", rsyncPort: "99999", criuVersion: "4x1x1", colour: "blue" }, "stacks/Pulumi.pis.yaml"), { instanceOf: SettingsError });
  t.regex(err!.message, /^stacks\/Pulumi\.pis\.yaml has invalid settings:/);
  t.regex(err!.message, /edge-ha:colour: unknown setting/);
  t.regex(err!.message, /edge-ha:criuSource: expected one of auto, distro, build, found "sometimes"/);
  t.regex(err!.message, /edge-ha:rsyncPort: expected a whole number from 1 to 65535, found 99999/);
  t.regex(err!.message, /edge-ha:criuVersion: expected one of 4\.2\.1, 4\.1\.1, found "4x1x1"/);
  t.regex(err!.message, /edge-ha:inventory: expected the path/);
});

test("a host missing from known_hosts stops the program before any command resource exists", async (t) => {
  const stranger = parseInventory(
    `cluster: x\ndefaults: { ssh: { privateKeyFile: id, knownHostsFile: known_hosts } }\nhosts:\n  - { name: a, address: 10.0.0.1, roles: [manager] }\n  - { name: b, address: 10.0.0.9 }\n`,
    path.join(dir, "other.yaml"),
  );
  t.throws(() => new EdgeCluster("x", { inventory: stranger, settings }), { message: /known_hosts has no key for b \(10\.0\.0\.9\)/ });
  await new Promise((r) => setTimeout(r, 50));
  t.deepEqual(registered.filter((r) => /^(a|b|x)-/.test(r.name)).map((r) => r.name), []);
});

test("the committed example stack and the lab stack hold valid settings", (t) => {
  for (const stackName of ["example", "lab"]) {
    const file = path.join(__dirname, "..", "stacks", `Pulumi.${stackName}.yaml`);
    const config = parse(readFileSync(file, "utf8")).config as Record<string, unknown>;
    // Pulumi hands structured values to the program as JSON.
    const raw = Object.fromEntries(Object.entries(config).map(([k, v]) => [k.replace(/^edge-ha:/, ""), typeof v === "object" ? JSON.stringify(v) : String(v)]));
    t.notThrows(() => parseSettings(raw, file), stackName);
  }
  // The example's services against the example inventory, as preview checks them (its vip in its subnet).
  const example = parse(readFileSync(path.join(__dirname, "..", "stacks", "Pulumi.example.yaml"), "utf8")).config as Record<string, unknown>;
  const inventoryFile = path.join(__dirname, "..", "inventory", "example.yaml");
  const settings = parseSettings({ inventory: "inventory/example.yaml", services: JSON.stringify(example["edge-ha:services"]) }, "stacks/Pulumi.example.yaml");
  t.notThrows(() => checkServicePlacement(settings, parseInventory(readFileSync(inventoryFile, "utf8"), inventoryFile), "stacks/Pulumi.example.yaml"));
});

test("a CRIU service starts on its primary and syncs to its standby; its image goes to every host of its architecture", async (t) => {
  await unwrap(cluster.nodes.pi1.docker!);
  await new Promise((r) => setTimeout(r, 50));
  t.is(named("counter-start").inputs.connection.host, "10.0.0.1");
  // The same address on every host (172.31.<18080 / 256>.<18080 % 256>): CRIU restores TCP connections only there.
  const spec = '{"name":"counter","image":"edge-ha/counter:arm640000","containerPort":8080,"hostPort":18080,"volumes":[{"name":"data","target":"/data"}]}';
  t.deepEqual(envOf(named("counter-start")).RUN_ARGS.split("\n"), [
    ...["--name", "counter", "--label", "edge-ha.service=counter", "--label", "edge-ha.port=18080", "--label", `edge-ha.spec=${spec}`],
    ...["--network", "edge-ha", "--ip", "172.31.70.160", "-p", "18080:8080/tcp", "-v", "data:/data", "edge-ha/counter:arm640000"],
  ]);
  t.regex(script(named("counter-start")), /mapfile -t args <<<"\$RUN_ARGS"\n\s+service_replace run "\$SERVICE" "\$\{args\[@\]\}"/);
  // New settings are an update that rolls the new version out where the service runs, gated by its health check.
  t.regex(script(named("counter-start")), /edge_ha_update\(\)[\s\S]*checkpoint_exit "\$SERVICE"[\s\S]*health_probe "\$SERVICE" "\$HOST_ADDRESS"[\s\S]*rollback "did not pass its/);
  t.like(envOf(named("counter-start")), { IMAGE: "edge-ha/counter:arm640000", HOST_ADDRESS: "10.0.0.1", HEALTH_KIND: "tcp", HEALTH_PORT: "18080", READY_SECONDS: "30" });
  t.is(named("counter-start").inputs.triggers, undefined, "no replacement: its delete would remove the running service");
  t.is(named("counter-sync").inputs.connection.host, "10.0.0.1");
  t.like(envOf(named("counter-sync")), { SERVICE: "counter", STANDBY_NAME: "pi2", STANDBY_ADDRESS: "10.0.0.2", INTERVAL_MS: "1000" });
  t.snapshot(script(named("counter-sync")), "the sync's host command, as sent on stdin");
  t.is(named("counter-standby").inputs.connection.host, "10.0.0.2");
  const copies = await Promise.all(
    registered.filter((r) => r.type === "command:remote:CopyToRemote" && r.name.startsWith("shop-services-")).map(async (r) => [r.name, r.inputs.connection.host, await r.inputs.source.path]),
  );
  t.deepEqual(copies.sort(), [
    ["shop-services-edge-ha-counter-arm640000-arm64-pi1-archive", "10.0.0.1", "/images/counter-arm64.tar"],
    ["shop-services-edge-ha-counter-arm640000-arm64-pi2-archive", "10.0.0.2", "/images/counter-arm64.tar"],
    ["shop-services-edge-ha-web-amd640000-amd64-vm1-archive", "10.0.0.3", "/images/web-amd64.tar"],
  ]);
  t.is(services.services.web.containerPort, 80);
});

test("service settings: bad values are named with their file, index and key", (t) => {
  const err = t.throws(
    () => parseSettings({ inventory: "i.yaml", services: JSON.stringify([{ name: "Bad", image: "Redis:7", port: 0, primary: "pi1", standby: "pi1", colour: 1, readySeconds: 0 }, { name: "x", build: "services/web", ports: ["1:80"], mode: "swarm", volumes: ["nope"] }]) }, "stacks/Pulumi.pis.yaml"),
    { instanceOf: SettingsError },
  );
  for (const expected of [/services\[0\]\.name: expected lower-case/, /services\[0\]\.image: expected a registry reference such as .*, found "Redis:7"/, /services\[0\]\.port: expected a port number/, /services\[0\]\.standby: expected another host than the primary/, /services\[0\]\.colour: unknown key/, /services\[0\]\.readySeconds: expected a whole number of seconds from 1 to 3600, found 0/, /services\[1\]\.volumes: expected a list of NAME:\/path/]) {
    t.regex(err!.message, expected);
  }
  t.throws(() => parseSettings({ inventory: "i.yaml", services: "counter" }, "f.yaml"), { message: /edge-ha:services: expected a list of services/ });
});

test("maxLag: seconds at least half an interval past syncInterval, criu services only; it is the sync loop's, not the container's", (t) => {
  const settings = (extra: object) => parseSettings({ inventory: "i.yaml", services: JSON.stringify([{ name: "kv", image: "redis:7", port: 6379, primary: "pi1", standby: "pi2", syncInterval: 1, ...extra }]) }, "stacks/Pulumi.pis.yaml");
  t.regex(t.throws(() => settings({ maxLag: 1.2 }))!.message, /services\[0\]\.maxLag: expected seconds from syncInterval \+ 0\.5 \(1\.5\) to 3600, found 1\.2/);
  t.regex(t.throws(() => settings({ maxLag: 3, mode: "swarm" }))!.message, /services\[0\]\.maxLag: a swarm-mode service has no standby to lag/);
  const [kv] = settings({ maxLag: 2.5 }).services;
  t.is(kv.maxLag, 2.5);
  t.deepEqual(serviceSpec(kv, "redis:7"), serviceSpec(settings({}).services[0], "redis:7"), "not the container's: a change restarts the sync loop, not the service");
});

test("your own service: an image from a registry, a docker save archive or a Dockerfile, with ports, env, command and limits, becomes its container's arguments", (t) => {
  const [kv, broker, app] = parseSettings(
    {
      inventory: "i.yaml",
      services: JSON.stringify([
        { name: "kv", image: "10.77.0.1:5000/kv:7", ports: ["16379:6379"], primary: "pi1", standby: "pi2", command: ["redis-server", "--save", ""], env: { TZ: "UTC", RETRIES: 3 }, user: "999:999", memory: "256m", cpus: 0.5, tmpfs: ["/run"] },
        { name: "broker", tarball: "images/broker.tar", ports: ["1883", "5683:5683/udp"], primary: "pi1", standby: "pi2", volumes: ["broker-data:/var/lib/mosquitto"] },
        { name: "app", build: "apps/shop", dockerfile: "Dockerfile.edge", ports: ["8443:443"], mode: "swarm", volumes: ["/srv/shop:/data"] },
      ]),
    },
    "stacks/Pulumi.unit.yaml",
  ).services;
  t.deepEqual(kv.image, { kind: "registry", ref: "10.77.0.1:5000/kv:7" });
  t.like(kv, { port: 16379, containerPort: 6379, morePorts: [], user: "999:999", memory: "256m", cpus: 0.5, env: { TZ: "UTC", RETRIES: "3" }, command: ["redis-server", "--save", ""] });
  t.deepEqual(broker.image, { kind: "tarball", file: "images/broker.tar" });
  t.like(broker, { port: 1883, containerPort: 1883, morePorts: [{ host: 5683, container: 5683, protocol: "udp" }] });
  t.deepEqual(app.image, { kind: "build", context: "apps/shop", dockerfile: "Dockerfile.edge" });
  t.deepEqual(app.binds, [{ source: "/srv/shop", target: "/data" }]);

  const args = runArgs({ name: "kv", image: "10.77.0.1:5000/kv:7", containerPort: 6379, hostPort: 16379, morePorts: [{ host: 5683, container: 5683, protocol: "udp" }], tmpfs: ["/run"], env: { TZ: "UTC", A: "two words" }, command: ["redis-server", "--save", ""], user: "999", memory: "256m", cpus: 0.5 });
  t.deepEqual(args.slice(args.indexOf("--network")), [
    ...["--network", "edge-ha", "--ip", "172.31.63.251", "-p", "16379:6379/tcp", "-p", "5683:5683/udp", "--tmpfs", "/run"],
    ...["-e", "A=two words", "-e", "TZ=UTC", "--user", "999", "--memory", "256m", "--cpus", "0.5", "10.77.0.1:5000/kv:7", "redis-server", "--save", ""],
  ]);
});

test("a criu-mode service that asks for what CRIU cannot carry is refused, each key named with the reason; swarm mode takes host folders", (t) => {
  const err = t.throws(
    () =>
      parseSettings(
        {
          inventory: "i.yaml",
          services: JSON.stringify([
            { name: "kv", image: "kv:7", port: 16379, primary: "pi1", standby: "pi2", volumes: ["/srv/kv:/data"], network: "host", privileged: true, devices: ["/dev/ttyUSB0"], pid: "host" },
            { name: "two", image: "kv:7", tarball: "kv.tar", port: 16380, primary: "pi1", standby: "pi2", env: { "1X": "a" }, command: "redis-server", ports: ["1:2"] },
          ]),
        },
        "stacks/Pulumi.unit.yaml",
      ),
    { instanceOf: SettingsError },
  );
  for (const expected of [
    /services\[0\]\.volumes: "\/srv\/kv:\/data" is a host bind mount, which a criu-mode service cannot have: a host folder is not part of the container/,
    /services\[0\]\.network: a criu-mode service cannot have network: host: the host's network namespace/,
    /services\[0\]\.privileged: a criu-mode service cannot have privileged: /,
    /services\[0\]\.devices: a criu-mode service cannot have devices: a device's state/,
    /services\[0\]\.pid: a criu-mode service cannot have pid: host/,
    /services\[1\]\.tarball: expected exactly one of image .*, tarball .* or build .*; found image and tarball/,
    /services\[1\]\.env: expected a mapping of NAME: value/,
    /services\[1\]\.command: expected a list of arguments/,
    /services\[1\]\.ports: expected port or ports, found both/,
  ]) {
    t.regex(err!.message, expected);
  }
  t.notThrows(() => parseSettings({ inventory: "i.yaml", services: JSON.stringify([{ name: "kv", image: "kv:7", port: 16379, mode: "swarm", volumes: ["/srv/kv:/data"] }]) }, "f.yaml"));
});

test("healthcheck: tcp, http or command, as the agents reach it (the host's port); every bad key named at once; swarm takes command only", (t) => {
  const [kv, web, broker] = parseSettings(
    {
      inventory: "i.yaml",
      services: JSON.stringify([
        { name: "kv", image: "kv:7", ports: ["16379:6379"], primary: "pi1", standby: "pi2", healthcheck: { command: ["redis-cli", "ping"], interval: 0.5, timeout: 0.4, retries: 2 } },
        { name: "web", image: "web:1", ports: ["8081:80", "9100:9000"], primary: "pi1", standby: "pi2", healthcheck: { http: "/ready", port: 9000 } },
        { name: "broker", image: "mq:2", ports: ["11883:1883"], mode: "swarm", healthcheck: { command: ["mosquitto_sub", "-t", "x", "-C", "1", "-W", "1"] } },
      ]),
    },
    "stacks/Pulumi.unit.yaml",
  ).services;
  t.deepEqual(kv.health, { kind: "command", command: ["redis-cli", "ping"], intervalMs: 500, timeoutMs: 400, retries: 2 });
  t.deepEqual(web.health, { kind: "http", port: 9100, path: "/ready", intervalMs: 2000, timeoutMs: 1000, retries: 3 }, "the container's port 9000, as the host publishes it");
  t.like(broker.health, { kind: "command" });

  const err = t.throws(
    () =>
      parseSettings(
        {
          inventory: "i.yaml",
          services: JSON.stringify([
            { name: "a", image: "a:1", port: 8001, primary: "pi1", standby: "pi2", healthcheck: { tcp: 9999, http: "/x" } },
            { name: "b", image: "b:1", port: 8002, primary: "pi1", standby: "pi2", healthcheck: { tcp: 9999, interval: 0, retries: 1.5, every: 3 } },
            { name: "c", image: "c:1", port: 8003, mode: "swarm", healthcheck: { http: "health" } },
            { name: "d", image: "d:1", port: 8004, primary: "pi1", standby: "pi2", healthcheck: { command: "redis-cli ping", timeout: 5 } },
          ]),
        },
        "stacks/Pulumi.unit.yaml",
      ),
    { instanceOf: SettingsError },
  );
  for (const expected of [
    /services\[0\]\.healthcheck: expected exactly one of tcp: PORT, http: \/path or command: \[\.\.\.\], found tcp and http/,
    /services\[1\]\.healthcheck\.tcp: expected a tcp port the service publishes \(inside the container: 8002\), found 9999/,
    /services\[1\]\.healthcheck\.interval: expected seconds from 0\.2 to 600, found 0/,
    /services\[1\]\.healthcheck\.retries: expected a whole number from 1 to 100, found 1\.5/,
    /services\[1\]\.healthcheck\.every: unknown key/,
    /services\[2\]\.healthcheck\.http: a swarm-mode service takes command only/,
    /services\[2\]\.healthcheck\.http: expected a path such as \/health, found "health"/,
    /services\[3\]\.healthcheck\.command: expected a list of arguments/,
    /services\[3\]\.healthcheck\.timeout: expected at most the interval \(2 s\), found 5 s/,
  ]) {
    t.regex(err!.message, expected);
  }
});

test("a service's healthcheck goes to the agents with the service, and to swarm as its own check", async (t) => {
  const health = { kind: "command" as const, command: ["redis-cli", "ping"], intervalMs: 1000, timeoutMs: 500, retries: 2 };
  new SwarmService("kv-swarm", { spec: { name: "kv-swarm", image: "kv:7", containerPort: 6379, hostPort: 16390, health }, replicas: 1, manager: cluster.ready.pi1 });
  await new Promise((r) => setTimeout(r, 100));
  t.like(named("kv-swarm-service").inputs.taskSpec.containerSpec.healthcheck, { tests: ["CMD", "redis-cli", "ping"], interval: "1000ms", timeout: "500ms", retries: 2 });
  const config = JSON.parse(agentConfig(inventory.hosts[0], inventory, settingDefaults.failover, [{ ...parseSettings({ inventory: "i.yaml", services: JSON.stringify([{ name: "kv", image: "kv:7", port: 6379, primary: "pi1", standby: "pi2", healthcheck: { tcp: 6379 } }]) }, "f.yaml").services[0] }], "s"));
  t.deepEqual(config.services[0].health, { kind: "tcp", port: 6379, intervalMs: 2000, timeoutMs: 1000, retries: 3 });
});

test("a swarm service is checked to be in the swarm whenever the swarm changes (a re-imaged first manager starts a new one), on the manager, after the service", async (t) => {
  new SwarmService("queue-swarm", { spec: { name: "queue", image: "mq:2", containerPort: 1883, hostPort: 11883 }, replicas: 1, manager: cluster.ready.pi1, swarmCa: "ab12" });
  await new Promise((r) => setTimeout(r, 100));
  const check = named("queue-swarm-in-swarm");
  t.is(check.inputs.connection.host, "10.0.0.1");
  t.like(envOf(check), { SERVICE: "queue", SWARM_CA: "ab12" });
  t.regex(script(check), /docker service inspect "\$SERVICE"/);
  t.regex(script(check), /run pulumi refresh, then pulumi up/);
});

test("a service's env stays secret in the state, whatever it holds: its start, its sync (which carry its arguments) and its swarm spec", async (t) => {
  const spec = { name: "vault", image: "kv:7", containerPort: 6379, hostPort: 16379, env: { PASSWORD: "s3cret" } };
  new HaService("vault", { spec, primary: cluster.ready.pi1, standby: cluster.ready.pi2, syncInterval: 1 });
  new SwarmService("vault-swarm", { spec: { ...spec, name: "vault-swarm" }, replicas: 1, manager: cluster.ready.pi1 });
  await new Promise((r) => setTimeout(r, 100));
  for (const name of ["vault-start", "vault-sync"]) t.true(named(name).secretInputs.includes("stdin"), `${name}'s script is secret`);
  t.false("triggers" in named("vault-start").inputs && named("vault-start").inputs.triggers !== undefined, "no trigger holds the spec (new settings are an update, rolled out)");
  t.true(named("vault-swarm-service").secretInputs.some((p) => p.startsWith("taskSpec")), "the swarm spec's env");
  t.false(named("counter-start").secretInputs.includes("stdin"), "a service without env stays readable in a preview's diff");
});

test("a private registry: its CA goes to each engine's certs.d for its address; a bad entry is named", async (t) => {
  new RegistryTrust("unit-registry", { connection: cluster.ready.pi1.connection, address: "10.0.0.5:5000", caPem: "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----" });
  await new Promise((r) => setTimeout(r, 50));
  const ca = named("unit-registry-ca");
  t.like(envOf(ca), { ADDRESS: "10.0.0.5:5000" });
  t.regex(script(ca), /\/etc\/docker\/certs\.d\/\$ADDRESS/);
  const err = t.throws(() => parseSettings({ inventory: "i.yaml", registries: JSON.stringify([{ address: "https://r.example", ca: "" }, { address: "r.example:5000", ca: "ca.crt", user: "me" }]) }, "stacks/Pulumi.unit.yaml"), { instanceOf: SettingsError });
  t.regex(err!.message, /edge-ha:registries\[0\]\.address: expected HOST:PORT as image references name the registry, found "https:\/\/r\.example"/);
  t.regex(err!.message, /edge-ha:registries\[0\]\.ca: expected the path of the registry's CA certificate/);
  t.regex(err!.message, /edge-ha:registries\[1\]\.user: unknown key/);
  const onlyUser = t.throws(() => parseSettings({ inventory: "i.yaml", registries: JSON.stringify([{ address: "r.example:5000", username: "me" }]) }, "f.yaml"));
  t.regex(onlyUser!.message, /edge-ha:registries\[0\]\.password: expected it with username \(a login is both\)/);

  // A login: the engine's Docker provider pulls with it, the password a secret whatever the stack file holds.
  const { registries } = parseSettings({ inventory: "i.yaml", registries: JSON.stringify([{ address: "r.example:5000", username: "me", password: "hunter2" }]) }, "f.yaml");
  new DockerEngine("unit-login", { host: inventory.hosts[0], connection: cluster.ready.pi1.connection, registryAuth: registryLogins({ registries }) });
  await new Promise((r) => setTimeout(r, 50));
  const provider = named("unit-login-docker");
  t.deepEqual(JSON.parse(provider.inputs.registryAuth), [{ address: "r.example:5000", username: "me", password: "hunter2" }], "provider inputs travel as JSON text");
  t.true(provider.secretInputs.some((p) => p.startsWith("registryAuth")), "the login is a secret input");
});

test("service placement: hosts not in the inventory, and a standby of another architecture, are named", (t) => {
  const placed = parseSettings(
    { inventory: "inventory.yaml", services: JSON.stringify([{ name: "a", build: "services/counter", ports: ["1:8080"], primary: "pi9", standby: "pi2" }, { name: "b", build: "services/counter", ports: ["2:8080"], primary: "pi1", standby: "vm1" }]) },
    "stacks/Pulumi.unit.yaml",
  );
  const err = t.throws(() => checkServicePlacement(placed, inventory, "stacks/Pulumi.unit.yaml"), { instanceOf: SettingsError });
  t.regex(err!.message, /services\[0\]\.primary: expected a host of .*inventory\.yaml that runs services \(pi1, pi2, vm1\), found "pi9"/);
  t.regex(err!.message, /services\[1\]\.standby: vm1 is amd64 but pi1 is arm64/);
  t.notThrows(() => checkServicePlacement(parseSettings({ inventory: "i", services: JSON.stringify([{ name: "c", build: "services/counter", ports: ["3:8080"], primary: "pi1", standby: "pi2", failover: "manual" }]) }, "f"), inventory, "f"));
});

test("vip: an address of the inventory's network.subnet that no host and no other service has, criu mode only; every bad one named in preview", (t) => {
  const withNetwork = { ...inventory, network: { subnet: { cidr: "10.0.0.0/24", network: 10 * 2 ** 24, prefix: 24 } } };
  const service = (name: string, port: number, more: object) => ({ name, build: "services/counter", ports: [`${port}:8080`], primary: "pi1", standby: "pi2", ...more });
  const parsed = parseSettings({ inventory: "i", services: JSON.stringify([service("a", 1, { vip: "10.0.0.200" }), service("b", 2, { vip: "10.0.1.5" }), service("c", 3, { vip: "10.0.0.2" }), service("d", 4, { vip: "10.0.0.255" })]) }, "f");
  t.is(parsed.services[0].vip, "10.0.0.200");
  const err = t.throws(() => checkServicePlacement(parsed, withNetwork, "stacks/Pulumi.unit.yaml"), { instanceOf: SettingsError })!;
  t.regex(err.message, /services\[1\]\.vip: expected a host address of .*inventory\.yaml's network\.subnet 10\.0\.0\.0\/24, where the hosts can take it over, found 10\.0\.1\.5/);
  t.regex(err.message, /services\[2\]\.vip: expected an address no host has, found 10\.0\.0\.2, the address of pi2/);
  t.regex(err.message, /services\[3\]\.vip: expected a host address .* found 10\.0\.0\.255/, "the broadcast address is no host's");
  t.false(/services\[0\]\.vip/.test(err.message), "10.0.0.200 is right");
  const noNetwork = t.throws(() => checkServicePlacement(parsed, inventory, "f"), { instanceOf: SettingsError })!;
  t.regex(noNetwork.message, /services\[0\]\.vip: a virtual address needs the hosts' LAN: add network: \{ subnet: ADDRESS\/PREFIX \} to .*inventory\.yaml/);

  const bad = t.throws(() => parseSettings({ inventory: "i", services: JSON.stringify([service("a", 1, { vip: "10.0.0.200" }), service("b", 2, { vip: "10.0.0.200" }), service("c", 3, { vip: "ten" }), { ...service("d", 4, { vip: "10.0.0.201" }), mode: "swarm" }]) }, "stacks/Pulumi.unit.yaml"), { instanceOf: SettingsError })!;
  t.regex(bad.message, /services\[1\]\.vip: 10\.0\.0\.200 is the vip of a already; expected an address no other service has/);
  t.regex(bad.message, /services\[2\]\.vip: expected an IPv4 address of the hosts' network \(inventory network\.subnet\), found "ten"/);
  t.regex(bad.message, /services\[3\]\.vip: a swarm-mode service has no virtual address/);
});

test("vip: every host the service may run on knows its address, in a command whose delete drops it; none without a vip", async (t) => {
  const vips = registered.filter((r) => r.type === "command:remote:Command" && /^counter-.*-vip$/.test(r.name));
  t.deepEqual(vips, [], "counter has no vip");
  const nodes = cluster.ready;
  new HaService("unit-vip", { spec: { name: "unit-vip", image: "i", containerPort: 1, hostPort: 2 }, primary: nodes.pi1, standby: nodes.pi2, others: [nodes.vm1], syncInterval: 1, vip: "10.0.0.200" });
  await new Promise((r) => setTimeout(r, 50));
  for (const [host, address] of [["pi1", "10.0.0.1"], ["pi2", "10.0.0.2"], ["vm1", "10.0.0.3"]]) {
    const vip = named(`unit-vip-${host}-vip`);
    t.is(vip.inputs.connection.host, address);
    t.like(envOf(vip), { SERVICE: "unit-vip", VIP: "10.0.0.200" });
    t.regex(script(vip), /apt_install iputils-arping conntrack/);
    t.regex(script(vip), /edge_ha_delete\(\) \{[^}]*vip_down "\$SERVICE"/);
  }
});

test("a service's removal clears every host it may be on, in one resource per host whatever its role: a host made its standby or primary keeps it (its delete would clear what runs there)", async (t) => {
  const nodes = cluster.ready;
  const cleanups = (name: string) => registered.filter((r) => r.type === "command:remote:Command" && r.name.startsWith(`${name}-`) && r.name.endsWith("-cleanup"));
  new HaService("unit-roles-a", { spec: { name: "unit-roles", image: "i", containerPort: 1, hostPort: 2 }, primary: nodes.pi1, standby: nodes.pi2, others: [nodes.vm1], syncInterval: 1 });
  // The same service after a failover to vm1, with the stack set to where it runs now.
  new HaService("unit-roles-b", { spec: { name: "unit-roles", image: "i", containerPort: 1, hostPort: 2 }, primary: nodes.vm1, standby: nodes.pi1, others: [nodes.pi2], syncInterval: 1 });
  await new Promise((r) => setTimeout(r, 50));
  const hostsOf = (name: string) => cleanups(name).map((r) => [r.name.slice(name.length + 1, -"-cleanup".length), r.inputs.connection.host]).sort();
  const all = [["pi1", "10.0.0.1"], ["pi2", "10.0.0.2"], ["vm1", "10.0.0.3"]];
  t.deepEqual(hostsOf("unit-roles-a"), all);
  t.deepEqual(hostsOf("unit-roles-b"), all, "the same names whatever the roles: no delete when only roles change");
  for (const r of cleanups("unit-roles-a")) {
    t.is(script(r).includes('rm -rf "${EDGE_HA_CHECKPOINTS:?}/$SERVICE"'), true);
    t.regex(script(r), /edge_ha_delete\(\) \{/);
  }
});

test("failover agents: every host gets its architecture's agent; the managers control; only failover-auto services are theirs", async (t) => {
  for (const [host, address, arch] of [["pi1", "10.0.0.1", "arm64"], ["pi2", "10.0.0.2", "arm64"], ["vm1", "10.0.0.3", "amd64"]]) {
    const copy = named(`shop-failover-${host}-binary`);
    t.is(copy.inputs.connection.host, address);
    t.is(await copy.inputs.source.path, path.join(dir, `agent-${arch}`));
    const agent = named(`shop-failover-${host}`);
    t.true(agent.secretInputs.includes("stdin"), "the config carries the stack's secret: the script's stdin is secret");
    t.like(envOf(agent), { BINARY: "/usr/local/sbin/edge-ha-agent", CONFIG: "/etc/edge-ha/agent.json" });
    t.regex(script(agent), /agent_command=\(\/usr\/bin\/nice -n -10 "\$BINARY" -config "\$CONFIG"\)/, "the agent runs ahead of the node's other work");
    t.regex(script(agent), /service_install agent "\$\{agent_command\[@\]\}"/);
    t.notRegex(script(agent).split("set -e\n").slice(0, -1).join(""), /"secret"/, "the secret is not in the script's body, only in its environment");
    const config = JSON.parse(envOf(agent).AGENT_CONFIG);
    t.is(config.self, host);
    t.deepEqual(config.nodes.filter((n: { manager: boolean }) => n.manager).map((n: { name: string }) => n.name), ["pi1"], "controllers run on the managers");
    t.deepEqual(config.services, [{ name: "counter", nodes: ["pi1", "pi2"], syncInterval: 1 }], "manual and swarm services are not the agents'; placement: primary, standby, then the rest of its architecture");
    t.deepEqual([config.heartbeatMs, config.leaseMs, config.downAfterMs], [100, 300, 500]);
  }
});

test("failover settings: defaults decide within a second; a lease that one lost heartbeat lapses, or no time to fence, is refused", (t) => {
  const d = parseSettings({ inventory: "i" }, "f").failover;
  t.true(d.enabled && d.downAfterMs <= 1000 && d.leaseMs > 2 * d.heartbeatMs && d.downAfterMs >= d.leaseMs + 200);
  const err = t.throws(() => parseSettings({ inventory: "i", failover: JSON.stringify({ heartbeatMs: 300, leaseMs: 500, downAfterMs: 600, colour: 1 }) }, "stacks/Pulumi.x.yaml"), { instanceOf: SettingsError });
  t.regex(err!.message, /stacks\/Pulumi\.x\.yaml/);
  t.regex(err!.message, /edge-ha:failover\.leaseMs: expected more than two heartbeats \(> 600\)/);
  t.regex(err!.message, /edge-ha:failover\.downAfterMs: expected at least leaseMs \+ 200 \(700\)/);
  t.regex(err!.message, /edge-ha:failover\.colour: unknown key/);
  t.throws(() => parseSettings({ inventory: "i", services: JSON.stringify([{ name: "a", build: "services/counter", ports: ["1:8080"], primary: "p", standby: "s", failover: "sometimes" }]) }, "f"), { message: /services\[0\]\.failover: expected auto or manual, found "sometimes"/ });
});

test("early warnings: reported by default from the firmware's, the kernel's and the checkpoints' disk's signals; drain when asked; off sends the agents none; bad keys named", (t) => {
  const d = parseSettings({ inventory: "i" }, "f").failover;
  t.like(d.earlyWarnings, { policy: "report", throttledFile: "/sys/devices/platform/soc/soc:firmware/get_throttled", pressureFile: "/proc/pressure/memory", diskMinFreePercent: 10 });
  const drain = parseSettings({ inventory: "i", failover: JSON.stringify({ earlyWarnings: { policy: "drain", throttledFile: "/run/throttled" } }) }, "f").failover;
  t.like(drain.earlyWarnings, { policy: "drain", throttledFile: "/run/throttled", pressureFile: "/proc/pressure/memory" });
  const inventory = parseInventory("cluster: c\ndefaults: { ssh: { privateKeyFile: k, knownHostsFile: kh } }\nhosts:\n  - { name: a, address: 10.0.0.1, roles: [manager] }\n", "i.yaml");
  t.like(JSON.parse(agentConfig(inventory.hosts[0], inventory, drain, [], "s")).signals, { policy: "drain", throttledFile: "/run/throttled", diskPath: "/var/lib/edge-ha/checkpoints", diskMinFreePercent: 10 });
  const off = parseSettings({ inventory: "i", failover: JSON.stringify({ earlyWarnings: { policy: "off" } }) }, "f").failover;
  t.is(JSON.parse(agentConfig(inventory.hosts[0], inventory, off, [], "s")).signals, undefined);
  const err = t.throws(() => parseSettings({ inventory: "i", failover: JSON.stringify({ earlyWarnings: { policy: "panic", pressureFile: "pressure", diskMinFreePercent: 95, volts: 5 } }) }, "stacks/Pulumi.x.yaml"), { instanceOf: SettingsError });
  t.regex(err!.message, /edge-ha:failover\.earlyWarnings\.policy: expected off, report or drain, found "panic"/);
  t.regex(err!.message, /edge-ha:failover\.earlyWarnings\.pressureFile: expected an absolute path on the nodes, found "pressure"/);
  t.regex(err!.message, /edge-ha:failover\.earlyWarnings\.diskMinFreePercent: expected a number from 0 to 90, found 95/);
  t.regex(err!.message, /edge-ha:failover\.earlyWarnings\.volts: unknown key/);
});

test("Docker objects are @pulumi/docker resources: a provider per host over SSH with strict host keys, the service network everywhere, a CRIU service's volumes, the swarm baseline", async (t) => {
  await unwrap(cluster.nodes.pi1.docker!);
  await new Promise((r) => setTimeout(r, 50));
  const provider = named("pi2-docker");
  t.is(provider.type, "pulumi:providers:docker");
  t.is(provider.inputs.host, "ssh://root@10.0.0.2:22");
  const opts = JSON.parse(provider.inputs.sshOpts) as string[];
  // Only pi2's key, in a file named by it: the same from any checkout of the project.
  const knownHosts = opts.find((o) => o.startsWith("UserKnownHostsFile="))!.slice("UserKnownHostsFile=".length);
  t.true(opts.includes("StrictHostKeyChecking=yes"), opts.join(" "));
  t.is(readFileSync(knownHosts, "utf8"), `10.0.0.2 ${hostKeyFrom(readFileSync(path.join(dir, "known_hosts"), "utf8"), "10.0.0.2", 22)}\n`);
  for (const host of ["pi1", "pi2", "vm1"]) {
    const network = named(`${host}-service-network`);
    t.is(network.type, "docker:index/network:Network");
    t.like(network.inputs, { name: "edge-ha", driver: "bridge", ipamConfigs: [{ subnet: "172.31.0.0/16" }], options: { "com.docker.network.bridge.name": "edge-ha0" } });
  }
  t.deepEqual(
    registered.filter((r) => r.type === "docker:index/volume:Volume").map((r) => [r.name, r.inputs.name]).sort(),
    [["counter-pi1-data", "data"], ["counter-pi2-data", "data"]],
    "the counter's volume where it starts and where it fails over to",
  );
  const swarm = named("counter-swarm-service");
  t.is(swarm.type, "docker:index/service:Service");
  t.like(swarm.inputs, {
    name: "counter-swarm",
    mode: { replicated: { replicas: 2 } },
    endpointSpec: { ports: [{ targetPort: 8080, publishedPort: 18090, publishMode: "host", protocol: "tcp" }] },
    taskSpec: { containerSpec: { image: "edge-ha/counter:arm640000", mounts: [{ type: "volume", source: "cache", target: "/cache" }] } },
    // A rolling update gated readySeconds per replica, rolled back on failure, spelled as the engine reads back.
    updateConfig: { parallelism: 1, order: "stop-first", failureAction: "rollback", monitor: "30s", maxFailureRatio: "0.0" },
    rollbackConfig: { order: "stop-first", failureAction: "pause", monitor: "30s", maxFailureRatio: "0.0" },
  });
});

test("durations as the Docker provider reads them back from the engine, so an unchanged service shows no diff", (t) => {
  t.deepEqual([0, 5, 30, 60, 90, 600, 3600, 3601, 3660].map(goDuration), ["0s", "5s", "30s", "1m", "1m30s", "10m", "1h", "1h0m1s", "1h1m"]);
});

test("a host command's script: the bodies as functions, the environment quoted, stdin closed for what it runs", (t) => {
  t.snapshot(hostCommandScript({ create: "echo made", delete: "echo gone" }, { NAME: "it's", EMPTY: "" }));
});

test("the agent's config has one shape: the Go struct (agent/config.go) reads every key lib/ha/agent.ts writes, and no other", (t) => {
  const go = readFileSync(path.join(__dirname, "..", "agent", "config.go"), "utf8");
  const struct = (name: string) => [.../type (\w+) struct \{([^}]*)\}/g[Symbol.matchAll](go)].find((m) => m[1] === name)![2];
  const tags = (name: string) => [...struct(name).matchAll(/json:"(\w+)/g)].map((m) => m[1]).sort();
  const config = JSON.parse(agentConfig(inventory.hosts[0], inventory, serviceSettings.failover, serviceSettings.services, "s3cret"));
  t.deepEqual(Object.keys(config).sort(), tags("Config"));
  t.deepEqual(Object.keys(config.nodes[0]).sort(), tags("Node"));
  const checks: HealthCheck[] = [
    { kind: "tcp", port: 1, intervalMs: 1000, timeoutMs: 500, retries: 3 },
    { kind: "http", port: 1, path: "/", intervalMs: 1000, timeoutMs: 500, retries: 3 },
    { kind: "command", command: ["true"], intervalMs: 1000, timeoutMs: 500, retries: 3 },
  ];
  const checked = JSON.parse(agentConfig(inventory.hosts[0], inventory, serviceSettings.failover, checks.map((health, i) => ({ ...serviceSettings.services[0], name: `s${i}`, health, maxLag: 3 })), "s3cret"));
  t.deepEqual(Object.keys(checked.services[0]).sort(), tags("Service"));
  t.deepEqual([...new Set(checked.services.flatMap((s: { health: object }) => Object.keys(s.health)))].sort(), tags("HealthCheck"));
});

test("checkpoints cross the network inside SSH by default: each host's own sshd and keys; each trusts the others' keys, bound to their addresses and to the rsync protocol", async (t) => {
  t.is(settings.checkpointTransport, "ssh");
  await unwrap(cluster.nodes.pi1.docker!);
  const hosts = [["pi1", "10.0.0.1"], ["pi2", "10.0.0.2"], ["vm1", "10.0.0.3"]];
  for (const [host, address] of hosts) {
    const install = named(`shop-${host}-sshd`);
    t.is(install.inputs.connection.host, address);
    t.regex(envOf(install).SSHD_CONFIG, /^Port 8722$/m);
    const peers = hosts.filter(([h]) => h !== host);
    const trust = envOf(named(`shop-${host}-peers`));
    t.deepEqual(
      trust.AUTHORIZED_KEYS.split("\n"),
      peers.map(([h, a]) => authorizedKeyLine({ name: h, address: a }, `ssh-ed25519 AAAAclient-shop-${h}-sshd`)),
      `${host} accepts each other host's client key, from its address only`,
    );
    t.deepEqual(trust.KNOWN_HOSTS.split("\n"), peers.map(([h, a]) => `[${a}]:8722 ssh-ed25519 AAAAhost-shop-${h}-sshd`), `${host} accepts only the others' sshd keys`);
  }
  t.is(
    authorizedKeyLine({ name: "pi2", address: "10.0.0.2" }, "ssh-ed25519 AAAAk"),
    'restrict,from="10.0.0.2",command="rsync --server --daemon --config=/etc/edge-ha/rsyncd.conf ." ssh-ed25519 AAAAk edge-ha pi2',
  );
  t.throws(() => parseHostKeys("host-key ssh-ed25519 AAAAx\n", "pi1"), { message: /expected the checkpoints sshd's install on pi1 to print its host-key and client-key lines/ });
  t.like(parseSettings({ inventory: "x.yaml", checkpointTransport: "rsyncd" }, "f"), { checkpointTransport: "rsyncd" });
  const err = t.throws(() => parseSettings({ inventory: "x.yaml", checkpointTransport: "tls", transferPort: "873" }, "stacks/Pulumi.pis.yaml"), { instanceOf: SettingsError });
  t.regex(err!.message, /edge-ha:checkpointTransport: expected one of ssh, rsyncd, found "tls"/);
  t.regex(err!.message, /edge-ha:transferPort: expected a port other than edge-ha:rsyncPort \(873\)/);
});

test("what lands on the hosts, as a reviewer sees it: rsyncd.conf, runc.conf, daemon.json, the host library's values", (t) => {
  t.snapshot(rsyncdConfig({ allowedHosts: ["10.0.0.1", "10.0.0.2", "10.0.0.3"] }), "rsyncd.conf");
  t.snapshot(transferSshdConfig(8722), "sshd_config of the checkpoints sshd");
  t.snapshot(runcConfig(), "runc.conf");
  t.snapshot(criuDefaultConfig(), "CRIU default.conf");
  t.snapshot(criuLeaveRunningConfig, "CRIU edge-ha-leave-running.conf");
  t.snapshot(JSON.stringify(daemonConfig({}), null, 2), "daemon.json");
  t.snapshot(hostVariables, "the variables every host script reads");
});

test("the host files find what they read: the library where modules/host-tools installs it, and every EDGE_HA_ value in lib/host/shell.ts", (t) => {
  const root = path.join(__dirname, "..");
  const files = [
    ...["edge-ha-sync", "edge-ha-ctl", "prelude.sh", "checkpoint.sh", "service.sh"].map((f) => [`host/${f}`, hostFile(f)]),
    ...readdirSync(path.join(root, "modules"), { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".sh")).map((f) => [`modules/${f}`, readFileSync(path.join(root, "modules", f), "utf8")]),
  ];
  t.true(files.length > 15);
  for (const [name, text] of files) {
    for (const m of text.matchAll(/\$\{?(EDGE_HA_[A-Z_]+)/g)) t.true(m[1] in hostVariables, `${name} reads ${m[1]}, which lib/host/shell.ts hostVariables does not set`);
  }
  for (const tool of ["edge-ha-sync", "edge-ha-ctl"]) t.true(hostFile(tool).includes(`. ${hostTools.library}\n`), `${tool} sources ${hostTools.library}`);
});

test("every script edge-ha composes parses as bash: each host command's stdin, a restore, a sync start", async (t) => {
  await new Promise((r) => setTimeout(r, 50));
  const scripts: [string, string][] = [
    // A sudo password and its marker lead some (sudo reads them): the script is what follows.
    ...registered.filter((r) => r.type === "command:remote:Command").map((r) => [r.name, script(r).replace(new RegExp(`^[^\n]*\n${sudoMarker}\n`), "")] as [string, string]),
    ["restore", restoreCommand("counter", "0123abcd", "/var/lib/edge-ha/checkpoints/counter/m1", "m1")],
    ["sync start", syncInstallScript({ name: "counter", image: "edge-ha/counter:1", containerPort: 8080, hostPort: 18080 }, { name: "pi2", address: "10.0.0.2" }, { intervalSeconds: 1, maxLagSeconds: 3 })],
  ];
  t.true(scripts.length > 20);
  for (const [name, text] of scripts) {
    const r = spawnSync("bash", ["-n"], { input: text, encoding: "utf8" });
    t.is(r.status, 0, `${name}: ${r.stderr}`);
  }
});

test("a restore's steps as the host prints them become numbers (bench state shows them)", (t) => {
  t.deepEqual(restoreStepsOf("counter\nrestore steps: verify 812 ms, files 3 ms, images 640 ms, start 2901 ms\n"), { verify: 812, files: 3, images: 640, start: 2901 });
  t.is(restoreStepsOf("counter\n"), undefined, "an older host library prints none");
});

test("logins through sudo: every command runs as root through sudo (with the password on stdin when sudo asks one, secret), copies land in the login's home, the login joins the docker group; root hosts are as before", async (t) => {
  writeFileSync(path.join(dir, "pw-c"), "s3cret pass\n");
  const mixed = parseInventory(
    `
cluster: mixed
defaults: { ssh: { privateKeyFile: id, knownHostsFile: known_hosts } }
hosts:
  - { name: s1, address: 10.0.0.1, roles: [manager] }
  - { name: s2, address: 10.0.0.2, ssh: { user: pi, become: sudo } }
  - { name: s3, address: 10.0.0.3, ssh: { user: ubuntu, become: sudo, sudoPasswordFile: pw-c } }
`,
    path.join(dir, "inventory.yaml"),
  );
  const mixedCluster = new EdgeCluster("mixed", { inventory: mixed, settings });
  new FailoverAgents("mixed-failover", { inventory: mixed, failover: settings.failover, services: [], nodes: mixedCluster.ready, binaries: { amd64: path.join(dir, "agent-amd64") } });
  await unwrap(mixedCluster.nodes.s3.docker!);
  await new Promise((r) => setTimeout(r, 100));
  t.is(named("s1-engine").inputs.create, "bash -s -- create", "root: unchanged");
  t.falsy(envOf(named("s1-engine")).DOCKER_GROUP_USER);
  t.is(named("s2-engine").inputs.create, "sudo -n -- bash -s -- create");
  t.is(named("s2-engine").inputs.delete, "sudo -n -- bash -s -- delete");
  t.is(envOf(named("s2-engine")).DOCKER_GROUP_USER, "pi", "the Docker provider's SSH login may use the engine");
  t.is(named("s2-engine").inputs.connection.user, "pi");
  const c = named("s3-engine");
  t.regex(c.inputs.create, /^sudo -S -p '' -- bash -c '.*' edge-ha bash -s -- create$/);
  t.true(script(c).startsWith(`s3cret pass\n${sudoMarker}\n`), "sudo reads the password, then the marker ends it");
  t.true(c.secretInputs.includes("stdin"), "the stdin carrying the password is secret");
  t.false(named("s2-engine").secretInputs.includes("stdin"), "without a password, as secret as its environment");
  t.false(JSON.stringify(c.inputs.connection).includes("s3cret"), "the password never reaches the provider's connection");
  t.is(named("mixed-failover-s1-binary").inputs.remotePath, "/usr/local/sbin/edge-ha-agent.staged");
  t.is(named("mixed-failover-s2-binary").inputs.remotePath, ".edge-ha/staged/edge-ha-agent.staged", "a sudo login writes only its home");
  t.is(envOf(named("mixed-failover-s2")).STAGED, ".edge-ha/staged/edge-ha-agent.staged", "the install finds it there");
});

test("rootCommand: a command line that runs as root, through sudo when the login is not root; the password never in it", (t) => {
  const root = { ssh: {} };
  t.is(rootCommand(root, "bash", "-s", "--", "create"), "bash -s -- create");
  t.is(rootCommand({ ssh: { become: "sudo" as const } }, "bash", "-c", "docker ps"), "sudo -n -- bash -c 'docker ps'");
  const withPassword = rootCommand({ ssh: { become: "sudo" as const, sudoPasswordFile: "/x" } }, "true");
  t.regex(withPassword, /^sudo -S -p '' -- bash -c .* edge-ha true$/);
  // The wrapper as bash runs it: lines up to the marker are skipped, whether sudo read the password or not.
  for (const input of [`${sudoMarker}\nhello\n`, `pw\n${sudoMarker}\nhello\n`]) {
    const wrapper = withPassword.replace(/^sudo -S -p '' -- /, "").replace(/ true$/, " cat");
    const r = spawnSync("bash", ["-c", wrapper], { input, encoding: "utf8" });
    t.is(r.stdout, "hello\n", `input ${JSON.stringify(input)}`);
  }
});
