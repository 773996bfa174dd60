import type { Host, Inventory } from "../config/inventory";
import { vipsDir } from "../host/paths";
import { sshExec } from "../host/ssh";

/*
 * A service's virtual address as the hosts hold it (host/vip.sh): what
 * `status` shows and the tests sample. Read from each host's interfaces,
 * not from any record of ours.
 */

export interface VipHolders {
  /** The service's address, as the hosts know it (undefined: no host has one for it). */
  address?: string;
  /** The hosts that hold it on an interface now: one when all is well. */
  holders: string[];
  /** Hosts that did not answer. */
  unknown: string[];
}

/** Which hosts of `inventory` hold `service`'s virtual address now. */
export async function vipHolders(inventory: Inventory, service: string): Promise<VipHolders> {
  // One round trip a host: its file for the service, then whether an interface holds that address.
  const script = `v=$(awk '$1 == "address" { print $2 }' ${vipsDir}/${service} 2>/dev/null); [ -n "$v" ] || exit 0; echo "$v"; [ -z "$(ip -o -4 addr show to "$v/32")" ] || echo held`;
  const answers = await Promise.all(
    inventory.hosts.map(async (h: Host) => {
      const r = await sshExec(h, script, { nothrow: true, connectTimeout: 2 });
      return { host: h.name, ok: r.exitCode === 0, lines: r.stdout.trim().split("\n").filter(Boolean) };
    }),
  );
  return {
    address: answers.find((a) => a.lines[0])?.lines[0],
    holders: answers.filter((a) => a.lines[1] === "held").map((a) => a.host),
    unknown: answers.filter((a) => !a.ok).map((a) => a.host),
  };
}
