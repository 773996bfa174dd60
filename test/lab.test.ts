import test from "ava";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { $ } from "zx";
import { findHost, loadInventory, type Host } from "../lib/config/inventory";
import { boot, crash, heal, nodeProcesses, partition, pause, resume, shape, starve, unshape, unstarve } from "../lib/lab/faults";
import { cpuQuotaOf, frozen } from "../lib/lab/processes";
import { down, labOptions, listNodes, up } from "../lib/lab/lab";
import { UserError } from "../lib/log";
import { sshExec } from "../lib/host/ssh";
import { whereRuns } from "../lib/ha/service-container";
import { projectRoot } from "../lib/toolchain";

// A lab of its own (name and subnet), so a developer's lab is never touched.
const dir = mkdtempSync(path.join(tmpdir(), "edge-ha-lab-test-"));
const lab = labOptions({ name: "labtest", subnetPrefix: "10.77.201", inventoryFile: path.join(dir, "inventory.yaml") });
const inventory = () => loadInventory(lab.inventoryFile);
const host = (name: string) => findHost(inventory(), name);

test.before(async () => {
  await up(lab, 3);
});

test.after.always(async () => {
  await down(lab);
});

test.serial("each node is its own host, reached over SSH with its host key verified", async (t) => {
  const inv = inventory();
  t.is(inv.hosts.length, 3);
  const names = [];
  for (const h of inv.hosts) names.push((await sshExec(h, "hostname")).stdout.trim());
  t.deepEqual(names, ["node1", "node2", "node3"]);

  await sshExec(host("node1"), "echo only-here > /root/private-file");
  t.is((await sshExec(host("node2"), "test -e /root/private-file", { nothrow: true })).exitCode, 1);

  for (const from of ["node1", "node2", "node3"]) {
    for (const to of inv.hosts.filter((h) => h.name !== from)) {
      const r = await sshExec(host(from), `ping -c1 -W2 ${to.address}`, { nothrow: true });
      t.is(r.exitCode, 0, `${from} should reach ${to.name}`);
    }
  }
});

test.serial("a node whose key does not match known_hosts is refused", async (t) => {
  const h = host("node1");
  const forged = path.join(dir, "forged_known_hosts");
  const other = readFileSync(h.ssh.knownHostsFile, "utf8").split("\n").find((l) => l.startsWith(host("node2").address + " "))!;
  writeFileSync(forged, other.replace(host("node2").address, h.address) + "\n");
  const r = await sshExec({ ...h, ssh: { ...h.ssh, knownHostsFile: forged } }, "true", { nothrow: true });
  t.is(r.exitCode, 255);
  t.regex(r.stderr, /host key|Host key verification failed/i);
});

test.serial("nodes are blank: no Docker, CRIU or rsync", async (t) => {
  const r = await sshExec(host("node1"), "command -v dockerd criu rsync || true");
  t.is(r.stdout.trim(), "");
});

test.serial("lab up again changes nothing and keeps the nodes", async (t) => {
  const before = await listNodes(lab);
  await sshExec(host("node2"), "echo still-here > /root/idem");
  await up(lab, 3);
  t.deepEqual(await listNodes(lab), before);
  t.is((await sshExec(host("node2"), "cat /root/idem")).stdout.trim(), "still-here");
});

test.serial("crash powers a node off at once and boot brings it back with its disk", async (t) => {
  await sshExec(host("node2"), "echo survives > /root/marker");
  await crash(lab, "node2");
  t.false((await listNodes(lab)).find((n) => n.name === "node2")!.running);
  t.not((await sshExec(host("node2"), "true", { nothrow: true })).exitCode, 0);
  await boot(lab, "node2");
  t.is((await sshExec(host("node2"), "cat /root/marker")).stdout.trim(), "survives");
});

/**
 * A node-side command that leaves one `sleep` frozen in the freezer `cgroup`.
 * It is frozen only once it is sleep: frozen earlier, between its fork and
 * its exec, it was still a copy of the shell holding SSH's output open, and
 * the SSH command never ended (a CI run hung there for the test's timeout).
 */
const frozenSleeper = (cgroup: string) =>
  `mkdir -p ${cgroup} && { sh -c 'echo $$ > ${cgroup}/cgroup.procs && exec sleep 600' </dev/null >/dev/null 2>&1 & } && p=$! && ` +
  `for _ in $(seq 100); do [ "$(cat /proc/$p/comm 2>/dev/null)" = sleep ] && break; sleep 0.05; done && echo FROZEN > ${cgroup}/freezer.state`;

