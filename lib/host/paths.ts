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
export const movingMark = (service: string) => `/run/edge-ha-moving-${service}`;
