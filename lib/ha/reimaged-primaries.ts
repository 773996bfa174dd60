import type { Inventory } from "../config/inventory";
import type { ClusterSettings } from "../config/settings";
import type { HostIdentity } from "../host/identity";
import { UserError } from "../log";
import { locate } from "./service-container";

/**
 * A criu service whose primary was re-imaged while the service runs on
 * another host (moved there by migrate or a failover): starting it on the
 * blank primary, as `pulumi up` would, makes a second copy without its state.
 * Every such service is named, with the fix, before any change. `where`
 * finds the hosts a service runs on (lib/ha/service-container locate).
 */
export async function checkReimagedPrimaries(
  settings: Pick<ClusterSettings, "services">,
  inventory: Inventory,
  identities: Record<string, HostIdentity>,
  stackFile: string,
  where: (inventory: Inventory, service: string) => Promise<{ name: string }[]> = locate,
): Promise<void> {
  const problems: string[] = [];
  for (const [i, s] of settings.services.entries()) {
    if (s.mode !== "criu" || !s.primary || !identities[s.primary]?.reimaged) continue;
    const others = { ...inventory, hosts: inventory.hosts.filter((h) => h.name !== s.primary) };
    const elsewhere = (await where(others, s.name)).map((h) => h.name);
    if (elsewhere.length === 0) continue;
    problems.push(
      `${stackFile}: edge-ha:services[${i}].primary: ${s.primary} was re-imaged, and ${s.name} runs on ${elsewhere.join(", ")} (moved there by migrate or a failover); ` +
        `starting it on the blank ${s.primary} would make a second copy without its state. Set primary: ${elsewhere[0]} (and a standby other than it), then pulumi up`,
    );
  }
  if (problems.length) throw new UserError(problems.join("\n"));
}