test.serial("crash stops a node even when a process in it is frozen (as CRIU leaves one it was dumping)", async (t) => {
  // A cgroup-v1 freezer cgroup on this machine's hierarchy, as a nested container's is (cgroupns host).
  const cgroup = `/sys/fs/cgroup/freezer/edge-ha-${lab.name}-frozen`;
  try {
    await sshExec(host("node3"), `${frozenSleeper(cgroup)} && grep -q FROZEN ${cgroup}/freezer.state`);
    await crash(lab, "node3");
    t.false((await listNodes(lab)).find((n) => n.name === "node3")!.running);
  } finally {
    await $({ quiet: true, nothrow: true })`rmdir ${cgroup}`;
    if (!(await listNodes(lab)).find((n) => n.name === "node3")!.running) await boot(lab, "node3");
  }
  t.is((await sshExec(host("node3"), "true")).exitCode, 0);
});

test.serial("partition cuts a node off both ways while it runs; heal restores it", async (t) => {
  const n1 = host("node1");
  const n2 = host("node2");
  await partition(lab, "node1");
  try {
    t.not((await sshExec(n2, `ping -c1 -W1 ${n1.address}`, { nothrow: true })).exitCode, 0, "node2 must not reach node1");
    const fromInside = await $({ quiet: true, nothrow: true })`docker exec edge-ha-labtest-node1 ping -c1 -W1 ${n2.address}`;
    t.not(fromInside.exitCode, 0, "node1 must not reach node2");
    t.true((await listNodes(lab)).find((n) => n.name === "node1")!.running);
  } finally {
    await heal(lab, "node1");
  }
  t.is((await sshExec(n2, `ping -c1 -W2 ${n1.address}`, { nothrow: true })).exitCode, 0);
});

test.serial("partition --from cuts two nodes off from each other only; the third reaches both", async (t) => {
  const [n1, n2, n3] = ["node1", "node2", "node3"].map(host);
  const reaches = async (from: Host, to: Host) => (await sshExec(from, `ping -c1 -W1 ${to.address}`, { nothrow: true })).exitCode === 0;
  await partition(lab, "node1", { from: "node2" });
  try {
    t.false(await reaches(n2, n1), "node2 must not reach node1");
    t.true(await reaches(n3, n1), "node3 reaches node1");
    t.true(await reaches(n3, n2), "node3 reaches node2");
    await t.throwsAsync(partition(lab, "node1", { from: "node2" }), { message: /already partitioned from node2; to undo: lab heal node1 --from node2/ });
    await t.throwsAsync(partition(lab, "node1", { from: "node1" }), { message: /--from: expected another node than node1/ });
  } finally {
    await heal(lab, "node1", "node2");
  }
  t.true(await reaches(n2, n1), "healed");
});

test.serial("partition --one-way drops only what the node sends: it still hears the others, they no longer hear it", async (t) => {
  const [n1, n2] = ["node1", "node2"].map(host);
  // The kernel's count of echo requests node1 received (read from inside: its answers to us are dropped too).
  const echoesIn = async () =>
    Number(/Icmp: (?:\S+ ){8}(\d+)/.exec((await $({ quiet: true })`docker exec edge-ha-labtest-node1 grep ^Icmp: /proc/net/snmp`).stdout.trim().split("\n")[1])?.[1]);
  await partition(lab, "node1", { oneWay: true });
  try {
    const before = await echoesIn();
    t.not((await sshExec(n2, `ping -c2 -W1 ${n1.address}`, { nothrow: true })).exitCode, 0, "node2 gets no answer from node1");
    const after = await echoesIn();
    t.true(after >= before + 2, `node1 received node2's pings (InEchos ${before} -> ${after})`);
    await t.throwsAsync(partition(lab, "node1", { oneWay: true }), { message: /already partitioned one way; to undo: lab heal node1/ });
  } finally {
    await heal(lab, "node1");
  }
  t.is((await sshExec(n2, `ping -c1 -W2 ${n1.address}`, { nothrow: true })).exitCode, 0, "healed");
});

