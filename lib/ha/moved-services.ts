import type { Inventory } from "../config/inventory";
import type { ServiceSettings } from "../config/settings";
import { UserError } from "../log";
import { locate, specOf, type ServiceSpec } from "./service-container";

/**
 * A criu service whose settings changed while it runs on another host than
 * its primary (moved there by migrate or a failover). `pulumi up` applies new
 * settings by starting the service afresh on its primary, and the copy that
 * runs elsewhere would go on: two copies (the agents then fence one, not
 * always the new one; with failover "manual" both stay). Every such service
 * is named, with the fix, before any change. A service whose settings did not
 * change is adopted where it runs, as before.
 *
 * `specs` are the specs `pulumi up` would give the services (by name), `where`
 * finds the hosts a service runs on and `running` reads the spec a running
 * copy was started with (lib/ha/service-container locate and specOf).
 */
export async function checkMovedServices(
  services: ServiceSettings[],
  specs: Record<string, ServiceSpec>,
  inventory: Inventory,
  stackFile: string,
  where: (inventory: Inventory, service: string) => Promise<{ name: string }[]> = locate,
  running: (host: { name: string }, service: string) => Promise<ServiceSpec> = (h, s) => specOf(inventory.hosts.find((x) => x.name === h.name)!, s),
): Promise<void> {
  const problems: string[] = [];
  await Promise.all(
    services.map(async (s, i) => {
      if (s.mode !== "criu" || !s.primary || !specs[s.name]) return;
      const on = await where(inventory, s.name);
      if (on.length !== 1 || on[0].name === s.primary) return;
      const now = await running(on[0], s.name).catch(() => undefined);
      if (now && canonical(now) === canonical(specs[s.name])) return;
      problems.push(
        `${stackFile}: edge-ha:services[${i}]: the settings of ${s.name} changed, and pulumi up applies them by starting it afresh on its primary ${s.primary}; ` +
          `but it runs on ${on[0].name} (moved there by migrate or a failover), which would leave two copies. ` +
          `Move it back first (edge-ha service migrate ${s.name} --to ${s.primary}), then pulumi up`,
      );
    }),
  );
  if (problems.length) throw new UserError(problems.sort().join("\n"));
}

/** JSON with its keys in order, so that two specs compare by content. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value);
}
