/*
 * What a proposed change would do, for a review: `pulumi preview --json`
 * read into resources changed per host, and said in Markdown for a pull
 * request's comment. Only operations, resource names and the names of the
 * properties that change go in: never a value, so no secret can reach the
 * comment, whatever the stack holds.
 */

/** One resource the preview would change. */
export interface PlannedChange {
  /** Pulumi's operation: create, update, replace, delete (and create-replacement, delete-replaced, read…). */
  op: string;
  type: string;
  name: string;
  /** The inventory host it belongs to (by its name's prefix), or undefined for the cluster's own. */
  host?: string;
  /** The properties whose change causes it (their names only). */
  properties: string[];
}

export interface ChangeReport {
  stack: string;
  /** The commit previewed, when known. */
  commit?: string;
  /** Resources by operation, as Pulumi counts them (same included). */
  counts: Record<string, number>;
  changes: PlannedChange[];
}

/** The operations that change nothing. */
const unchanged = new Set(["same", "read", "refresh"]);

/** A resource's name and type from its URN (urn:pulumi:STACK::PROJECT::TYPE::NAME). */
export function urnParts(urn: string): { type: string; name: string } {
  const parts = urn.split("::");
  const type = (parts[2] ?? "").split("$").pop() ?? "";
  return { type, name: parts.slice(3).join("::") };
}

/** The host a resource belongs to: edge-ha names a host's resources after it (node1-engine, node1-service-network). */
export function hostOf(name: string, hosts: string[]): string | undefined {
  // The longest name first: pi1 must not take pi10's resources.
  return [...hosts].sort((a, b) => b.length - a.length).find((h) => name === h || name.startsWith(`${h}-`) || name.includes(`-${h}-`));
}

/** Reads `pulumi preview --json` into a report; `hosts` are the inventory's host names. */
export function changeReport(previewJson: string, stack: string, hosts: string[], commit?: string): ChangeReport {
  const preview = JSON.parse(previewJson) as { steps?: { op: string; urn: string; diffReasons?: string[]; detailedDiff?: Record<string, unknown> }[]; changeSummary?: Record<string, number> };
  const changes = (preview.steps ?? [])
    .filter((s) => !unchanged.has(s.op))
    .map((s) => {
      const { type, name } = urnParts(s.urn);
      const properties = [...new Set([...(s.diffReasons ?? []), ...Object.keys(s.detailedDiff ?? {}).map((k) => k.split(/[.[]/)[0])])].sort();
      return { op: s.op, type, name, host: hostOf(name, hosts), properties };
    });
  return { stack, commit, counts: preview.changeSummary ?? {}, changes };
}

const opColumns = ["create", "update", "replace", "delete"] as const;
/** Pulumi's replacement steps counted as the replace they are part of. */
const columnOf = (op: string) => (op === "create-replacement" || op === "delete-replaced" ? "replace" : op);

/** The report in Markdown: a table of changes per host, then every change. */
export function reportMarkdown(r: ChangeReport): string {
  const title = `### edge-ha: pulumi preview of stack \`${r.stack}\`${r.commit ? ` at ${r.commit.slice(0, 12)}` : ""}`;
  if (r.changes.length === 0) return `${title}\n\nNo changes: the fleet is as this commit declares it (${r.counts.same ?? 0} resources unchanged).\n`;
  // A replacement is one change, however many steps Pulumi gives it (replace, create-replacement, delete-replaced).
  const byKey = new Map<string, PlannedChange>();
  for (const c of r.changes) {
    const key = `${c.name}\0${columnOf(c.op)}`;
    const seen = byKey.get(key);
    byKey.set(key, { ...c, op: columnOf(c.op), properties: [...new Set([...(seen?.properties ?? []), ...c.properties])].sort() });
  }
  const entries = [...byKey.values()];
  const rows = new Map<string, Record<string, number>>();
  for (const c of entries) {
    const row = rows.get(c.host ?? "(cluster)") ?? {};
    row[c.op] = (row[c.op] ?? 0) + 1;
    rows.set(c.host ?? "(cluster)", row);
  }
  const table = [
    `| host | ${opColumns.join(" | ")} |`,
    `|---|${opColumns.map(() => "---:").join("|")}|`,
    ...[...rows.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([host, row]) => `| ${host} | ${opColumns.map((c) => row[c] ?? "").join(" | ")} |`),
  ];
  const list = entries.map((c) => `- ${c.op} \`${c.name}\` (${c.type})${c.properties.length ? `: ${c.properties.join(", ")}` : ""}`);
  return `${title}\n\n${table.join("\n")}\n\n<details><summary>${list.length} change(s)</summary>\n\n${list.join("\n")}\n\n</details>\n`;
}
