import { readFileSync } from "node:fs";
import * as path from "node:path";
import { artifacts, checkpointTransfer, checkpointsDir, criuConfigFiles, hostStateDir, healthMarkPrefix, hostTools, lagPauseMarkPrefix, movingMarkPrefix, rsyncDefaults, rsyncPasswordFile, rsyncPortFile, serviceNetwork, servicesDir, syncOutDir, vipsDir } from "./paths";

/*
 * The shell that runs on the hosts lives in files: host/*.sh (functions every
 * host script may call) and the host scripts of each component beside it
 * (modules/<component>/*.sh). A script gets its values from the environment
 * or its arguments; the names and places below are the only values every
 * one of them shares.
 */

/** A file of host/ (the shell that runs on the hosts, checked by shellcheck), as text. */
export function hostFile(name: string): string {
  return readFileSync(path.join(__dirname, "..", "..", "host", name), "utf8");
}

/** The names and places of lib/host/paths.ts, as the shell variables the host files read. */
export const hostVariables: Record<string, string> = {
  EDGE_HA_STATE: hostStateDir,
  EDGE_HA_CHECKPOINTS: checkpointsDir,
  EDGE_HA_ARTIFACTS: artifacts.dir,
  EDGE_HA_ARTIFACTS_MODULE: artifacts.module,
  EDGE_HA_SERVICES: servicesDir,
  EDGE_HA_VIPS: vipsDir,
  EDGE_HA_SYNC_OUT: syncOutDir,
  EDGE_HA_SYNC: hostTools.sync,
  EDGE_HA_MOVING_MARK: movingMarkPrefix,
  EDGE_HA_HEALTH_MARK: healthMarkPrefix,
  EDGE_HA_LAG_PAUSE_MARK: lagPauseMarkPrefix,
  // Seconds a checkpoint's runc/CRIU may take before it is killed and the container thawed (host/checkpoint.sh).
  EDGE_HA_DUMP_TIMEOUT: "120",
  EDGE_HA_CRIU_LEAVE_RUNNING_CONF: criuConfigFiles.leaveRunning,
  EDGE_HA_NETWORK: serviceNetwork.name,
  EDGE_HA_SUBNET: serviceNetwork.subnet,
  EDGE_HA_BRIDGE: serviceNetwork.bridge,
  RSYNC_USER: rsyncDefaults.user,
  RSYNC_MODULE: rsyncDefaults.module,
  RSYNC_PASSWORD_FILE: rsyncPasswordFile,
  RSYNC_PORT_FILE: rsyncPortFile,
  EDGE_HA_TRANSFER: checkpointTransfer.dir,
  EDGE_HA_TRANSFER_MODE: checkpointTransfer.modeFile,
  EDGE_HA_TRANSFER_SSHD: checkpointTransfer.sshd,
};

/**
 * The function library of every host script: the variables above, then
 * host/prelude.sh (apt, services, waits), host/checkpoint.sh (a service's
 * checkpoints), host/service.sh (a service's container and its sync) and
 * host/vip.sh (a service's virtual address).
 * Installed on each host as hostTools.library (modules/host-tools) for
 * edge-ha-sync and edge-ha-ctl; sent ahead of every other script.
 */
export const hostLibrary =
  "# shellcheck shell=bash\n# edge-ha's host library, written by edge-ha (lib/host/shell.ts): do not edit.\n" +
  Object.entries(hostVariables).map(([k, v]) => `${k}=${shellQuote(v)}\n`).join("") +
  ["prelude.sh", "checkpoint.sh", "service.sh", "vip.sh"].map(hostFile).join("\n");

/** A host script that carries the library: the library, then `body` (the operator's commands, and what installs the library). */
export function hostScript(body: string): string {
  return `${hostLibrary}\n${body.trim()}\n`;
}

/**
 * A host script from a file of a component (modules/<component>/<file>),
 * run with the library installed on the host (modules/host-tools, which every
 * component waits for). It does not carry the library: a change to the
 * library updates the hosts' copy only, not every command. A delete on a
 * host without the library has nothing of edge-ha's to remove (a re-imaged
 * host, a blank one): it does nothing.
 */
export function componentScript(componentDir: string, file: string, phase: "create" | "delete" = "create"): string {
  const library = hostTools.library;
  const missing =
    phase === "delete"
      ? `exit 0 # nothing of edge-ha's here`
      : `{ echo "edge-ha's host library ${library} is missing on $(hostname): 'pulumi up' installs it" >&2; exit 1; }`;
  return `[ -r ${library} ] || ${missing}
. ${library}
${readFileSync(path.join(componentDir, file), "utf8").trim()}
`;
}

/** Quotes a value for a POSIX shell. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
