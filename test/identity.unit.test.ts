import test from "ava";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { recordResources } from "./helpers/mocks";

const registered = recordResources();
// Imported after the mocks are in place, as Pulumi's unit-testing guide asks.
import { parseInventory } from "../lib/config/inventory";
import { parseSettings } from "../lib/config/settings";
import { decideIdentity } from "../lib/host/identity";
import { EdgeCluster } from "../modules/edge-cluster";
import { checkReimagedPrimaries } from "../lib/ha/reimaged-primaries";
import { checkMovedServices } from "../lib/ha/moved-services";
import { serviceSpec, type ServiceSpec } from "../lib/ha/service-container";

/*
 * Re-imaged hosts: which installation of a host the stack provisions, and
 * how a new installation gets every resource anew.
 */

const newId = () => "fresh";
const previous = { id: "abc123456789", generation: 1 };

test("a host with the marker the stack gave it is the same installation", (t) => {
  t.deepEqual(decideIdentity("pi2", previous, { reachable: true, marker: "abc123456789" }, newId), { identity: previous });
});

test("a host whose marker is gone was re-imaged: a new id, the next generation, and one sentence saying so", (t) => {
  t.deepEqual(decideIdentity("pi2", previous, { reachable: true, marker: "" }, newId), {
    identity: { id: "fresh", generation: 2, reimaged: true },
    note: "pi2 was re-imaged: its edge-ha marker /etc/edge-ha/host-id is gone; it will be provisioned from blank",
  });
  const other = decideIdentity("pi2", previous, { reachable: true, marker: "def987654321" }, newId);
  t.deepEqual(other.identity, { id: "def987654321", generation: 2, reimaged: true });
  t.regex(other.note!, /pi2 holds another edge-ha marker \(def98765\) than the one this stack gave it \(abc12345\)/);
});

test("an unreachable host is not re-imaged: the stack's record stands", (t) => {
  t.deepEqual(decideIdentity("pi2", previous, { reachable: false }, newId), { identity: previous });
});

test("a host the stack has no record of starts at generation 0, adopting the marker it has (a stack made by an older edge-ha, or one removed and made again)", (t) => {
  t.deepEqual(decideIdentity("pi2", undefined, { reachable: true, marker: "" }, newId), { identity: { id: "fresh", generation: 0 } });
  t.deepEqual(decideIdentity("pi2", undefined, { reachable: true, marker: "abc123456789" }, newId), { identity: { id: "abc123456789", generation: 0 } });
});

test("every command on a re-imaged host carries its generation, so its create runs again there; copies are made again; a host at generation 0 sees no change", async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), "edge-ha-identity-"));
  writeFileSync(path.join(dir, "id"), "-----BEGIN OPENSSH PRIVATE KEY-----\nKEY\n-----END OPENSSH PRIVATE KEY-----\n");
  writeFileSync(path.join(dir, "known_hosts"), "10.0.0.1 ssh-ed25519 AAAA1\n10.0.0.2 ssh-ed25519 AAAA2\n10.0.0.3 ssh-ed25519 AAAA3\n");
  const inventory = parseInventory(
    `cluster: shop
defaults: { ssh: { privateKeyFile: id, knownHostsFile: known_hosts } }
hosts:
  - { name: pi1, address: 10.0.0.1, arch: arm64, roles: [manager] }
  - { name: pi2, address: 10.0.0.2, arch: arm64, roles: [manager] }
  - { name: pi3, address: 10.0.0.3, arch: arm64, roles: [manager] }
`,
    path.join(dir, "inventory.yaml"),
  );
  new EdgeCluster("shop", { inventory, settings: parseSettings({ inventory: "inventory.yaml" }, "f"), identities: { pi1: { id: "one", generation: 0 }, pi2: { id: "two", generation: 2 } } });
  await new Promise((r) => setTimeout(r, 100));
  const commands = registered.filter((r) => r.type === "command:remote:Command" || r.type === "command:remote:CopyToRemote");
  const onPi2 = commands.filter((r) => r.inputs.connection?.host === "10.0.0.2");
  t.true(onPi2.length >= 5);
  for (const r of onPi2) {
    // An update, not a replacement: a replacement would run the old delete, with the old host key.
    if (r.type === "command:remote:Command") t.regex(r.inputs.stdin, /^export EDGE_HA_GENERATION='2'$/m, `${r.name} runs its create again`);
    else t.true((r.inputs.triggers ?? []).includes("host generation 2"), `${r.name} is copied again`);
  }
  // Run on the leader, but for pi2: set again for its new swarm entry (the script removes the old one).
  t.is(registered.find((r) => r.name === "shop-pi2-settings")!.inputs.triggers, undefined);
  t.deepEqual(registered.find((r) => r.name === "pi2-service-network")!.inputs.labels, [{ label: "edge-ha.host-generation", value: "2" }]);
  for (const r of commands.filter((r) => r.inputs.connection?.host === "10.0.0.1")) {
    t.false(JSON.stringify(r.inputs.triggers ?? []).includes("generation") || /EDGE_HA_GENERATION/.test(r.inputs.stdin ?? ""), `${r.name}: nothing new at generation 0`);
  }
  t.is(registered.find((r) => r.name === "pi1-service-network")!.inputs.labels, undefined);
  t.regex(registered.find((r) => r.name === "pi2-host-tools")!.inputs.stdin, /export HOST_ID='two'/, "the host gets the marker the stack decided");
  t.regex(registered.find((r) => r.name === "pi3-host-tools")!.inputs.stdin, /export HOST_ID='[0-9a-f-]{36}'/, "a host with no record gets a new one");
});

