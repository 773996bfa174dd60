import * as path from "node:path";
import { parseArgs } from "node:util";
import { boot, crash, heal, nodeProcesses, partition, pause, resume, shape, starve, starved, unshape, unstarve } from "../../lib/lab/faults";
import { frozen } from "../../lib/lab/processes";
import { down, type LabLogin, labLogins, labOptions, listNodes, reimage, up } from "../../lib/lab/lab";
import { pushArchive, startRegistry } from "../../lib/lab/registry";
import { baseImage, ensureBaseImage } from "../../lib/lab/image";
import { UsageError, UserError } from "../../lib/log";

export const help = `Usage: edge-ha lab <command> [options]

The local lab: blank Debian hosts as containers on this machine, reached over
SSH like real Pis. Needs root and a running Docker engine (bash scripts/setup).

Commands:
  up [--nodes N] [--witness] [--login NODE=LOGIN,...]
                                       create or start N nodes (default 3) and write the inventory;
                                       --witness adds a node "witness" listed with roles: [witness]
                                       (only the failover agent runs there: the third vote of 2 nodes);
                                       --login makes a new node refuse root's login and let user "edge"
                                       in with sudo: LOGIN sudo (no password) or sudo-password (the lab's
                                       password file, named in the inventory); root is the default
  status                               list the lab's nodes and whether they run
  down                                 remove every container, volume, network and rule of the lab
  crash NODE                           power a node off at once (no clean shutdown; disk kept)
  boot NODE                            power it on again
  reimage NODE [--login LOGIN]         replace a node by a blank one with the same name and address
                                       (new disk, new host keys, recorded in the lab's known_hosts),
                                       with its login or LOGIN
  partition NODE [--from NODE2] [--one-way]
                                       cut a node off from the other nodes (it keeps running), or
                                       from NODE2 only (the others still hear both); --one-way drops
                                       only what NODE sends (it still hears them)
  heal NODE [--from NODE2]             undo partition (without --from: every partition of NODE)
  pause NODE [--agent]                 freeze a whole node (cgroup freezer: a stalled SD card, memory
                                       pressure), or stop only its failover agent (SIGSTOP)
  resume NODE                          undo pause
  starve NODE [--cpus F]               starve a node of CPU: each cgroup of its processes (its agent, sshd,
                                       dockerd, each container) may use F of one core (default 0.05): all
                                       of it runs, late (a runaway process, a throttled Pi)
  unstarve NODE                        undo starve
  shape NODE --rate R [--loss L] [--delay D]
                                       slow a node's link both ways (R like 10mbit, L in %, D like 20ms;
                                       delay needs the kernel's netem queue)
  unshape NODE                         undo shape
  registry                             start the lab's private registry (TLS with its own CA, a login) and
                                       print its address, CA file and login, for edge-ha:registries
  push ARCHIVE NAME:TAG                copy a docker save archive into that registry (starts it);
                                       prints the reference for image:
  base-image                           make edge-ha/debian:bookworm on this machine's engine (debootstrap,
                                       no registry): the FROM of the Dockerfiles in examples/

Options:
  --lab NAME          which lab (default: $EDGE_HA_LAB or "lab"); several can coexist
  --subnet A.B.C      the lab network's /24 (default: $EDGE_HA_LAB_SUBNET or 10.77.0)
  --inventory FILE    where up writes the inventory (default: inventory/<lab>.yaml)
  -h, --help          this text
`;

