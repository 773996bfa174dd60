import type { ClusterSettings } from "../../lib/config/settings";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { Host } from "../../lib/config/inventory";
import type { DockerSource } from "../../lib/config/versions";
import { hostKeyFrom, knownHostsName } from "../../lib/host/known-hosts";
import { componentScript } from "../../lib/host/shell";
import { toolsDir } from "../../lib/toolchain";
import { HostCommand, type HostConnection } from "../command";


export interface DockerEngineArgs {
  /** The inventory host: its SSH settings also serve the Docker provider. */
  host: Host;
  /** How to reach the host. */
  connection: pulumi.Input<HostConnection>;
  /** "debian": Debian's docker.io (default). "docker": Docker's own docker-ce packages from download.docker.com. */
  source?: DockerSource;
  /** Size at which a container's log file is rotated (default "10m"). */
  logMaxSize?: string;
  /** Rotated log files kept per container (default 3). */
  logMaxFiles?: number;
  /** More daemon.json settings, merged over the defaults. */
  daemonOptions?: Record<string, unknown>;
  /** Logins the provider pulls images with (RemoteImage), by registry address; keep passwords secret. */
  registryAuth?: { address: string; username: string; password: pulumi.Input<string> }[];
}

/** daemon.json as edge-ha writes it: experimental on (checkpoint/restore needs it), bounded logs. */
export function daemonConfig(args: Pick<DockerEngineArgs, "logMaxSize" | "logMaxFiles" | "daemonOptions">): Record<string, unknown> {
  return {
    experimental: true,
    "log-driver": "json-file",
    "log-opts": { "max-size": args.logMaxSize ?? "10m", "max-file": String(args.logMaxFiles ?? 3) },
    ...args.daemonOptions,
  };
}

const packages: Record<DockerSource, string> = {
  debian: "docker.io",
  docker: "docker-ce docker-ce-cli containerd.io",
};

/**
 * A Docker engine able to checkpoint and restore, running now and after every
 * reboot: the distro's systemd unit where the host has systemd, an edge-ha
 * supervised service otherwise (the lab nodes).
 *
 * Removal stops and removes the engine only when edge-ha installed it;
 * /var/lib/docker (images, volumes) is always left, as it may hold user data.
 */
export class DockerEngine extends pulumi.ComponentResource {
  /** The engine's version, as `docker version` reports it. */
  readonly version: pulumi.Output<string>;
  /**
   * A @pulumi/docker provider for this engine, reached over SSH with the
   * inventory's key and known_hosts (strict host-key checking). It connects
   * only when a resource needs it: such resources depend on this component,
   * so they wait for the engine (and are skipped, not failed, when the host
   * is unreachable).
   */
  readonly provider: docker.Provider;

  constructor(name: string, args: DockerEngineArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edge-ha:node:DockerEngine", name, {}, opts);
    const source = args.source ?? "debian";
    const engine = new HostCommand(
      `${name}-engine`,
      {
        connection: args.connection,
        environment: {
          SOURCE: source,
          PACKAGES: packages[source],
          DAEMON_JSON: JSON.stringify(daemonConfig(args), null, 2),
          // The Docker provider reaches the engine over SSH as the login (`docker system dial-stdio`): a login through sudo joins the docker group.
          ...(args.host.ssh.become === "sudo" ? { DOCKER_GROUP_USER: args.host.ssh.user } : {}),
        },
        create: componentScript(__dirname, "install.sh"),
        delete: componentScript(__dirname, "remove.sh", "delete"),
      },
      { parent: this },
    );
    this.version = engine.stdout;
    const { ssh } = args.host;
    this.provider = new docker.Provider(
      `${name}-docker`,
      {
        host: `ssh://${ssh.user}@${args.host.address}:${ssh.port}`,
        sshOpts: dockerSshOptions(args.host),
        // Secret as a whole: a provider's nested inputs travel as one JSON text, which loses a secret inside it.
        ...(args.registryAuth?.length ? { registryAuth: pulumi.secret(args.registryAuth) } : {}),
      },
      { parent: this },
    );
    this.registerOutputs({ version: this.version });
  }
}

/** ssh options of the Docker provider for a host: the inventory's key only, its host key only, never a prompt. */
export function dockerSshOptions(host: Host): string[] {
  return [
    "-i", host.ssh.privateKeyFile,
    "-o", "IdentitiesOnly=yes",
    "-o", "BatchMode=yes",
    "-o", "StrictHostKeyChecking=yes",
    "-o", `UserKnownHostsFile=${pinnedKnownHosts(host)}`,
    "-o", "ConnectTimeout=10",
  ];
}

/**
 * A known_hosts file holding only the host's key from the inventory's
 * known_hosts, named by its content, in edge-ha's tools folder. The provider's
 * ssh options are stored in the stack and compared at every run: with the
 * inventory's own path in them, every checkout of the project in another
 * folder (a GitOps pipeline's fresh tree) was an update of every host's
 * provider. This name changes only with the host's key. Without a key there,
 * the inventory's file (the host's commands say what is missing).
 */
export function pinnedKnownHosts(host: Host): string {
  const key = hostKeyFrom(readFileSync(host.ssh.knownHostsFile, "utf8"), host.address, host.ssh.port);
  if (!key) return host.ssh.knownHostsFile;
  const line = `${knownHostsName(host.address, host.ssh.port)} ${key}\n`;
  const file = path.join(toolsDir, "known-hosts", createHash("sha256").update(line).digest("hex").slice(0, 20));
  if (!existsSync(file)) {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, line);
  }
  return file;
}

/** The registries' logins, passwords as secrets whatever the stack file holds. */
export function registryLogins(settings: Pick<ClusterSettings, "registries">): { address: string; username: string; password: pulumi.Output<string> }[] {
  return settings.registries.filter((r) => r.username && r.password).map((r) => ({ address: r.address, username: r.username!, password: pulumi.secret(r.password!) }));
}
