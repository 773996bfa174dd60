import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { $ } from "zx";
import { progress } from "../log";
import { cacheDir } from "./image";

/*
 * The lab's Debian package cache: apt-cacher-ng on this machine, the apt
 * proxy of every lab node (as many sites give their machines one). Every
 * lab provisions blank nodes, and each node fetched the same indexes and
 * ~70 MB of packages from Debian's mirror: ~12 s for `apt-get update` and
 * ~10 s for Docker's packages, per node, in every lab. Through the cache,
 * after the first lab: ~3 s and under a second. A real site needs none of
 * it; the nodes stay blank (the proxy is a line of apt configuration).
 */

export const aptCachePort = 3142;
const folder = path.join(cacheDir, "apt");
const configTemplate = path.join(__dirname, "files", "apt-cache.conf");

/** Whether something answers as apt-cacher-ng on the port. */
async function answers(): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${aptCachePort}/acng-report.html`, { signal: AbortSignal.timeout(2000) })).ok;
  } catch {
    return false;
  }
}

/**
 * Starts the cache unless it runs; false (the nodes then go to the mirror
 * directly) when apt-cacher-ng is not installed (scripts/setup installs it)
 * or does not start.
 */
export async function ensureAptCache(): Promise<boolean> {
  if (await answers()) return true;
  const bin = (await $({ quiet: true, nothrow: true })`command -v apt-cacher-ng || ls /usr/sbin/apt-cacher-ng`).stdout.trim().split("\n")[0];
  if (!bin) {
    progress("apt-cacher-ng is not installed: the lab's nodes download Debian's packages from the mirror each time (scripts/setup installs it)");
    return false;
  }
  const conf = path.join(folder, "conf");
  const logs = path.join(folder, "log");
  for (const d of [conf, logs, path.join(folder, "packages")]) mkdirSync(d, { recursive: true });
  const text = readFileSync(configTemplate, "utf8").replace("@CACHE_DIR@", path.join(folder, "packages")).replace("@LOG_DIR@", logs).replace("@PORT@", String(aptCachePort));
  writeFileSync(path.join(conf, "acng.conf"), text);
  progress(`starting the lab's Debian package cache (apt-cacher-ng on port ${aptCachePort}, in ${folder})`);
  // It forks into the background and writes its pid file: stop it with kill $(cat /run/edge-ha-apt-cache.pid).
  const started = await $({ quiet: true, nothrow: true })`${bin} -c ${conf} ForeGround=0`;
  for (let i = 0; i < 50; i++) {
    if (await answers()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  progress(`apt-cacher-ng did not answer on port ${aptCachePort} (${(started.stderr || started.stdout).trim() || `see ${logs}`}): the lab's nodes download from Debian's mirror directly`);
  return false;
}

/** A node's apt configuration line for the cache, at the lab network's gateway (this machine). */
export function aptProxyLine(subnetPrefix: string): string {
  return `Acquire::http::Proxy "http://${subnetPrefix}.1:${aptCachePort}";`;
}
