import type { NemesisReport } from "./nemesis";
import { escape, table } from "./report";

/*
 * What a nemesis run found, as text (the command's output) and as a page
 * with its timeline: faults and running copies per node, the client's
 * answers, and every violation where it happened.
 */

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : undefined;
};
const ms = (v: number | undefined) => (v === undefined ? "-" : `${Math.round(v)} ms`);

/** Faults by kind: how many, time to serve again after they ended and the longest gap they caused (p50/p99). */
export function faultRows(r: NemesisReport): string[][] {
  const kinds = [...new Set(r.faults.map((f) => f.kind))].sort();
  const row = (label: string, idx: number[]) => {
    const again = idx.map((i) => r.check.servedAgainMs[i]).filter((v): v is number => v !== undefined);
    const gaps = idx.map((i) => r.check.longestGapMs[i]);
    return [label, String(idx.length), `${ms(percentile(again, 50))} / ${ms(percentile(again, 99))}`, `${ms(percentile(gaps, 50))} / ${ms(percentile(gaps, 99))}`];
  };
  return [...kinds.map((k) => row(k, r.faults.flatMap((f, i) => (f.kind === k ? [i] : [])))), row("all", r.faults.map((_, i) => i))];
}

export function renderNemesisText(r: NemesisReport): string {
  const count = (kind: string) => r.check.violations.filter((v) => v.kind === kind).length;
  const lines = [
    `nemesis seed ${r.seed}: ${r.faults.length} faults in ${(r.durationMs / 60000).toFixed(1)} min on ${r.service} (sync interval ${r.intervalMs} ms${r.maxLagMs !== undefined ? `, maxLag ${r.maxLagMs} ms` : ""}); ${r.client.requests} requests, ${r.client.failed} failed`,
    "",
    table(["fault", "count", "served again after it ended p50 / p99", "longest gap p50 / p99"], faultRows(r)),
    "",
    `violations: two copies ${count("two copies")}, lost writes ${count("lost writes")} (acknowledged writes lost in all, within the interval or not: ${r.check.lostWrites}), not served again ${count("not served again")}`,
    ...r.check.violations.map((v) => `  at ${(v.at / 1000).toFixed(1)} s: ${v.kind}: ${v.message}`),
  ];
  if (r.check.violations.length) lines.push(`replay: edge-ha bench nemesis --seed ${r.seed} --minutes ${r.durationMs / 60000} --faults ${r.kinds.join(",")}`);
  return lines.join("\n");
}

const colours: Record<string, string> = {
  crash: "#111827",
  partition: "#7c3aed",
  "pair-partition": "#a78bfa",
  "one-way": "#db2777",
  "pause-node": "#d97706",
  "pause-agent": "#fbbf24",
  "starve-node": "#0ea5e9",
};

const serviceColours = ["#16a34a", "#0891b2", "#65a30d", "#0d9488", "#4d7c0f"];

/** The services the sampler watched, the client's first. */
function watchedServices(r: NemesisReport): string[] {
  return [r.service, ...[...new Set(r.samples.flatMap((s) => Object.keys(s.copies)))].filter((s) => s !== r.service).sort()];
}