test.serial("pause freezes every process of a node (its disk, address and sockets kept); resume thaws them; --agent needs an agent", async (t) => {
  const n1 = host("node1");
  await t.throwsAsync(pause(lab, "node1", true), { message: /no edge-ha-agent runs on node1/ });
  await pause(lab, "node1");
  try {
    const procs = await nodeProcesses("edge-ha-labtest-node1");
    t.true(procs.length > 0 && procs.every((p) => frozen(p.pid)), `all frozen: ${procs.map((p) => `${p.comm}${frozen(p.pid) ? "" : " (running)"}`).join(", ")}`);
    await t.throwsAsync(pause(lab, "node1"), { message: /node1 is already paused; to undo: lab resume node1/ });
    t.true((await listNodes(lab)).find((n) => n.name === "node1")!.running, "it is not powered off");
    t.not((await sshExec(n1, "true", { nothrow: true, connectTimeout: 2 })).exitCode, 0, "sshd does not answer");
    // Where a service runs is asked of every host: one that does not answer is said as such, not as "runs nothing".
    const where = await whereRuns(inventory(), "counter");
    t.deepEqual([where.running.map((h) => h.name), where.unanswered.map((h) => h.name)], [[], ["node1"]]);
    const migrate = await $({ quiet: true, nothrow: true, cwd: projectRoot })`bin/edge-ha service migrate counter --to node2 --inventory ${lab.inventoryFile}`;
    t.regex(migrate.stderr, /service "counter" is not running on any host of \S+; node1 did not answer over SSH \(it may run there\)/);
  } finally {
    await resume(lab, "node1");
  }
  t.true((await nodeProcesses("edge-ha-labtest-node1")).every((p) => !frozen(p.pid) && !p.stopped));
  t.is((await sshExec(n1, "echo back")).stdout.trim(), "back");
});

test.serial("starve slows every process of a node, which still runs; unstarve lifts every limit it set", async (t) => {
  // Work timed inside the node (its own clock), so that SSH's own slowness when starved is not counted.
  const timeWork = async () => Number((await sshExec(host("node2"), "s=$(date +%s%N); i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; echo $(( ($(date +%s%N) - s) / 1000000 ))")).stdout.trim());
  const baseline = await timeWork();
  const at = await starve(lab, "node2");
  t.true(Date.now() - at < 5000);
  let slow: number;
  try {
    await t.throwsAsync(starve(lab, "node2"), { message: /node2 is already starved; to undo: lab unstarve node2/ });
    slow = await timeWork();
    t.true((await nodeProcesses("edge-ha-labtest-node2")).every((p) => !frozen(p.pid) && !p.stopped), "running, not paused");
  } finally {
    await unstarve(lab, "node2");
  }
  // 5 % of a core: the same work takes about 20 times as long.
  t.log(`the same work in node2: ${baseline} ms, starved ${slow} ms`);
  t.true(slow > baseline * 5, `starved ${slow} ms vs ${baseline} ms`);
  const quotas = [...new Set((await nodeProcesses("edge-ha-labtest-node2")).map((p) => cpuQuotaOf(p.pid)).filter((f): f is string => !!f))].map((f) => readFileSync(f, "utf8").trim());
  t.deepEqual([...new Set(quotas)], ["-1"], "no quota left on any of its cgroups");
  await t.throwsAsync(starve(lab, "node2", 2), { message: /--cpus: expected a share of one core from 0\.01 to 1, found 2/ });
});

test.serial("shape measurably slows a node's link; unshape restores it", async (t) => {
  const payload = Buffer.alloc(1_000_000, 7);
  const timeTransfer = async () => {
    const started = process.hrtime.bigint();
    await sshExec(host("node3"), "cat > /dev/null", { input: payload });
    return Number(process.hrtime.bigint() - started) / 1e9;
  };
  const baseline = await timeTransfer();
  await shape(lab, "node3", { rate: "2mbit" });
  let shaped: number;
  try {
    shaped = await timeTransfer();
  } finally {
    await unshape(lab, "node3");
  }
  // 1 MB at 2 Mbit/s needs at least 4 s; an unshaped link takes a fraction of that.
  t.true(shaped > 3, `shaped transfer took ${shaped.toFixed(2)} s`);
  t.true(shaped > baseline * 5, `shaped ${shaped.toFixed(2)} s vs baseline ${baseline.toFixed(2)} s`);
  // Unshaped, it goes faster than 2 Mbit/s could carry it (4 s). Not a ratio to the shaped time: on a
  // loaded machine the SSH handshake alone took 1.4 s, a third of a 4.3 s shaped transfer (CI).
  const after = await timeTransfer();
  t.true(after < 3, `after unshape ${after.toFixed(2)} s (shaped ${shaped.toFixed(2)} s, baseline ${baseline.toFixed(2)} s)`);
});

