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