/** The `edge-ha` subcommand group of this file. */
export async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      nodes: { type: "string" },
      witness: { type: "boolean" },
      lab: { type: "string" },
      subnet: { type: "string" },
      inventory: { type: "string" },
      rate: { type: "string" },
      delay: { type: "string" },
      loss: { type: "string" },
      from: { type: "string" },
      "one-way": { type: "boolean" },
      agent: { type: "boolean" },
      cpus: { type: "string" },
      login: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  const [command, nodeName, ...rest] = positionals;
  // push takes two arguments; every other command at most one.
  const extra = command === "push" ? rest.slice(1) : rest;
  if (values.help || !command) {
    process.stdout.write(help);
    return;
  }
  if (extra.length) throw new UsageError(`unexpected arguments: ${extra.join(" ")}`);
  const lab = labOptions({ name: values.lab, subnetPrefix: values.subnet, inventoryFile: values.inventory });
  const node = () => {
    if (!nodeName) throw new UserError(`${command} needs a node name, e.g.: lab ${command} node1`);
    return nodeName;
  };

  switch (command) {
    case "up": {
      const count = values.nodes === undefined ? 3 : Number(values.nodes);
      if (values.nodes !== undefined && !/^\d+$/.test(values.nodes)) throw new UserError(`--nodes: expected a whole number, found "${values.nodes}"`);
      const started = Date.now();
      const nodes = await up(lab, count, { witness: values.witness, logins: parseLogins(values.login) });
      for (const n of nodes) console.log(`${n.name}\t${n.address}\t${n.running ? "running" : "down"}`);
      console.log(`lab "${lab.name}" up with ${nodes.length} nodes in ${((Date.now() - started) / 1000).toFixed(1)} s; inventory: ${lab.inventoryFile}`);
      return;
    }
    case "status": {
      const nodes = await listNodes(lab);
      if (nodes.length === 0) console.log(`lab "${lab.name}" has no nodes`);
      for (const n of nodes) {
        const processes = n.running ? await nodeProcesses(n.container) : [];
        const stopped = processes.filter((p) => p.stopped);
        const paused = processes.some((p) => p.comm === "sshd" && frozen(p.pid)) ? " (paused)" : stopped.length ? ` (paused: ${[...new Set(stopped.map((p) => p.comm))].join(", ")})` : "";
        console.log(`${n.name}\t${n.address}\t${n.running ? "running" : "down"}${paused}${n.running && starved(lab, n.name) ? " (starved of CPU)" : ""}`);
      }
      return;
    }
    case "down": {
      const removed = await down(lab);
      console.log(`lab "${lab.name}" removed: ${removed.containers} containers, ${removed.volumes} volumes, ${removed.networks} networks`);
      return;
    }
    case "crash": {
      const at = await crash(lab, node());
      console.log(`${node()} powered off at ${new Date(at).toISOString()}`);
      return;
    }
    case "boot":
      return boot(lab, node());
    case "reimage": {
      const login = values.login === undefined ? undefined : parseLogin("--login", values.login);
      const n = await reimage(lab, node(), login);
      console.log(`${n.name}\t${n.address}\tre-imaged: blank, new host keys`);
      return;
    }
    case "partition":
      return partition(lab, node(), { from: values.from, oneWay: values["one-way"] });
    case "heal":
      return heal(lab, node(), values.from);
    case "pause": {
      const at = await pause(lab, node(), values.agent);
      console.log(`${values.agent ? `${node()}'s failover agent` : node()} stopped at ${new Date(at).toISOString()}; to undo: lab resume ${node()}`);
      return;
    }
    case "resume":
      return resume(lab, node());
    case "starve": {
      const cpus = values.cpus === undefined ? undefined : Number(values.cpus);
      const at = await starve(lab, node(), cpus);
      console.log(`${node()} starved of CPU at ${new Date(at).toISOString()}; to undo: lab unstarve ${node()}`);
      return;
    }
    case "unstarve":
      return unstarve(lab, node());
    case "shape": {
      if (!values.rate) throw new UserError(`shape needs --rate, e.g.: lab shape ${node()} --rate 10mbit`);
      const loss = values.loss === undefined ? undefined : Number(values.loss);
      return shape(lab, node(), { rate: values.rate, delay: values.delay, loss });
    }
    case "unshape":
      return unshape(lab, node());
    case "registry": {
      const r = await startRegistry(lab);
      console.log(`registry ${r.address} (TLS; CA ${r.ca}; user ${r.username}, password in ${path.join(path.dirname(path.dirname(r.ca)), "password")})`);
      return;
    }
    case "base-image":
      await ensureBaseImage();
      console.log(`${baseImage} ready`);
      return;
    case "push": {
      if (!nodeName || !rest[0]) throw new UserError("push needs an archive and a name, e.g.: lab push kv.tar kv:7");
      console.log(await pushArchive(lab, nodeName, rest[0]));
      return;
    }
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

/** --login of up: NODE=LOGIN pairs, comma-separated. */
export function parseLogins(text: string | undefined): Record<string, LabLogin> {
  if (text === undefined) return {};
  return Object.fromEntries(
    text.split(",").map((pair) => {
      const [node, login] = pair.split("=");
      if (!node || login === undefined) throw new UserError(`--login: expected NODE=LOGIN pairs such as node2=sudo,node3=sudo-password, found "${pair}"`);
      return [node, parseLogin(`--login ${node}`, login)];
    }),
  );
}

function parseLogin(what: string, login: string): LabLogin {
  if (!labLogins.includes(login as LabLogin)) throw new UserError(`${what}: expected one of ${labLogins.join(", ")}, found "${login}"`);
  return login as LabLogin;
}
