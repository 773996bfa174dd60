import test from "ava";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { stringify } from "yaml";
import { InventoryError, parseInventory } from "../lib/config/inventory";
import { machinesInventory, readMachineStore } from "../lib/config/docker-machine";
import { preflightProblems, type LiveFacts } from "../lib/host/preflight";

const valid = `
cluster: pis
defaults:
  ssh: { user: pi, become: sudo, privateKeyFile: keys/id_ed25519, knownHostsFile: keys/known_hosts }
hosts:
  - { name: pi1, address: 192.168.1.21, arch: arm64, roles: [manager], labels: { zone: kitchen } }
  - { name: pi2, address: pi2.local, arch: arm64, ssh: { port: 2222 } }
`;

test("a valid inventory resolves defaults and relative paths", (t) => {
  const inv = parseInventory(valid, "/fleet/inventory.yaml");
  t.is(inv.cluster, "pis");
  t.deepEqual(inv.hosts.map((h) => h.name), ["pi1", "pi2"]);
  t.deepEqual(inv.hosts[1].roles, ["worker"]);
  t.is(inv.hosts[1].ssh.port, 2222);
  t.is(inv.hosts[1].ssh.user, "pi");
  t.is(inv.hosts[0].ssh.privateKeyFile, "/fleet/keys/id_ed25519");
  t.deepEqual(inv.hosts[0].labels, { zone: "kitchen" });
});

test("the committed example inventory is valid", (t) => {
  const file = path.join(__dirname, "..", "inventory", "example.yaml");
  const inv = parseInventory(readFileSync(file, "utf8"), file);
  t.true(inv.hosts.length >= 3);
});

test("every problem is reported with file, host and field", (t) => {
  const bad = `
cluster: Pis!
hosts:
  - { name: pi1, address: 999.1.1.1.1., roles: [boss] }
  - { name: pi1, address: 10.0.0.2, arch: mips, colour: red }
`;
  const err = t.throws(() => parseInventory(bad, "inv.yaml"), { instanceOf: InventoryError })!;
  t.regex(err.message, /^inv\.yaml is not a valid inventory/);
  t.true(err.problems.some((p) => p.startsWith("cluster:")));
  t.true(err.problems.some((p) => p.startsWith("hosts[0] (pi1).address:")));
  t.true(err.problems.some((p) => p.startsWith("hosts[0] (pi1).roles:")));
  t.true(err.problems.some((p) => p.startsWith("hosts[1] (pi1).name:") && p.includes("twice")));
  t.true(err.problems.some((p) => p.startsWith("hosts[1] (pi1).arch:")));
  t.true(err.problems.some((p) => p.includes(`unknown field "colour"`)));
  t.true(err.problems.some((p) => p.includes("ssh.privateKeyFile")));
});

test("YAML syntax errors name the line", (t) => {
  const err = t.throws(() => parseInventory("cluster: a\nhosts: [\n", "x.yaml"), { instanceOf: InventoryError })!;
  t.regex(err.message, /line \d+: YAML syntax/);
});

test("a fleet without a manager is refused", (t) => {
  const err = t.throws(() => parseInventory(valid.replace("roles: [manager]", "roles: [worker]"), "inv.yaml"), { instanceOf: InventoryError })!;
  t.regex(err.message, /roles: \[manager\]/);
});

test("dotted numbers must be a real IPv4 address, not taken for a DNS name", (t) => {
  const text = `cluster: x\ndefaults: { ssh: { privateKeyFile: k, knownHostsFile: h } }\nhosts:\n  - { name: a, address: 10.0.0.300, roles: [manager] }\n`;
  const err = t.throws(() => parseInventory(text, "/f.yaml"), { instanceOf: InventoryError });
  t.regex(err!.message, /hosts\[0\] \(a\)\.address: expected an IP address or DNS name, found "10\.0\.0\.300"/);
});

test("network.subnet: the hosts' LAN as ADDRESS/PREFIX, its first address; mistakes named", (t) => {
  const inv = parseInventory(`${valid}network: { subnet: 192.168.1.0/24 }\n`, "inv.yaml");
  t.deepEqual(inv.network?.subnet, { cidr: "192.168.1.0/24", network: (192 * 256 + 168) * 65536 + 256, prefix: 24 });
  t.is(parseInventory(valid, "inv.yaml").network, undefined, "optional");
  const problems = (network: string) => t.throws(() => parseInventory(`${valid}network: ${network}\n`, "inv.yaml"), { instanceOf: InventoryError })!.problems;
  t.deepEqual(problems("{ subnet: 192.168.1.7/24 }"), ["network.subnet: expected the network's first address with its prefix (192.168.1.0/24), found \"192.168.1.7/24\""]);
  t.regex(problems("{ subnet: 192.168.1.0 }")[0], /^network\.subnet: expected an IPv4 subnet as ADDRESS\/PREFIX/);
  t.regex(problems("{ subnet: 10.0.0.0/31 }")[0], /prefix 8 to 30/);
  t.deepEqual(problems("{ subnet: 10.0.0.0/8, vlan: 3 }"), ['network: unknown field "vlan" (expected: subnet)']);
  t.regex(problems("10.0.0.0/8")[0], /^network: expected a mapping with subnet/);
});