test("a re-imaged primary of a service that runs elsewhere (moved by migrate or a failover) stops the run with the fix, before any change; one that runs nowhere else, or a re-imaged standby, does not", async (t) => {
  const fleet = parseInventory(
    `cluster: lab
defaults: { ssh: { privateKeyFile: k, knownHostsFile: kh } }
hosts:
  - { name: node1, address: 10.0.0.1, arch: amd64, roles: [manager] }
  - { name: node2, address: 10.0.0.2, arch: amd64, roles: [worker] }
  - { name: node3, address: 10.0.0.3, arch: amd64, roles: [worker] }
`,
    "inventory/lab.yaml",
  );
  const settings = parseSettings(
    {
      inventory: "inventory/lab.yaml",
      services: JSON.stringify([
        { name: "counter", build: "services/counter", ports: ["18080:8080"], primary: "node1", standby: "node2" },
        { name: "web", build: "services/web", ports: ["18081:80"], primary: "node3", standby: "node1" },
      ]),
    },
    "stacks/Pulumi.lab.yaml",
  );
  const runsOn: Record<string, string[]> = { counter: ["node2"], web: ["node3"] };
  const asked: string[] = [];
  const where = async (inventory: { hosts: { name: string }[] }, service: string) => {
    asked.push(`${service}: ${inventory.hosts.map((h) => h.name).join(" ")}`);
    return (runsOn[service] ?? []).filter((n) => inventory.hosts.some((h) => h.name === n)).map((name) => ({ name }));
  };
  const identities = { node1: { id: "new", generation: 1, reimaged: true }, node2: { id: "b", generation: 0 }, node3: { id: "c", generation: 0 } };
  const err = await t.throwsAsync(checkReimagedPrimaries(settings, fleet, identities, "stacks/Pulumi.lab.yaml", where));
  t.regex(err!.message, /stacks\/Pulumi\.lab\.yaml: edge-ha:services\[0\]\.primary: node1 was re-imaged, and counter runs on node2 \(moved there by migrate or a failover\); starting it on the blank node1 would make a second copy without its state\. Set primary: node2/);
  t.notRegex(err!.message, /web/, "web's primary (node3) was not re-imaged; node1 is only its standby");
  t.deepEqual(asked, ["counter: node2 node3"], "only the services whose primary was re-imaged are looked for, on the other hosts");
  runsOn.counter = [];
  await t.notThrowsAsync(checkReimagedPrimaries(settings, fleet, identities, "stacks/Pulumi.lab.yaml", where), "running nowhere else: it starts on its primary as before");
});

test("new settings for a service that runs away from its primary stop preview: applying them would start a second copy on the primary", async (t) => {
  const settings = parseSettings(
    {
      inventory: "inventory/lab.yaml",
      services: JSON.stringify([
        { name: "counter", build: "services/counter", ports: ["18080:8080"], primary: "node1", standby: "node2", env: { MODE: "new" } },
        { name: "web", build: "services/web", ports: ["18081:80"], primary: "node3", standby: "node1" },
        { name: "redis", build: "services/counter", ports: ["6379:6379"], primary: "node1", standby: "node2" },
      ]),
    },
    "stacks/Pulumi.lab.yaml",
  ).services;
  const fleet = parseInventory(`cluster: lab\ndefaults: { ssh: { privateKeyFile: id, knownHostsFile: kh } }\nhosts:\n${[1, 2, 3].map((n) => `  - { name: node${n}, address: 10.0.0.${n}, roles: [manager] }\n`).join("")}`, "inventory/lab.yaml");
  const specs = Object.fromEntries(settings.map((s) => [s.name, serviceSpec(s, `edge-ha/${s.name}:1`)]));
  // counter moved to node2 and its env changed; web moved to node1 unchanged; redis runs on its primary with new settings.
  const runsOn: Record<string, string> = { counter: "node2", web: "node1", redis: "node1" };
  const runningSpec: Record<string, ServiceSpec> = { counter: { ...specs.counter, env: { MODE: "old" } }, web: { ...specs.web }, redis: { ...specs.redis, image: "edge-ha/redis:0" } };
  const where = async (_: unknown, service: string) => [{ name: runsOn[service] }];
  const running = async (_: { name: string }, service: string) => runningSpec[service];
  const err = await t.throwsAsync(checkMovedServices(settings, specs, fleet, "stacks/Pulumi.lab.yaml", where, running));
  t.regex(err!.message, /^stacks\/Pulumi\.lab\.yaml: edge-ha:services\[0\]: the settings of counter changed, and pulumi up applies them by starting it afresh on its primary node1; but it runs on node2 \(moved there by migrate or a failover\), which would leave two copies\. Move it back first \(edge-ha service migrate counter --to node1\), then pulumi up$/);
  runningSpec.counter = { ...specs.counter };
  // The same settings, the keys in another order (a label written by an older edge-ha): nothing changed.
  runningSpec.web = Object.fromEntries(Object.entries(specs.web).reverse()) as unknown as ServiceSpec;
  await t.notThrowsAsync(checkMovedServices(settings, specs, fleet, "stacks/Pulumi.lab.yaml", where, running), "unchanged settings: adopted where it runs; a change on the primary itself: started afresh there, as before");
});
