import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { $ } from "zx";
import { UserError } from "../log";
import type { LabOptions } from "./lab";

/*
 * Packet captures of the lab network, with Debian's tcpdump on this machine
 * (the lab's bridge): what an attacker on a site's LAN would see. The tests
 * read them back to replay what they caught, or to look for what must never
 * travel in clear.
 */

/** The lab's bridge on this machine: the interface that holds its gateway (<subnet>.1). */
export async function labBridge(lab: LabOptions): Promise<string> {
  const line = (await $({ quiet: true })`ip -o -4 addr show to ${`${lab.subnetPrefix}.1/32`}`).stdout.trim();
  const name = line.split(/\s+/)[1];
  if (!name) throw new UserError(`no interface of this machine holds ${lab.subnetPrefix}.1: is lab ${lab.name} up?`);
  return name;
}

/** A capture under way: stop() ends it once tcpdump has written what it saw. */
export interface Capture {
  file: string;
  stop(): Promise<void>;
}

/** Starts tcpdump on the lab's bridge with a pcap `filter`, writing to `file` (each packet at once). */
export async function startCapture(lab: LabOptions, filter: string, file: string): Promise<Capture> {
  const tcpdump = spawn("tcpdump", ["-U", "-n", "-i", await labBridge(lab), "-w", file, filter], { stdio: ["ignore", "ignore", "pipe"] });
  let said = "";
  tcpdump.stderr.on("data", (d) => (said += d));
  // It says "listening on" once its filter is in place.
  for (let i = 0; i < 100 && !/listening on/.test(said); i++) {
    if (tcpdump.exitCode !== null) throw new UserError(`tcpdump could not capture on the lab's bridge: ${said.trim()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    file,
    stop: () =>
      new Promise<void>((resolve) => {
        if (tcpdump.exitCode !== null) return resolve();
        tcpdump.on("exit", () => resolve());
        tcpdump.kill("SIGINT");
      }),
  };
}

/** A TCP segment with data, as captured. */
export interface TcpSegment {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  payload: Buffer;
}

/** The TCP segments that carry data in a pcap file (Ethernet, IPv4; what tcpdump -w writes on a bridge). */
export function tcpSegments(file: string): TcpSegment[] {
  const pcap = readFileSync(file);
  if (pcap.length < 24) return [];
  const magic = pcap.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  const u32 = (at: number) => (le ? pcap.readUInt32LE(at) : pcap.readUInt32BE(at));
  const ip = (at: number) => [...pcap.subarray(at, at + 4)].join(".");
  const segments: TcpSegment[] = [];
  for (let at = 24; at + 16 <= pcap.length; ) {
    const length = u32(at + 8);
    const frame = at + 16;
    at = frame + length;
    if (pcap.readUInt16BE(frame + 12) !== 0x0800) continue; // IPv4 only
    const ipAt = frame + 14;
    const ihl = (pcap[ipAt] & 0x0f) * 4;
    if (pcap[ipAt + 9] !== 6) continue; // TCP only
    const total = pcap.readUInt16BE(ipAt + 2);
    const tcpAt = ipAt + ihl;
    const dataAt = tcpAt + (pcap[tcpAt + 12] >> 4) * 4;
    const end = Math.min(ipAt + total, at);
    if (dataAt >= end) continue;
    segments.push({ src: ip(ipAt + 12), dst: ip(ipAt + 16), sport: pcap.readUInt16BE(tcpAt), dport: pcap.readUInt16BE(tcpAt + 2), payload: Buffer.from(pcap.subarray(dataAt, end)) });
  }
  return segments;
}