test("ssh.become: a login that is not root needs become: sudo; sudoPasswordFile only with it, resolved beside the inventory; unknown ssh fields named", (t) => {
  const fleet = (host: string) => `cluster: c\ndefaults:\n  ssh: { privateKeyFile: k, knownHostsFile: kh }\nhosts:\n  - { name: n1, address: 10.0.0.1, roles: [manager] }\n  - ${host}\n`;
  const inv = parseInventory(fleet("{ name: pi3, address: 192.168.1.23, ssh: { user: pi, become: sudo, sudoPasswordFile: secrets/pi3 } }"), "/fleet/inventory.yaml");
  t.deepEqual(inv.hosts[1].ssh, { ...inv.hosts[0].ssh, user: "pi", become: "sudo", sudoPasswordFile: "/fleet/secrets/pi3" });
  t.is(inv.hosts[0].ssh.become, undefined, "root needs none");
  const problems = (host: string) => t.throws(() => parseInventory(fleet(host), "inv.yaml"), { instanceOf: InventoryError })!.problems;
  t.deepEqual(problems("{ name: pi3, address: 192.168.1.23, ssh: { user: pi } }"), [
    "hosts[1] (pi3).ssh.become: pi is not root and edge-ha runs its commands as root: set become: sudo (and sudoPasswordFile if sudo asks pi for a password), or log in as root",
  ]);
  t.deepEqual(problems("{ name: pi3, address: 192.168.1.23, ssh: { user: pi, become: doas, sudoPassword: x } }"), [
    'hosts[1] (pi3).ssh: unknown field "sudoPassword" (expected one of: user, port, privateKeyFile, knownHostsFile, become, sudoPasswordFile)',
    'hosts[1] (pi3).ssh.become: expected sudo, found "doas"',
  ]);
  t.deepEqual(problems("{ name: pi3, address: 192.168.1.23, ssh: { sudoPasswordFile: p } }"), ["hosts[1] (pi3).ssh.sudoPasswordFile: given without become: sudo; set become: sudo, or remove it"]);
});

test("preflight: every host problem named with the host, what was found and the fix; a ready fleet has none", (t) => {
  const inv = parseInventory(
    `${valid}  - { name: pi3, address: 192.168.1.23, arch: arm64 }\n  - { name: vm1, address: 192.168.1.30, arch: amd64, ssh: { user: ubuntu, become: sudo, sudoPasswordFile: vm1.sudo } }\n`,
    "/fleet/inventory.yaml",
  );
  const ready = (host: string, more: Partial<LiveFacts> = {}): LiveFacts => ({
    host, uid: 0, machine: host === "vm1" ? "x86_64" : "aarch64", kernel: "6.6.31", pageSize: 4096, memoryCgroup: true, freeMb: 20_000, clockOffsetMs: -40, clockSlackMs: 300, ...more,
  });
  t.deepEqual(preflightProblems(inv, ["pi1", "pi2", "pi3", "vm1"].map((h) => ready(h))), []);
  const problems = preflightProblems(inv, [
    ready("pi1", { memoryCgroup: false, cmdline: "/boot/firmware/cmdline.txt", pageSize: 16384 }),
    ready("pi2", { clockOffsetMs: 5000 }),
    ready("pi3", { uid: 1000, sudo: "no", freeMb: 300 }),
    ready("vm1", { uid: 1000, sudo: "no", machine: "aarch64", clockOffsetMs: -5400, clockSlackMs: 200 }),
  ]);
  t.deepEqual(problems, [
    `pi1: the memory cgroup is disabled (Docker's memory limits and CRIU's restores of limited containers need it); add "cgroup_enable=memory cgroup_memory=1" to the single line of /boot/firmware/cmdline.txt and reboot`,
    "pi2: its clock is at least 5.0 s ahead of this machine's; checkpoint ages and the agents' events compare hosts' clocks: run NTP there (systemd-timesyncd or chrony)",
    `/fleet/inventory.yaml: hosts[2] (pi3).ssh.become: sudo as pi asks for a password (or pi may not run commands as root): give its password in ssh.sudoPasswordFile, or allow it without one ("pi ALL=(ALL) NOPASSWD: ALL" in /etc/sudoers.d/)`,
    "pi3: 300 MiB free for checkpoints (/var/lib), expected at least 1024 MiB: free space or give the host a larger disk",
    "/fleet/inventory.yaml: hosts[3] (vm1).arch: the inventory says amd64, the host is aarch64; set arch: arm64",
    "/fleet/inventory.yaml: hosts[3] (vm1).ssh.sudoPasswordFile: sudo as ubuntu refused the password in /fleet/vm1.sudo (or ubuntu may not run commands as root): put ubuntu's password on the file's first line",
    "vm1: its clock is at least 5.2 s behind this machine's; checkpoint ages and the agents' events compare hosts' clocks: run NTP there (systemd-timesyncd or chrony)",
    "arm64 hosts have different page sizes (16K: pi1; 4K: pi2, pi3): a checkpoint taken on one restores only on hosts of its page size; boot them all with one (on a Pi 5: kernel=kernel8.img in config.txt for 4K pages)",
  ]);
});