test.serial("bad input is one clear error and changes nothing", async (t) => {
  const before = await listNodes(lab);
  await t.throwsAsync(crash(lab, "node9"), { instanceOf: UserError, message: /no node "node9".*node1, node2, node3/ });
  await t.throwsAsync(up(lab, 0), { instanceOf: UserError, message: /--nodes/ });
  await t.throwsAsync(shape(lab, "node1", { rate: "fast" }), { instanceOf: UserError, message: /--rate/ });
  const cli = await $({ quiet: true, nothrow: true })`bin/edge-ha lab --lab labtest crash nodeX`;
  t.is(cli.exitCode, 1);
  t.regex(cli.stderr, /error: no node "nodeX"/);
  const badInventory = path.join(dir, "bad.yaml");
  writeFileSync(badInventory, "cluster: x\nhosts:\n  - name: a\n");
  const check = await $({ quiet: true, nothrow: true })`bin/edge-ha inventory check ${badInventory}`;
  t.is(check.exitCode, 1);
  t.regex(check.stderr, /bad\.yaml is not a valid inventory[\s\S]*hosts\[0\] \(a\)\.address/);
  const usage = await $({ quiet: true, nothrow: true })`bin/edge-ha lab --lab labtest explode`;
  t.is(usage.exitCode, 2, "a wrong command line exits 2");
  t.regex(usage.stderr, /^error: unknown command "explode" \(see --help\)\n$/);
  t.deepEqual(await listNodes(lab), before);
});

test.serial("inventory check --live asks every node what it is, changing nothing: the lab is ready; a wrong arch and a node that does not answer are named with their fix", async (t) => {
  const blank = await sshExec(host("node1"), "ls /var/lib/edge-ha /etc/edge-ha 2>&1; dpkg -l | wc -l", { nothrow: true });
  const ready = await $({ quiet: true, nothrow: true })`bin/edge-ha inventory check ${lab.inventoryFile} --live --json`;
  t.is(ready.exitCode, 0, ready.stderr);
  const report = JSON.parse(ready.stdout);
  t.deepEqual(report.problems, []);
  t.deepEqual(report.facts.map((f: { host: string }) => f.host), ["node1", "node2", "node3"]);
  t.true(report.facts.every((f: { uid: number; memoryCgroup: boolean; pageSize: number }) => f.uid === 0 && f.memoryCgroup && f.pageSize > 0));
  // The nodes share this machine's clock: what one round trip tells must include no offset.
  t.true(report.facts.every((f: { clockOffsetMs: number; clockSlackMs: number }) => f.clockOffsetMs <= 50 && f.clockOffsetMs + f.clockSlackMs >= -50), JSON.stringify(report.facts));

  const wrong = path.join(dir, "wrong-arch.yaml");
  writeFileSync(wrong, readFileSync(lab.inventoryFile, "utf8").replace(/arch: (amd64|arm64)/, (_, a) => `arch: ${a === "amd64" ? "arm64" : "amd64"}`));
  await crash(lab, "node3");
  try {
    const bad = await $({ quiet: true, nothrow: true })`bin/edge-ha inventory check ${wrong} --live`;
    t.is(bad.exitCode, 1);
    t.regex(bad.stderr, /wrong-arch\.yaml: hosts\[0\] \(node1\)\.arch: the inventory says \w+, the host is \w+; set arch: \w+/);
    t.regex(bad.stderr, /node3 \(10\.77\.201\.13\): the probe over SSH failed/);
  } finally {
    await boot(lab, "node3");
  }
  t.is((await sshExec(host("node1"), "ls /var/lib/edge-ha /etc/edge-ha 2>&1; dpkg -l | wc -l", { nothrow: true })).stdout, blank.stdout, "nothing changed on the node");
});

