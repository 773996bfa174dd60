import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { componentScript } from "../../lib/host/shell";
import { HostCommand, stagingPath } from "../command";
import type { ClusterNode } from "../host-facts";
import { defaultCriuVersion, knownSourceSha256, type CriuSource } from "../../lib/config/versions";
import { artifacts, rsyncDefaults } from "../../lib/host/paths";


/** How runc asks CRIU to treat what a container holds open (written to /etc/criu/runc.conf). */
export interface RuncCriuOptions {
  /** Checkpoint and restore established TCP connections instead of refusing (default true). */
  tcpEstablished?: boolean;
  /** Checkpoint file locks (default true). */
  fileLocks?: boolean;
  /**
   * Drop connections still in the kernel's accept queue instead of failing the
   * dump (default true). Without it, a service under load fails most
   * checkpoints ("In-flight connection"); the dropped clients retry their SYN.
   */
  skipInFlight?: boolean;
  /**
   * How CRIU keeps a dumped or restored service's connections quiet while it
   * works (default "nftables"): in process, with libnftables. CRIU's own
   * default runs iptables-restore, which took ~65 ms of each restore in the
   * lab (nftables: ~16 ms).
   */
  networkLock?: "nftables" | "iptables";
  /** More CRIU options, one per entry, as in a CRIU configuration file (e.g. "ext-unix-sk"). */
  extra?: string[];
}

export interface CriuArgs {
  /**
   * The hosts; each waits for its dependsOn, which must include its HostFacts
   * and its RsyncDaemon: the other hosts of an architecture pull the CRIU built
   * on the first one from that host's rsync daemon (module `artifacts`).
   */
  nodes: ClusterNode[];
  /** Port of the hosts' rsync daemons (default 873). */
  rsyncPort?: number;
  /**
   * "auto" (default): the distro's CRIU where it passes `criu check`, else the pinned version built from source.
   * "distro": the distro's only (fails when it does not pass). "build": always the pinned version.
   */
  source?: CriuSource;
  /** Pinned upstream version built when the distro's does not work (default "4.2.1"). */
  version?: string;
  /** sha256 of `criu_<version>.orig.tar.xz` (required when version is not the default). */
  sourceSha256?: string;
  /** Debian mirror to fetch packages and the source tarball from (default http://deb.debian.org/debian). */
  mirror?: string;
  runc?: RuncCriuOptions;
  /**
   * A folder on this machine (the one that runs pulumi; a leading ~ is its
   * user's home) where the CRIU edge-ha builds is kept, per version,
   * architecture and patch: the next blank or re-imaged first host of that
   * architecture gets it from there instead of building (minutes on a Pi),
   * if it passes `criu check` there. Undefined: no cache.
   */
  cache?: string;
}


/** What the built binary links against (Debian package names), also needed where it is shipped to. */
const runtimePackages = "libbsd0 libgnutls30 libnftables1 libprotobuf-c1 libnl-3-200 libnet1 libuuid1 iptables";
const buildPackages =
  "build-essential pkgconf libbsd-dev libcap-dev libgnutls28-dev libnet1-dev libnftables-dev libnl-3-dev " +
  "libprotobuf-c-dev libprotobuf-dev protobuf-c-compiler protobuf-compiler python3-protobuf uuid-dev curl xz-utils patch";

/** Where the first host of an architecture stages its CRIU (stage.sh), in the rsync daemon's read-only `artifacts` module. */
const stage = `${artifacts.dir}/criu`;
/**
 * Applied to the CRIU edge-ha builds (not to a distro's): CRIU polls a
 * freezing cgroup every 100 ms, so about half the checkpoints in the lab
 * froze the service 100 ms longer than the freeze took (a few ms). The patch
 * polls after 1 ms, doubling up to the same 100 ms.
 */
const buildPatch = readFileSync(path.join(__dirname, "freeze-poll.patch"), "utf8");
const buildPatchSha256 = createHash("sha256").update(buildPatch).digest("hex");

/** Where the cache's offer lands on the builder (stage.sh removes it). */
const offeredPath = "/var/tmp/edge-ha-criu.offered";

