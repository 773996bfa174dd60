import test from "ava";
import { parseInventory } from "../lib/config/inventory";
import { checkDrainedPrimaries } from "../lib/ha/drain";
import { drainTable } from "../scripts/commands/node";
import { main as fleetCommand, upgradeTable } from "../scripts/commands/fleet";

/*
 * Node maintenance, the parts that need no hosts: what pulumi up says of a
 * drained node, and how a drain's outcome reads. The drain itself is tested
 * in the lab (maintenance.test.ts).
 */

const fleet = parseInventory(`cluster: lab\ndefaults: { ssh: { privateKeyFile: id, knownHostsFile: kh } }\nhosts:\n${[1, 2, 3].map((n) => `  - { name: node${n}, address: 10.0.0.${n}, roles: [manager] }\n`).join("")}`, "inventory/lab.yaml");
const services = [
  { name: "counter", mode: "criu" as const, primary: "node1" },
  { name: "fresh", mode: "criu" as const, primary: "node1" },
  { name: "web", mode: "criu" as const, primary: "node2" },
  { name: "replicas", mode: "swarm" as const, primary: undefined },
];
// counter was drained off node1 and runs on node2; fresh is new (runs nowhere); web runs on node2.
const where = async (_: unknown, service: string) => ({ counter: [{ name: "node2" }], web: [{ name: "node2" }] })[service as "counter" | "web"] ?? [];

test("pulumi up starts nothing new on a drained node: a new service placed there is named with the fix; a moved one is adopted", async (t) => {
  const err = await t.throwsAsync(checkDrainedPrimaries(services, fleet, "stacks/Pulumi.lab.yaml", async () => ["node1"], where));
  t.is(
    err!.message,
    "stacks/Pulumi.lab.yaml: edge-ha:services[1].primary: node1 is drained (edge-ha node drain) and fresh runs nowhere yet, so pulumi up would start it there. Set another primary, or run 'edge-ha node undrain node1' first",
  );
  await t.notThrowsAsync(checkDrainedPrimaries(services, fleet, "stacks/Pulumi.lab.yaml", async () => [], where), "no node drained: nothing to say");
  await t.notThrowsAsync(checkDrainedPrimaries(services, fleet, "stacks/Pulumi.lab.yaml", async () => ["node3"], where), "a drained node that is no primary: nothing to say");
});

test("a drain's outcome: a line per service, what did not move in capitals, the swarm's tasks", (t) => {
  t.is(
    drainTable({
      node: "node1",
      moves: [
        { service: "counter", from: "node1", to: "node2", standby: "node3", downtimeMs: 912 },
        { service: "kv", from: "node1", error: "migration of kv from node1 to node3 failed, still running on node1: CRIU said no" },
      ],
      standbys: [{ service: "web", runsOn: "node3", standby: "node2" }],
      swarm: { tasks: 1, below: ["replicas 2/3"] },
      complete: false,
    }),
    [
      "node1: marked drained, NOT EMPTY",
      "  counter          -> node2, downtime 912 ms, standby node3",
      "  kv               NOT MOVED: migration of kv from node1 to node3 failed, still running on node1: CRIU said no",
      "  web              on node3: standby node2",
      "  swarm: 1 task(s) stopped there",
      "  swarm runs replicas 2/3: the other nodes cannot take every task (a port published in host mode allows one per node); in full again after undrain",
    ].join("\n"),
  );
  t.is(drainTable({ node: "node3", moves: [], standbys: [], complete: true }), "node3: drained, nothing runs there\n  no CRIU service ran there or synced to it");
});

test("fleet upgrade: a wrong option is said before anything is done", async (t) => {
  for (const [args, message] of [
    [["upgrade", "--reboot", "sometimes"], /--reboot: expected one of needed, always, never, found "sometimes"/],
    [["upgrade", "--boot-timeout", "2"], /--boot-timeout: expected whole seconds from 10, found "2"/],
    [["upgrade", "--command", " "], /--command: expected a command, found an empty one/],
    [["downgrade"], /unknown command "downgrade"; expected upgrade/],
  ] as const) {
    const err = await t.throwsAsync(fleetCommand([...args, "--inventory", "/nonexistent/inventory.yaml"]));
    t.regex(err!.message, message);
  }
});

test("fleet upgrade's outcome: a line per node, and where it stopped", (t) => {
  t.is(
    upgradeTable({
      upgraded: [
        {
          node: "node1",
          output: "",
          rebooted: true,
          backAfterMs: 8400,
          seconds: 41.2,
          drain: { node: "node1", moves: [{ service: "counter", from: "node1", to: "node2", downtimeMs: 950 }], standbys: [], complete: true },
        },
      ],
      stopped: { node: "node2", step: "health", error: "it is not whole 300 s after its upgrade: 'criu check' fails there (Error (criu/cr-check.c:1234): no memfd). node2 stays drained" },
    }),
    [
      "node1        upgraded in 41 s, rebooted (up again in 8.4 s); moved counter -> node2 (950 ms)",
      "node2        STOPPED at health: it is not whole 300 s after its upgrade: 'criu check' fails there (Error (criu/cr-check.c:1234): no memfd). node2 stays drained",
    ].join("\n"),
  );
});