test.serial("inventory from-docker-machine: a store describing the lab's nodes becomes an inventory that check --live passes; run again it is unchanged and keeps a role given since; an unknown or forged host key writes nothing", async (t) => {
  // A store as docker-machine's generic driver writes it: one folder per machine.
  const store = path.join(dir, "machine-store");
  for (const h of inventory().hosts) {
    mkdirSync(path.join(store, "machines", h.name), { recursive: true });
    const config = { ConfigVersion: 3, DriverName: "generic", Name: h.name, Driver: { IPAddress: h.address, MachineName: h.name, SSHUser: "root", SSHPort: 22, SSHKeyPath: h.ssh.privateKeyFile } };
    writeFileSync(path.join(store, "machines", h.name, "config.json"), JSON.stringify(config));
  }
  const out = path.join(dir, "imported", "fleet.yaml");
  const knownHosts = host("node1").ssh.knownHostsFile;
  const imported = await $({ quiet: true, nothrow: true })`bin/edge-ha inventory from-docker-machine --store ${store} --out ${out} --known-hosts ${knownHosts} --cluster shop --json`;
  t.is(imported.exitCode, 0, imported.stderr);
  const result = JSON.parse(imported.stdout);
  t.true(result.changed);
  const inv = loadInventory(out);
  t.is(inv.cluster, "shop");
  t.deepEqual(
    inv.hosts.map((h) => [h.name, h.address, h.arch, h.roles.join(), h.ssh.user, h.ssh.privateKeyFile]),
    inventory().hosts.map((h) => [h.name, h.address, h.arch, "manager", "root", h.ssh.privateKeyFile]),
    "names, addresses, the arch each node said, three managers, the store's login",
  );
  const live = await $({ quiet: true, nothrow: true })`bin/edge-ha inventory check ${out} --live --json`;
  t.is(live.exitCode, 0, live.stderr);
  t.deepEqual(JSON.parse(live.stdout).problems, []);

  // A role given since is kept; nothing else changed, so the file is not rewritten.
  writeFileSync(out, readFileSync(out, "utf8").replace(/roles:\n(\s+)- manager\n(\s+ssh:\n\s+user: root\n\s+port: 22\n\s+privateKeyFile: \S+\n)$/, "roles:\n$1- worker\n$2"));
  const edited = readFileSync(out, "utf8");
  t.regex(edited, /- worker/);
  const again = await $({ quiet: true, nothrow: true })`bin/edge-ha inventory from-docker-machine --store ${store} --out ${out} --known-hosts ${knownHosts}`;
  t.is(again.exitCode, 0, again.stderr);
  t.regex(again.stdout, /fleet\.yaml: unchanged$/m);
  t.is(readFileSync(out, "utf8"), edited);

  // Keys: one missing from the file given, or not the machine's: nothing is written.
  const partial = path.join(dir, "partial_known_hosts");
  const lines = readFileSync(knownHosts, "utf8").trim().split("\n");
  writeFileSync(partial, lines.filter((l) => !l.startsWith(`${host("node2").address} `)).join("\n") + "\n");
  const missing = await $({ quiet: true, nothrow: true })`bin/edge-ha inventory from-docker-machine --store ${store} --out ${path.join(dir, "other.yaml")} --known-hosts ${partial}`;
  t.is(missing.exitCode, 1);
  t.regex(missing.stderr, /partial_known_hosts has no key for node2 \(10\.77\.201\.12\)/);
  const forged = path.join(dir, "forged_import_known_hosts");
  const key = (name: string) => lines.find((l) => l.startsWith(`${host(name).address} `))!.split(" ").slice(1).join(" ");
  writeFileSync(forged, lines.map((l) => (l.startsWith(`${host("node3").address} `) ? `${host("node3").address} ${key("node1")}` : l)).join("\n") + "\n");
  const mitm = await $({ quiet: true, nothrow: true })`bin/edge-ha inventory from-docker-machine --store ${store} --out ${path.join(dir, "other.yaml")} --known-hosts ${forged}`;
  t.is(mitm.exitCode, 1);
  t.regex(mitm.stderr, /node3 \(root@10\.77\.201\.13\): .*(Host key verification failed|host key)/i);
  t.false(existsSync(path.join(dir, "other.yaml")), "nothing written");
});

test.serial("down removes every container, volume, network and rule of the lab, and only those", async (t) => {
  const other = labOptions({ name: "labtest2", subnetPrefix: "10.77.202", inventoryFile: path.join(dir, "other.yaml") });
  await up(other, 1);
  // A frozen process (as CRIU leaves one it was dumping) must not keep a node from going.
  const cgroup = `/sys/fs/cgroup/freezer/edge-ha-${lab.name}-frozen-down`;
  await sshExec(host("node1"), frozenSleeper(cgroup));
  try {
    await down(lab);
    const filter = "label=edge-ha.lab=labtest";
    t.is((await $({ quiet: true })`docker ps -aq --filter ${filter}`).stdout.trim(), "");
    t.is((await $({ quiet: true })`docker volume ls -q --filter ${filter}`).stdout.trim(), "");
    t.is((await $({ quiet: true })`docker network ls -q --filter ${filter}`).stdout.trim(), "");
    t.notRegex((await $({ quiet: true })`iptables -S DOCKER-USER`).stdout, /edge-ha-lab:labtest:/);
    t.is((await listNodes(other)).length, 1, "another lab is left alone");
  } finally {
    await $({ quiet: true, nothrow: true })`rmdir ${cgroup}`;
    await down(other);
  }
});