/** A script of this machine's cache steps: cache-ssh.sh (the SSH set-up), then the step. */
function cacheScript(step: "cache-offer.sh" | "cache-keep.sh"): string {
  return [readFileSync(path.join(__dirname, "cache-ssh.sh"), "utf8"), readFileSync(path.join(__dirname, step), "utf8")].join("\n");
}

/**
 * The cache steps' environment: the builder's connection as edge-ha's own
 * (the private key a secret), the cache folder as the setting says (not
 * expanded here: another operator's home changes no input), the binary's name.
 */
function cacheEnvironment(builder: ClusterNode, cache: string, binaryName: string): pulumi.Output<Record<string, string>> {
  return pulumi.output(builder.connection).apply((c): Record<string, string> => ({
    ADDRESS: c.host, PORT: String(c.port), LOGIN: c.user, HOST_KEY: c.hostKey, HOST_NAME: c.name, PRIVATE_KEY: c.privateKey as string, CACHE: cache, NAME: binaryName,
  }));
}

/** The first words of every CRIU configuration file edge-ha writes: how install.sh and remove.sh know theirs. */
const written = "# Written by edge-ha:";

/** The lines of /etc/criu/runc.conf for these options (the network lock is in default.conf: criuDefaultConfig). */
export function runcConfig(options: RuncCriuOptions = {}): string {
  const lines = [`${written} options runc passes to CRIU on docker checkpoint/restore.`];
  if (options.tcpEstablished ?? true) lines.push("tcp-established");
  if (options.fileLocks ?? true) lines.push("file-locks");
  if (options.skipInFlight ?? true) lines.push("skip-in-flight");
  lines.push(...(options.extra ?? []));
  return lines.join("\n") + "\n";
}

/**
 * /etc/criu/default.conf: the network lock of every dump and restore. Not in
 * runc.conf, which CRIU reads last: there it would override the sync's own
 * (criuLeaveRunningConfig).
 */
export function criuDefaultConfig(options: RuncCriuOptions = {}): string {
  return `${written} how CRIU keeps a service's network quiet while it dumps or restores it.\nnetwork-lock ${options.networkLock ?? "nftables"}\n`;
}

/**
 * What a checkpoint that leaves the service running reads (host/checkpoint.sh
 * checkpoint_leave_running: the sync's, every interval): no network lock. The
 * lock drops every packet to the service while CRIU dumps it, and a client's
 * SYN dropped is sent again only 1, 3, 7 s later; at a 1 s interval that fell
 * on the next dumps again and again (a lab's client at a vip, 60 s, no move:
 * 32 waits over 0.9 s, the longest 7.2 s; without the lock none over 139 ms).
 * The lock keeps a dump's connections consistent for a restore that goes on
 * from them; a synced checkpoint is restored only after its node died, when
 * its clients' connections cannot go on anyway (they are a round behind).
 */
export const criuLeaveRunningConfig = `${written} a checkpoint that leaves the service running (edge-ha's sync) takes no network lock.\nnetwork-lock skip\n`;

/**
 * A CRIU that passes `criu check` on every node's kernel. Per architecture,
 * the first node of that architecture decides: the distro's package when it
 * passes there, otherwise the pinned version built from Debian's source on
 * that node, once. The chosen binary is staged there and shipped to the other
 * nodes of the architecture (checked by sha256), not rebuilt on each.
 * Removal takes away the binary, runc.conf and packages edge-ha installed.
 */
export class Criu extends pulumi.ComponentResource {
  /** Per host: where its CRIU came from ("distro <version>" or "built <version>"). */
  readonly origins: Record<string, pulumi.Output<string>> = {};

