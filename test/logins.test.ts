import test from "ava";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { parse, stringify } from "yaml";
import { $ } from "zx";
import { findHost, loadInventory } from "../lib/config/inventory";
import { agentPaths } from "../lib/ha/agent";
import { migrate } from "../lib/ha/migration";
import { locate } from "../lib/ha/service-container";
import { preflight } from "../lib/host/preflight";
import { sshExec } from "../lib/host/ssh";
import { boot, crash } from "../lib/lab/faults";
import { down, labFiles, labOptions, labSudoUser } from "../lib/lab/lab";
import { freshLabStack } from "../lib/lab/stack";
import { PulumiStack } from "../lib/pulumi";
import { projectRoot } from "../lib/toolchain";
import { until as poll } from "./helpers/poll";

/*
 * A mixed fleet, as real ones are: node1 and node2 refuse root's login and
 * let a user in who reaches root through sudo, node1's sudo asking the user's
 * password (the inventory's sudoPasswordFile), node2's none; node3 lets root
 * in. node1 is the one that matters most: the swarm's first manager and the
 * node CRIU is staged on (the operator's cache offers it there). Up from
 * blank, a migration and a failover between the sudo nodes, and destroy, all
 * through the same programs as a root fleet.
 */
const dir = mkdtempSync(path.join(tmpdir(), "edge-ha-logins-test-"));
const lab = labOptions({ name: "logintest", subnetPrefix: "10.77.212", inventoryFile: path.join(dir, "inventory.yaml") });
const stack = new PulumiStack(projectRoot, "logintest");
const inventory = () => loadInventory(lab.inventoryFile);
const host = (name: string) => findHost(inventory(), name);
const on = async (name: string, command: string) => (await sshExec(host(name), command)).stdout.trim();
const port = 18080;
const nodes = ["node1", "node2", "node3"];
const sudoNodes = ["node1", "node2"];

async function counter(name: string, method = "GET"): Promise<{ count: number }> {
  const r = await fetch(`http://${host(name).address}:${port}/${method === "POST" ? "incr" : ""}`, { method, signal: AbortSignal.timeout(3000) });
  return (await r.json()) as { count: number };
}
const runningOn = async () => (await locate(inventory(), "counter")).map((h) => h.name);
const until = <T>(seconds: number, check: () => Promise<T>, ok: (v: T) => boolean) => poll(seconds, check, ok, 200);

test.before(async () => {
  await freshLabStack(lab, stack, 3, { logins: { node1: "sudo-password", node2: "sudo" } });
  const file = path.join(projectRoot, "stacks", "Pulumi.logintest.yaml");
  const doc = parse(readFileSync(file, "utf8"));
  doc.config["edge-ha:services"] = [{ name: "counter", build: "services/counter", ports: [`${port}:8080`], primary: "node1", standby: "node2", syncInterval: 1, failover: "auto" }];
  writeFileSync(file, stringify(doc));
});

test.after.always(async () => {
  await stack.forget();
  await down(lab);
});

test.serial("the sudo nodes refuse root; the preflight passes each login, and names a sudo that asks a password it was not given, or refuses the one given, with the fix", async (t) => {
  const inv = inventory();
  t.deepEqual(inv.hosts.map((h) => [h.name, h.ssh.user, h.ssh.become ?? "-", h.ssh.sudoPasswordFile ? "password" : "-"]), [
    ["node1", labSudoUser, "sudo", "password"],
    ["node2", labSudoUser, "sudo", "-"],
    ["node3", "root", "-", "-"],
  ]);
  const asRoot = await $({ quiet: true, nothrow: true })`ssh -i ${labFiles(lab).key} -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${labFiles(lab).knownHosts} root@${host("node1").address} true`;
  t.regex(asRoot.stderr, /Permission denied/, "no root login on a sudo node");
  for (const n of nodes) {
    t.is(await on(n, "id -u"), "0", `${n}: edge-ha's commands run as root`);
    t.is((await sshExec(host(n), "id -un", { asLogin: true })).stdout.trim(), n === "node3" ? "root" : labSudoUser);
  }
  t.deepEqual(await preflight(inv), []);

  const wrong = path.join(dir, "wrong-password");
  writeFileSync(wrong, "not-the-password\n");
  const edited = (edit: (ssh: Record<string, unknown>) => void) => {
    const doc = parse(readFileSync(lab.inventoryFile, "utf8"));
    edit(doc.hosts.find((h: { name: string }) => h.name === "node1").ssh);
    const file = path.join(dir, `edited-${Math.random().toString(36).slice(2)}.yaml`);
    // Relative paths stay relative to the lab's inventory folder.
    writeFileSync(file, stringify(doc));
    return loadInventory(file);
  };
  const refused = await preflight(edited((ssh) => (ssh.sudoPasswordFile = wrong)));
  t.is(refused.length, 1, refused.join("\n"));
  t.regex(refused[0], /hosts\[0\] \(node1\)\.ssh\.sudoPasswordFile: sudo as edge refused the password in .*wrong-password \(or edge may not run commands as root\): put edge's password on the file's first line$/);
  const unasked = await preflight(edited((ssh) => delete ssh.sudoPasswordFile));
  t.is(unasked.length, 1);
  t.regex(unasked[0], /hosts\[0\] \(node1\)\.ssh\.become: sudo as edge asks for a password .*give its password in ssh\.sudoPasswordFile, or allow it without one \("edge ALL=\(ALL\) NOPASSWD: ALL" in \/etc\/sudoers\.d\/\)/);
});