function timeline(r: NemesisReport): string {
  const services = watchedServices(r);
  const nodes = [...new Set([...r.faults.flatMap((f) => [f.node, ...(f.peer ? [f.peer] : [])]), ...r.samples.flatMap((s) => Object.values(s.copies).flat())])].sort();
  const width = 1000;
  const left = 70;
  const bar = 7;
  const lane = 12 + services.length * bar + 6;
  const top = 20;
  const clientY = top + nodes.length * lane + 10;
  const height = clientY + 60;
  const end = Math.max(1, ...r.probes.map((p) => p.sent + p.latency), ...r.faults.map((f) => f.end));
  const x = (t: number) => left + (t / end) * (width - left - 10);
  const laneY = (n: string) => top + nodes.indexOf(n) * lane;
  const labels = nodes.map((n) => `<text x="${left - 8}" y="${laneY(n) + 15}" font-size="11" text-anchor="end">${escape(n)}</text>`).join("");
  const faults = r.faults
    .map((f) => `<rect x="${x(f.start).toFixed(1)}" y="${laneY(f.node) + 2}" width="${Math.max(1, x(f.end) - x(f.start)).toFixed(1)}" height="8" fill="${colours[f.kind] ?? "#6b7280"}"><title>${escape(`${f.kind} ${f.node}${f.peer ? ` from ${f.peer}` : ""}: ${Math.round(f.start)}-${Math.round(f.end)} ms`)}</title></rect>`)
    .join("");
  // Per service, consecutive samples that agree make one bar.
  const copies = services
    .map((service, k) => {
      const where = (s: (typeof r.samples)[number]) => (s.copies[service] ?? []).join();
      const changes = r.samples.filter((s, i) => i === 0 || where(s) !== where(r.samples[i - 1]));
      return changes
        .flatMap((s, i) => {
          const until = i + 1 < changes.length ? changes[i + 1].at : end;
          return (s.copies[service] ?? []).map(
            (n) => `<rect x="${x(s.at).toFixed(1)}" y="${laneY(n) + 12 + k * bar}" width="${Math.max(1, x(until) - x(s.at)).toFixed(1)}" height="${bar - 1}" fill="${serviceColours[k % serviceColours.length]}" opacity="0.85"><title>${escape(service)}</title></rect>`,
          );
        })
        .join("");
    })
    .join("");
  const answers = r.probes
    .filter((p) => !p.ok)
    .map((p) => `<rect x="${x(p.sent).toFixed(1)}" y="${clientY}" width="1.5" height="14" fill="#dc2626"/>`)
    .join("");
  const served = r.probes.filter((p) => p.ok).map((p) => `<rect x="${x(p.sent).toFixed(1)}" y="${clientY}" width="1" height="14" fill="#2563eb" opacity="0.5"/>`).join("");
  const violations = r.check.violations
    .map((v) => `<line x1="${x(v.at)}" x2="${x(v.at)}" y1="${top - 10}" y2="${clientY + 20}" stroke="#dc2626" stroke-width="2"><title>${escape(`${v.kind}: ${v.message}`)}</title></line>`)
    .join("");
  const step = end > 600_000 ? 60_000 : end > 120_000 ? 30_000 : 10_000;
  const seconds = Array.from({ length: Math.floor(end / step) + 1 }, (_, i) => `<text x="${x(i * step)}" y="${height - 8}" font-size="10" text-anchor="middle">${(i * step) / 1000} s</text>`).join("");
  return `<svg viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="nemesis timeline">${labels}<text x="${left - 8}" y="${clientY + 11}" font-size="11" text-anchor="end">client</text>${faults}${copies}${served}${answers}${violations}${seconds}</svg>`;
}

export function renderNemesisHtml(r: NemesisReport): string {
  const title = `edge-ha nemesis, seed ${r.seed}`;
  const rows = faultRows(r)
    .map((row) => `<tr>${row.map((c) => `<td>${escape(c)}</td>`).join("")}</tr>`)
    .join("");
  const violations = r.check.violations.length
    ? `<ol>${r.check.violations.map((v) => `<li><b>${escape(v.kind)}</b> at ${(v.at / 1000).toFixed(1)} s: ${escape(v.message)}</li>`).join("")}</ol><p>Replay: <code>${escape(`edge-ha bench nemesis --seed ${r.seed} --minutes ${r.durationMs / 60000} --faults ${r.kinds.join(",")}`)}</code></p>`
    : `<p>No violation: never two copies running, no acknowledged write lost beyond the interval${r.maxLagMs !== undefined ? " (or its maxLag)" : ""}, served again after every fault.</p>`;
  const legend = Object.entries(colours)
    .map(([k, c]) => `<span><i style="background:${c}"></i>${escape(k)}</span>`)
    .join(" ");
  const serviceLegend = watchedServices(r)
    .map((name, k) => `<span><i style="background:${serviceColours[k % serviceColours.length]}"></i>${escape(name)}</span>`)
    .join(" ");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;color:#111}table{border-collapse:collapse}td,th{border:1px solid #d1d5db;padding:4px 8px;text-align:left;font-size:13px}.legend{color:#374151;font-size:12px}.legend i{display:inline-block;width:12px;height:8px;margin:0 4px 0 10px}</style>
</head><body><h1>${escape(title)}</h1>
<p>${escape(`${r.startedAt}: ${r.faults.length} faults in ${(r.durationMs / 60000).toFixed(1)} min against ${r.service} (sync interval ${r.intervalMs} ms${r.maxLagMs !== undefined ? `, maxLag ${r.maxLagMs} ms` : ""}); ${r.client.requests} requests, ${r.client.failed} failed; acknowledged writes lost in all: ${r.check.lostWrites}.`)}</p>
<h2>Violations</h2>${violations}
<h2>Faults</h2>
<table><thead><tr><th>fault</th><th>count</th><th>served again after it ended p50 / p99</th><th>longest gap p50 / p99</th></tr></thead><tbody>${rows}</tbody></table>
<h2>Timeline</h2>
${timeline(r)}
<p class="legend">Per node, upper bar: a fault on it${legend}; below it, one bar per service while a copy of it runs there${serviceLegend}. Client: blue, answered; red, failed. Red lines: violations (hover for details).</p>
</body></html>
`;
}