  constructor(name: string, args: CriuArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edge-ha:node:Criu", name, {}, opts);
    const source = args.source ?? "auto";
    const version = args.version ?? defaultCriuVersion;
    const sha256 = args.sourceSha256 ?? knownSourceSha256[version];
    if (!sha256) throw new pulumi.ResourceError(`CRIU ${version}: expected a version with a known sha256 (${Object.keys(knownSourceSha256).join(", ")}) or sourceSha256 for its tarball, found neither`, this);
    const mirror = args.mirror ?? "http://deb.debian.org/debian";

    const byArch = new Map<string, ClusterNode[]>();
    for (const node of args.nodes) byArch.set(node.host.arch, [...(byArch.get(node.host.arch) ?? []), node]);

    for (const [arch, nodes] of byArch) {
      const builder = nodes[0];
      // A login through sudo gets the offer in its home, where no other user can change it before the stage checks it.
      const offeredAt = stagingPath(builder.host, offeredPath);
      // The cache's steps run here and reach the builder as edge-ha does (its key, its host key only).
      const cacheEnv = args.cache === undefined ? undefined : cacheEnvironment(builder, args.cache, `criu-${version}-${arch}-${buildPatchSha256.slice(0, 12)}`);
      const offered =
        cacheEnv &&
        new command.local.Command(
          `${name}-${arch}-cache-offer`,
          { create: cacheScript("cache-offer.sh"), interpreter: ["/bin/bash", "-c"], environment: pulumi.output(cacheEnv).apply((env) => ({ ...env, OFFERED: offeredAt })), logging: "stderr", addPreviousOutputInEnv: false },
          { parent: this, dependsOn: builder.dependsOn },
        );
      const staged = new HostCommand(
        `${name}-${arch}-stage`,
        {
          connection: builder.connection,
          environment: {
            SOURCE: source, VERSION: version, SHA256: sha256, MIRROR: mirror, RUNTIME_PACKAGES: runtimePackages, BUILD_PACKAGES: buildPackages, STAGE: stage, PATCH: buildPatch, PATCH_SHA256: buildPatchSha256,
            // What was offered, by its sha256: a new offer runs the stage again, which takes it or leaves it, and removes it.
            ...(offered ? { OFFERED: offeredAt, OFFERED_SHA256: pulumi.unsecret(offered.stdout) } : {}),
          },
          triggers: [source, version, sha256, buildPatchSha256],
          create: componentScript(__dirname, "stage.sh"),
          delete: componentScript(__dirname, "unstage.sh", "delete"),
        },
        { parent: this, dependsOn: [...(builder.dependsOn ?? []), ...(offered ? [offered] : [])] },
      );
      const [origin, binarySha256] = [0, 1].map((i) => staged.stdout.apply((s) => s.split("\n")[i] ?? ""));
      if (cacheEnv) {
        new command.local.Command(
          `${name}-${arch}-cache-keep`,
          {
            create: cacheScript("cache-keep.sh"),
            interpreter: ["/bin/bash", "-c"],
            environment: pulumi.all([cacheEnv, origin, binarySha256]).apply(([env, o, sha]) => ({ ...env, ORIGIN: o, BINARY_SHA256: sha, STAGE: stage })),
            logging: "stderr",
            addPreviousOutputInEnv: false,
          },
          { parent: this, dependsOn: [staged] },
        );
      }

      for (const node of nodes) {
        const installed = new HostCommand(
          `${name}-${node.host.name}`,
          {
            connection: node.connection,
            environment: {
              ORIGIN: origin,
              CRIU_SHA256: binarySha256,
              // Where the binary is: staged here, or pulled from the builder's rsync daemon.
              FROM_HOST: node === builder ? "" : builder.host.address,
              RSYNC_PORT: String(args.rsyncPort ?? rsyncDefaults.port),
              RUNC_CONF: runcConfig(args.runc),
              DEFAULT_CONF: criuDefaultConfig(args.runc),
              LEAVE_RUNNING_CONF: criuLeaveRunningConfig,
              RUNTIME_PACKAGES: runtimePackages,
              STAGE: stage,
            },
            create: componentScript(__dirname, "install.sh"),
            delete: componentScript(__dirname, "remove.sh", "delete"),
          },
          { parent: this, dependsOn: [staged, ...(node.dependsOn ?? [])] },
        );
        this.origins[node.host.name] = installed.stdout.apply((s) => s.split("\n")[0]);
      }
    }
    this.registerOutputs({ origins: this.origins });
  }
}