test.serial("a docker-machine store of a sudo node and a root node becomes an inventory with become: sudo where the login is not root, which the preflight passes", async (t) => {
  // As docker-machine's generic driver writes a store: node2 logs in as the sudo user (passwordless, as docker-machine's VMs), node3 as root.
  const store = path.join(dir, "machine-store");
  for (const name of ["node2", "node3"]) {
    const h = host(name);
    mkdirSync(path.join(store, "machines", name), { recursive: true });
    const config = { ConfigVersion: 3, DriverName: "generic", Name: name, Driver: { IPAddress: h.address, MachineName: name, SSHUser: h.ssh.user, SSHPort: 22, SSHKeyPath: h.ssh.privateKeyFile } };
    writeFileSync(path.join(store, "machines", name, "config.json"), JSON.stringify(config));
  }
  const out = path.join(dir, "imported.yaml");
  const imported = await $({ quiet: true, nothrow: true })`bin/edge-ha inventory from-docker-machine --store ${store} --out ${out} --known-hosts ${labFiles(lab).knownHosts} --cluster shop --json`;
  t.is(imported.exitCode, 0, imported.stderr);
  t.deepEqual(loadInventory(out).hosts.map((h) => [h.name, h.ssh.user, h.ssh.become ?? "-"]), [["node2", labSudoUser, "sudo"], ["node3", "root", "-"]]);
  const live = await $({ quiet: true, nothrow: true })`bin/edge-ha inventory check ${out} --live --json`;
  t.is(live.exitCode, 0, live.stderr);
  t.deepEqual(JSON.parse(live.stdout).problems, []);
});

test.serial("up from blank on the mixed fleet: every component installed as root, edge-ha's files owned by root, nothing left where the copies landed, the sudo logins in the docker group; a second up changes nothing", async (t) => {
  const first = await stack.up();
  t.true(first.summary.created >= 30, JSON.stringify(first.summary));
  t.is(await on("node1", "docker node ls --format '{{.Hostname}} {{.Status}}' | sort"), "node1 Ready\nnode2 Ready\nnode3 Ready");
  for (const n of nodes) {
    t.is(await on(n, "docker info -f '{{.ExperimentalBuild}} {{.Swarm.LocalNodeState}}'"), "true active", n);
    t.regex(await on(n, "criu check 2>&1"), /Looks good/, n);
    t.is(await on(n, `stat -c '%U %a' ${agentPaths.binary} ${agentPaths.config}`), "root 755\nroot 600", `${n}: the agent's files are root's`);
    t.is(await on(n, "ps -o user= -C edge-ha-agent,edge-ha-watchdog | sort -u"), "root", `${n}: the agent and its watchdog run as root`);
  }
  for (const n of sudoNodes) {
    t.is(await on(n, `ls -A ~${labSudoUser}/.edge-ha/staged 2>/dev/null || true`), "", `${n}: every staged copy was moved in place`);
    t.regex(await on(n, `id -nG ${labSudoUser}`), /\bdocker\b/, `${n}: the Docker provider's login may use the engine`);
  }
  t.deepEqual(await runningOn(), ["node1"]);
  t.is((await counter("node1")).count, 0);

  const again = await stack.up();
  t.deepEqual(Object.keys(again.summary), ["unchanged"], `a second up redoes nothing, but:\n${again.output.split("\n").filter((l) => /updat|creat|delet|replac/.test(l)).join("\n")}`);
});

test.serial("the counter migrates between the sudo nodes with its count, and the agents restore it on its standby when its node is cut off from power", async (t) => {
  for (let i = 0; i < 5; i++) await counter("node1", "POST");
  await migrate(inventory(), "counter", "node2");
  t.deepEqual(await runningOn(), ["node2"]);
  t.is((await counter("node2")).count, 5, "sudo with a password to sudo without: same count");
  await counter("node2", "POST");
  await migrate(inventory(), "counter", "node1");
  t.deepEqual(await runningOn(), ["node1"]);
  t.is((await counter("node1")).count, 6);

  // Its sync runs again after the move (1 s interval): the standby gets a checkpoint holding 6.
  await until(15, () => on("node2", "ls /var/lib/edge-ha/checkpoints/counter/sync 2>/dev/null | wc -l"), (n) => Number(n) > 0);
  await new Promise((r) => setTimeout(r, 3000));
  await crash(lab, "node1");
  try {
    const served = await until(30, () => counter("node2").catch(() => undefined), (c) => c !== undefined);
    t.truthy(served, "the agents restored the counter on node2");
    t.is(served?.count, 6, "with the count it had");
  } finally {
    await boot(lab, "node1");
  }
});

test.serial("destroy leaves the nodes blank, the sudo logins out of the docker group and their homes without edge-ha's folder", async (t) => {
  await until(30, () => sshExec(host("node1"), "docker info >/dev/null 2>&1 && echo up", { nothrow: true }).then((r) => r.stdout.trim()), (s) => s === "up");
  await stack.destroy();
  for (const n of nodes) {
    t.is(await on(n, "command -v dockerd criu rsync || true"), "", n);
    t.is(await on(n, "ls /etc/edge-ha/boot.d 2>/dev/null || true"), "", n);
  }
  for (const n of sudoNodes) {
    t.notRegex(await on(n, `id -nG ${labSudoUser}`), /\bdocker\b/, n);
    t.is(await on(n, `ls -A ~${labSudoUser}`), ".bash_logout\n.bashrc\n.profile\n.ssh", `${n}: the login's home as the lab made it`);
  }
});
