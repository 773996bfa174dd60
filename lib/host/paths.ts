/*
 * Where edge-ha keeps things on a host, and the rsync daemon's names: what
 * the components install (modules/) and the actions use (lib/ha) alike.
 */

/** edge-ha's own state on a host. */
export const hostStateDir = "/var/lib/edge-ha";

/** The rsync daemon every host runs (modules/rsync-daemon): its port, checkpoint module and user. */
export const rsyncDefaults = { port: 873, module: "checkpoints", user: "edge-ha" } as const;

/** Where checkpoint images received by the daemon are kept on a host. */
export const checkpointsDir = `${hostStateDir}/checkpoints`;

/** The client's password file on every host, so a host can push to the others' daemons. */
export const rsyncPasswordFile = "/etc/edge-ha/rsync.password";
/** The port this cluster's rsync daemons listen on (edge-ha:rsyncPort), written by modules/rsync-daemon for the clients on the host. */
export const rsyncPortFile = "/etc/edge-ha/rsync-port";

/**
 * Checkpoints cross the network over SSH by default (edge-ha:checkpointTransport
 * ssh; modules/checkpoint-transport): each host runs an sshd of edge-ha's own
 * on `port`, with its own host key and the other hosts' keys, each allowed
 * only to run the rsync daemon's protocol (the same modules, uid and hosts
 * allow as the rsync daemon). In `dir`: host_key, client_key (this host's
 * keys), sshd_config, authorized_keys, known_hosts (the other hosts'), and
 * `mode` ("ssh PORT"), the switch every sender here reads: without it,
 * checkpoints go to the rsync daemon, in clear.
 */
export const checkpointTransfer = { dir: "/etc/edge-ha/transfer", port: 8722, modeFile: "/etc/edge-ha/transfer/mode", sshd: "/usr/local/lib/edge-ha/transfer-sshd" } as const;

/**
 * The read-only module `artifacts`: files one host made for the others (the
 * CRIU built on the first host of an architecture), pulled peer to peer and
 * checked against the sha256 their maker reported over SSH.
 */
export const artifacts = { module: "artifacts", dir: `${hostStateDir}/artifacts` } as const;

/**
 * Set on both ends of a planned migration while it runs: the failover agents
 * leave the service alone meanwhile (it runs nowhere between the dump and the
 * restore, and its target holds a created copy). A mark older than two
 * minutes is ignored, so a migrator that died cannot hold them off.
 */
export const movingMarkPrefix = "/run/edge-ha-moving-";
export const movingMark = (service: string) => `${movingMarkPrefix}${service}`;

/**
 * Written by the failover agent while a service's healthcheck has passed
 * since the service started on this host (agent/health.go, through
 * edge-ha-ctl health): "passed <ms the check began> <wait ms>" after each passing check,
 * "failing" after a failed one. The sync loop then sends only checkpoints a
 * later check vouches for, and none while it fails, so the standby holds the
 * last state known to serve. No mark: the sync loop sends as it takes.
 */
export const healthMarkPrefix = "/run/edge-ha-health-";

/**
 * Written by a service's sync loop while it holds the service's copy paused
 * because its standby's newest checkpoint is older than the service's maxLag
 * (host/edge-ha-sync, lag guard): the moment (ms) the pause began. Its
 * healthcheck is not run meanwhile (a paused copy answers nothing, and is
 * not failing: replaced from the standby's old checkpoint, it would lose the
 * very writes the pause keeps).
 */
export const lagPauseMarkPrefix = "/run/edge-ha-lag-paused-";
export const lagPauseMark = (service: string) => `${lagPauseMarkPrefix}${service}`;

/**
 * Written by `edge-ha node drain` on the node it drains, removed by `undrain`:
 * the mark is the only state. The node's failover agent says it in its
 * heartbeats, and the controllers make it no standby and no failover target
 * (agent/drain.go); pulumi up starts nothing new there. pulumi destroy
 * removes it (modules/host-tools/remove.sh).
 */
export const drainedMark = `${hostStateDir}/drained`;

/** Where a host keeps the settings of the services it syncs: NAME.spec.json, NAME.run (docker create arguments), NAME.sync. */
export const servicesDir = "/etc/edge-ha/services";

/** Where a host keeps the virtual address of each service that may run on it (host/vip.sh): a file NAME holding it. */
export const vipsDir = "/etc/edge-ha/vips";

/** Where a primary stages the checkpoints its sync loop sends (a folder per service). */
export const syncOutDir = `${hostStateDir}/sync-out`;

/**
 * edge-ha's shell on a host (modules/host-tools): the function library every
 * host script runs with, and the two commands built on it.
 */
export const hostTools = {
  library: "/usr/local/lib/edge-ha/library.sh",
  sync: "/usr/local/sbin/edge-ha-sync",
  ctl: "/usr/local/sbin/edge-ha-ctl",
} as const;

/**
 * CRIU's configuration files edge-ha writes (modules/criu). CRIU reads, for
 * every dump and restore runc drives (Docker's too): default.conf, then the
 * file named by CRIU_CONFIG_FILE, then runc.conf, a later setting overriding
 * an earlier one. So the network lock goes in default.conf, where a dump that
 * leaves the service running can set another (host/checkpoint.sh).
 */
export const criuConfigFiles = {
  runc: "/etc/criu/runc.conf",
  default: "/etc/criu/default.conf",
  leaveRunning: "/etc/criu/edge-ha-leave-running.conf",
} as const;

/*
 * CRIU restores established TCP connections only at the address they had, so
 * a service's container has the same address on every host: on a bridge
 * network of edge-ha's own, at an address made of its host port (unique in a
 * stack). Docker's default bridge hands out addresses in start order, and a
 * swarm task there would push the service to another.
 */
export const serviceNetwork = { name: "edge-ha", subnet: "172.31.0.0/16", bridge: "edge-ha0" } as const;

/**
 * The host's edge-ha marker: an id written when edge-ha's host tools are
 * installed (modules/host-tools). A re-imaged host (new SD card, new VM
 * image) no longer has it, which is how `pulumi up` tells it from a host
 * that is merely unreachable (lib/host/identity.ts).
 */
export const hostMarker = "/etc/edge-ha/host-id";