test("a docker-machine store: each machine's address, login, port and key, docker-machine's own fallbacks kept; every bad entry named with its file and field", (t) => {
  const store = mkdtempSync(path.join(tmpdir(), "edge-ha-machines-"));
  const machine = (name: string, driver: Record<string, unknown>, files: string[] = []) => {
    mkdirSync(path.join(store, "machines", name), { recursive: true });
    writeFileSync(path.join(store, "machines", name, "config.json"), JSON.stringify({ ConfigVersion: 3, DriverName: "generic", Name: name, Driver: driver }));
    for (const f of files) writeFileSync(path.join(store, "machines", name, f), "KEY");
  };
  writeFileSync(path.join(store, "pi.key"), "KEY");
  machine("pi1", { IPAddress: "192.168.10.21", SSHUser: "pi", SSHPort: 2222, SSHKeyPath: path.join(store, "pi.key") });
  machine("vm1", { IPAddress: "192.168.10.31", SSHUser: "docker", SSHPort: 0, SSHKeyPath: "" }, ["id_rsa"]);
  machine("vm2", { IPAddress: "192.168.10.32", SSHUser: "ubuntu", SSHKeyPath: "" }, ["id_rsa"]);
  const machines = readMachineStore(store);
  t.deepEqual(
    machines.map((m) => [m.name, m.address, m.user, m.port, path.relative(store, m.keyFile)]),
    [
      ["pi1", "192.168.10.21", "pi", 2222, "pi.key"],
      ["vm1", "192.168.10.31", "docker", 22, path.join("machines", "vm1", "id_rsa")],
      ["vm2", "192.168.10.32", "ubuntu", 22, path.join("machines", "vm2", "id_rsa")],
    ],
  );
  const out = path.join(store, "inventory");
  writeFileSync(path.join(store, "known_hosts"), "");
  const doc = machinesInventory(machines, { cluster: "shop", outDir: out, knownHostsFile: path.join(store, "known_hosts"), arch: { pi1: "arm64", vm1: "amd64", vm2: "amd64" }, kept: { vm2: { roles: ["manager"], labels: { zone: "b" } } } });
  const inv = parseInventory(stringify(doc), path.join(out, "fleet.yaml"));
  t.deepEqual(inv.hosts.map((h) => [h.name, h.arch, h.roles.join(), JSON.stringify(h.labels), h.ssh.port]), [
    ["pi1", "arm64", "manager", "{}", 2222],
    ["vm1", "amd64", "manager", "{}", 22],
    ["vm2", "amd64", "manager", '{"zone":"b"}', 22],
  ], "an odd number of managers (three of three); a role and labels given since are kept");
  t.is(inv.hosts[0].ssh.privateKeyFile, path.join(store, "pi.key"), "paths relative to the inventory, resolved back");

  machine("Dev_1", { IPAddress: "", SSHUser: "docker", SSHPort: 70000, SSHKeyPath: "/nowhere/key" });
  const err = t.throws(() => readMachineStore(store));
  t.regex(err!.message, /Dev_1\/config\.json: Driver\.IPAddress: expected the machine's address, found "" \(is the machine running\? docker-machine ip Dev_1\)/);
  t.regex(err!.message, /Driver\.SSHPort: expected a port, found 70000/);
  t.regex(err!.message, /Driver\.SSHKeyPath: expected a private key file, found "\/nowhere\/key"/);
  t.regex(err!.message, /machine "Dev_1": expected a name an inventory host can have/);
  t.throws(() => readMachineStore(path.join(store, "none")), { message: /no docker-machine store at .*none: expected .*machines\/NAME\/config\.json; give --store DIR/ });
});
