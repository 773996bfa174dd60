import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { Host } from "../../lib/config/inventory";
import type { DockerSource } from "../../lib/config/versions";
import { hostScript } from "../../lib/host/shell";
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
    const install =
      source === "docker"
        ? `apt_install ca-certificates curl
if [ ! -f /etc/apt/sources.list.d/docker.list ]; then
  . /etc/os-release
  install -m 0755 -d /etc/apt/keyrings
  curl -fsSL "https://download.docker.com/linux/$ID/gpg" -o /etc/apt/keyrings/docker.asc
  echo "deb [signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/$ID $VERSION_CODENAME stable" >/etc/apt/sources.list.d/docker.list
  apt-get update -qq
fi
apt_install ${packages.docker}`
        : `apt_install ${packages.debian}`;

    const engine = new HostCommand(
      `${name}-engine`,
      {
        connection: args.connection,
        environment: { DAEMON_JSON: JSON.stringify(daemonConfig(args), null, 2) },
        create: hostScript(`
${install}
mkdir -p /etc/docker
changed=0
printf '%s\\n' "$DAEMON_JSON" | write_if_changed /etc/docker/daemon.json 0644 && changed=1
if has_systemd; then
  systemctl enable -q docker
  if [ $changed = 1 ]; then systemctl restart docker; else systemctl start docker; fi
else
  service_install dockerd "$(command -v dockerd)"
  if [ $changed = 1 ]; then service_restart dockerd; else service_start dockerd; fi
fi
wait_for 60 "the Docker engine" docker info
if [ "$(docker info -f '{{.ExperimentalBuild}}')" != true ]; then
  echo "dockerd on $(hostname) runs without experimental features, so it cannot checkpoint; /etc/docker/daemon.json or its command line overrides them" >&2
  exit 1
fi
docker version -f '{{.Server.Version}}'`),
        delete: hostScript(`
if [ -e "$EDGE_HA_STATE/installed/${packages[source].split(" ")[0]}" ]; then
  if has_systemd; then systemctl disable -q --now docker docker.socket 2>/dev/null || true; else service_remove dockerd; fi
  rm -f /etc/docker/daemon.json
  apt_remove_ours ${packages[source]}
fi`),
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
      },
      { parent: this },
    );
    this.registerOutputs({ version: this.version });
  }
}

/** ssh options of the Docker provider for a host: the inventory's key only, its known_hosts only, never a prompt. */
export function dockerSshOptions(host: Host): string[] {
  return [
    "-i", host.ssh.privateKeyFile,
    "-o", "IdentitiesOnly=yes",
    "-o", "BatchMode=yes",
    "-o", "StrictHostKeyChecking=yes",
    "-o", `UserKnownHostsFile=${host.ssh.knownHostsFile}`,
    "-o", "ConnectTimeout=10",
  ];
}
