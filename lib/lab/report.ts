import { mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import type { DrillReport } from "./drill";

/*
 * A drill run's reports three ways: a table for the terminal, JSON for
 * pipelines (everything, probes included), and one self-contained HTML page
 * with a timeline of the probes per drill (no scripts, no fetches).
 */

const num = (v: number | string | undefined, unit = "") => (typeof v === "number" ? `${Math.round(v)}${unit}` : v ?? "-");

/** The key numbers of each drill, one row each. */
export function rows(reports: DrillReport[]): string[][] {
  return reports.map((r) => [
    r.kind,
    r.service,
    `${r.from} -> ${r.to}`,
    num(r.client.longestGapMs, " ms"),
    `${r.client.failed}/${r.client.requests}`,
    num(r.client.latencyMs.p50, " ms"),
    r.client.countBefore === undefined ? "-" : `${r.client.countBefore} -> ${r.client.countAfter}`,
    num(r.client.lostIncrements),
    Object.entries(r.details)
      .map(([k, v]) => `${k} ${num(v)}`)
      .join(", "),
  ]);
}

export const columns = ["drill", "service", "move", "downtime", "failed", "p50", "count before -> after", "lost", "details (ms)"];

export function table(header: string[], body: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join("  ");
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}

export function renderTable(reports: DrillReport[]): string {
  return table(columns, rows(reports));
}

export const escape = (s: string) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);

/** An SVG timeline: each probe's latency (log scale), failures in red, events as lines. */
function timeline(r: DrillReport): string {
  const width = 900;
  const height = 220;
  const left = 50;
  const bottom = 30;
  const end = Math.max(1, ...r.probes.map((p) => p.sent + p.latency));
  const x = (t: number) => left + (t / end) * (width - left - 10);
  const maxLog = Math.log10(5000);
  const y = (latency: number) => height - bottom - (Math.log10(Math.max(1, latency)) / maxLog) * (height - bottom - 10);
  const dots = r.probes
    .map((p) => (p.ok ? `<circle cx="${x(p.sent).toFixed(1)}" cy="${y(p.latency).toFixed(1)}" r="1.5" fill="#2563eb"/>` : `<rect x="${x(p.sent).toFixed(1)}" y="${height - bottom - 8}" width="2" height="8" fill="#dc2626"/>`))
    .join("");
  const gap = r.client.longestGapMs > 0 ? `<rect x="${x(r.client.gapAt).toFixed(1)}" y="10" width="${Math.max(1, x(r.client.gapAt + r.client.longestGapMs) - x(r.client.gapAt)).toFixed(1)}" height="${height - bottom - 10}" fill="#fde68a" opacity="0.6"/>` : "";
  const events = r.events
    .map((e, i) => `<line x1="${x(e.at)}" x2="${x(e.at)}" y1="10" y2="${height - bottom}" stroke="#6b7280" stroke-dasharray="3 3"/><text x="${x(e.at) + 3}" y="${20 + (i % 4) * 12}" font-size="10" fill="#374151">${escape(e.what)}</text>`)
    .join("");
  const ticks = [1, 10, 100, 1000].map((l) => `<text x="${left - 6}" y="${y(l) + 3}" font-size="10" text-anchor="end">${l} ms</text>`).join("");
  const seconds = Array.from({ length: Math.floor(end / 1000) + 1 }, (_, s) => `<text x="${x(s * 1000)}" y="${height - 12}" font-size="10" text-anchor="middle">${s} s</text>`).join("");
  return `<svg viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="probe timeline">${gap}${dots}${events}${ticks}${seconds}<line x1="${left}" x2="${width - 10}" y1="${height - bottom}" y2="${height - bottom}" stroke="#9ca3af"/></svg>`;
}

export function renderHtml(reports: DrillReport[], title = "edge-ha drills"): string {
  const head = columns.map((c) => `<th>${escape(c)}</th>`).join("");
  const body = rows(reports)
    .map((r) => `<tr>${r.map((c) => `<td>${escape(c)}</td>`).join("")}</tr>`)
    .join("\n");
  const sections = reports
    .map(
      (r) => `<section><h2>${escape(`${r.kind}: ${r.service} ${r.from} -> ${r.to}`)}</h2>
<p>${escape(`${r.startedAt}; longest gap ${Math.round(r.client.longestGapMs)} ms, ${r.client.failed} of ${r.client.requests} requests failed, ${r.client.lostIncrements ?? "?"} increments lost`)}</p>
${timeline(r)}
<p class="legend">blue: a request's latency (log scale); red: a failed request; yellow: the longest gap between two answers; dashed: what the drill did.</p></section>`,
    )
    .join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;color:#111}table{border-collapse:collapse}td,th{border:1px solid #d1d5db;padding:4px 8px;text-align:left;font-size:13px}.legend{color:#6b7280;font-size:12px}</style>
</head><body><h1>${escape(title)}</h1>
<table><thead><tr>${head}</tr></thead><tbody>
${body}
</tbody></table>
${sections}
</body></html>
`;
}

/** Writes NAME.json and NAME.html in `dir` (NAME: drill-<time> unless given); returns their paths. */
export function writeReports(reports: DrillReport[], dir: string, name = `drill-${new Date().toISOString().replace(/[:.]/g, "-")}`): { json: string; html: string } {
  mkdirSync(dir, { recursive: true });
  const json = path.join(dir, `${name}.json`);
  const html = path.join(dir, `${name}.html`);
  writeFileSync(json, JSON.stringify({ reports }, null, 2));
  writeFileSync(html, renderHtml(reports));
  return { json, html };
}
