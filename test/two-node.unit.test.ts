import test from "ava";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { recordResources } from "./helpers/mocks";

const registered = recordResources();
// Imported after the mocks are in place, as Pulumi's unit-testing guide asks.
import { InventoryError, parseInventory } from "../lib/config/inventory";
import { checkServicePlacement, parseSettings, SettingsError } from "../lib/config/settings";
import { agentConfig, placement } from "../lib/ha/agent";
import { EdgeCluster } from "../modules/edge-cluster";
import { FailoverAgents } from "../modules/failover-agent";

/*
 * A two-node site, the seed paper's own setup: automatic failover needs a
 * third vote, a witness that runs only the failover agent.
 */

const dir = mkdtempSync(path.join(tmpdir(), "edge-ha-two-node-"));
writeFileSync(path.join(dir, "id"), "-----BEGIN OPENSSH PRIVATE KEY-----\nKEY\n-----END OPENSSH PRIVATE KEY-----\n");
writeFileSync(path.join(dir, "known_hosts"), "10.0.0.1 ssh-ed25519 AAAA1\n10.0.0.2 ssh-ed25519 AAAA2\n10.0.0.9 ssh-ed25519 AAAA9\n");
const inventoryFile = path.join(dir, "inventory.yaml");
const site = (hosts: string) => parseInventory(`cluster: shop\ndefaults: { ssh: { privateKeyFile: id, knownHostsFile: known_hosts } }\nhosts:\n${hosts}`, inventoryFile);
const twoNodes = `  - { name: pi1, address: 10.0.0.1, arch: arm64, roles: [manager] }
  - { name: pi2, address: 10.0.0.2, arch: arm64, roles: [worker] }
`;
const withWitness = `  - { name: pi1, address: 10.0.0.1, arch: arm64, roles: [manager] }
  - { name: pi2, address: 10.0.0.2, arch: arm64, roles: [manager] }
  - { name: box, address: 10.0.0.9, arch: arm64, roles: [witness] }
`;
const counter = (more: object = {}) => ({ name: "counter", build: "services/counter", ports: ["18080:8080"], primary: "pi1", standby: "pi2", ...more });
const stack = (services: object[], failover?: object) =>
  parseSettings({ inventory: "inventory.yaml", services: JSON.stringify(services), ...(failover ? { failover: JSON.stringify(failover) } : {}) }, "stacks/Pulumi.site.yaml");

test("two nodes and failover auto: refused before any change, naming the key, the voters and the fix", (t) => {
  const err = t.throws(() => checkServicePlacement(stack([counter()]), site(twoNodes), "stacks/Pulumi.site.yaml"), { instanceOf: SettingsError });
  t.regex(err!.message, /^stacks\/Pulumi\.site\.yaml/);
  t.regex(err!.message, /edge-ha:services\[0\]\.failover: "auto" needs at least 3 voters \(managers and witnesses\) .* has 1 \(pi1\)/);
  t.regex(err!.message, /Add a witness .*roles: \[witness\].*, add a manager, or set failover: manual/);
  // Two managers are no better: a majority of two is both.
  const twoManagers = site(twoNodes.replace("roles: [worker]", "roles: [manager]"));
  t.throws(() => checkServicePlacement(stack([counter()]), twoManagers, "f"), { message: /has 2 \(pi1, pi2\)/ });
});

test("two nodes: a witness makes failover auto valid; manual failover, or failover off, needs none", (t) => {
  t.notThrows(() => checkServicePlacement(stack([counter()]), site(withWitness), "f"));
  t.notThrows(() => checkServicePlacement(stack([counter({ failover: "manual" })]), site(twoNodes), "f"));
  t.notThrows(() => checkServicePlacement(stack([counter()], { enabled: false }), site(twoNodes), "f"));
  t.notThrows(() => checkServicePlacement(stack([counter({ mode: "swarm", primary: undefined, standby: undefined })]), site(twoNodes), "f"));
});

test("a witness runs no services: a service placed on it is refused, and it is never a failover target", (t) => {
  const inventory = site(withWitness);
  const err = t.throws(() => checkServicePlacement(stack([counter({ standby: "box" })]), inventory, "f"), { instanceOf: SettingsError });
  t.regex(err!.message, /services\[0\]\.standby: expected a host of .* that runs services \(pi1, pi2\), found "box", a witness/);
  t.deepEqual(placement({ primary: "pi1", standby: "pi2" }, inventory), ["pi1", "pi2"]);
});

test("roles: witness alone; a witness that is also a worker is refused with the host and field", (t) => {
  t.deepEqual(site(withWitness).hosts.map((h) => h.roles[0]), ["manager", "manager", "witness"]);
  const err = t.throws(() => site(withWitness.replace("roles: [witness]", "roles: [witness, worker]")), { instanceOf: InventoryError });
  t.regex(err!.message, /hosts\[2\] \(box\)\.roles: a host is one of manager, worker or witness, found \["witness","worker"\]|hosts\[2\]\.roles: a host is one of manager, worker or witness/);
});

test("the noQuorum choice is stop by default, freeze when asked, and nothing else", (t) => {
  t.is(stack([]).failover.noQuorum, "stop");
  t.is(stack([], { noQuorum: "freeze" }).failover.noQuorum, "freeze");
  t.throws(() => stack([], { noQuorum: "ignore" }), { message: /edge-ha:failover\.noQuorum: expected stop or freeze, found "ignore"/ });
});

test("provisioning a two-node site with a witness: the witness gets its facts, edge-ha's host tools and the agent as a voter, nothing else", async (t) => {
  const inventory = site(withWitness);
  const settings = stack([counter()], { noQuorum: "freeze" });
  const cluster = new EdgeCluster("shop", { inventory, settings });
  writeFileSync(path.join(dir, "agent-arm64"), "arm64 agent");
  new FailoverAgents("shop-failover", { inventory, failover: settings.failover, services: settings.services, nodes: cluster.ready, binaries: { arm64: path.join(dir, "agent-arm64") } });
  await new Promise((r) => setTimeout(r, 100));
  const onWitness = registered.filter((r) => r.inputs.connection?.host === "10.0.0.9").map((r) => r.name).sort();
  t.deepEqual(onWitness, ["box-facts", "box-host-tools", "shop-failover-box", "shop-failover-box-binary"]);
  t.true(registered.some((r) => r.name === "pi2-engine"), "the nodes get their engines");
  t.false(registered.some((r) => r.name.startsWith("box-") && r.type.startsWith("docker:")), "no Docker object on the witness");
  const config = JSON.parse(agentConfig(inventory.hosts[2], inventory, settings.failover, settings.services, "s"));
  t.deepEqual(config.nodes, [
    { name: "pi1", address: "10.0.0.1", manager: true, witness: false },
    { name: "pi2", address: "10.0.0.2", manager: true, witness: false },
    { name: "box", address: "10.0.0.9", manager: true, witness: true },
  ]);
  t.is(config.noQuorum, "freeze");
  t.deepEqual(config.services[0].nodes, ["pi1", "pi2"]);
});
