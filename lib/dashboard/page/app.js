// The dashboard's page (served by lib/dashboard/server.ts, inline): draws
// what the server pushes on its event stream, and asks it to act. Every
// request carries the token of the address it was opened with. Text from the
// fleet goes in as text (textContent), never as markup.
"use strict";

const token = new URLSearchParams(location.search).get("token") || "";
const api = (p, init = {}) => fetch(p, { ...init, headers: { ...(init.headers || {}), authorization: `Bearer ${token}` } });
const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text). */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null && v !== false) e.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== undefined && c !== null) e.append(c instanceof Node ? c : String(c));
  return e;
}
const svg = (tag, attrs = {}) => {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
};
const dl = (pairs) => el("dl", {}, pairs.filter(([, v]) => v !== undefined && v !== "").flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;

let state = { view: { nodes: [], services: [], alerts: [] }, history: {}, readOnly: true, drills: false };
let events = [];

/** Keeps a select's options equal to `values`, its choice kept when it still exists. */
function setOptions(select, values, keepFirst = false) {
  const chosen = select.value;
  const fixed = keepFirst ? [select.options[0]] : [];
  select.replaceChildren(...fixed, ...values.map((v) => el("option", { value: v }, v)));
  if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
}

function drawNodes(view) {
  $("nodes").replaceChildren(
    ...view.nodes.map((n) =>
      el(
        "article",
        { class: `card ${n.agents}`, "data-node": n.name, "data-agents": n.agents },
        el("h3", {}, n.name, el("span", { class: `state ${n.agents}` }, n.agents === "unknown" ? "no word" : n.agents)),
        dl([
          ["address", n.address],
          ["roles", n.roles.join(", ")],
          ["arch", n.arch],
          ["Docker", n.docker],
          ["CRIU", n.criu],
          ["load", n.load !== undefined ? n.load.toFixed(2) : n.answers ? undefined : "no answer"],
          ["memory", n.memoryUsedPercent !== undefined ? `${n.memoryUsedPercent} % used` : undefined],
          ["lease", n.leaseMs === undefined ? undefined : n.leaseMs > 0 ? `held${n.acting ? ", acting controller" : ""}` : n.fenced ? "lapsed, copies fenced" : "none"],
          ["maintenance", n.drained ? "drained" : undefined],
          ...(n.signals || []).map((s) => [s.level, `${s.name}: ${s.message}`]),
        ]),
      ),
    ),
  );
}

/** A small plot of a service's checkpoint age over the last minutes, with twice its interval as a line. */
function plot(points, intervalSeconds) {
  const box = svg("svg", { class: "plot", viewBox: "0 0 300 40", preserveAspectRatio: "none", role: "img", "aria-label": "checkpoint age over the last minutes" });
  if (!points || points.length < 2) return box;
  const t0 = points[0][0];
  const t1 = points[points.length - 1][0];
  const limit = intervalSeconds ? 2 * intervalSeconds * 1000 : 0;
  const top = Math.max(limit * 1.2, ...points.map((p) => p[1]), 1);
  const x = (t) => ((t - t0) / Math.max(t1 - t0, 1)) * 300;
  const y = (v) => 40 - (v / top) * 38;
  if (limit) box.append(svg("line", { x1: 0, x2: 300, y1: y(limit), y2: y(limit) }));
  box.append(svg("polyline", { points: points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ") }));
  return box;
}

function drawServices(view, history) {
  $("services").replaceChildren(
    ...view.services.map((s) => {
      const where = s.mode === "swarm" ? "swarm" : s.runningOn.length ? s.runningOn.join(", ") : "nowhere";
      const stale = s.intervalSeconds && s.checkpointAgeMs > 2 * s.intervalSeconds * 1000;
      return el(
        "article",
        { class: `card ${s.mode === "criu" && !s.runningOn.length ? "nowhere" : stale ? "stale" : ""}`, "data-service": s.name, "data-host": s.runningOn.join(",") },
        el("h3", {}, s.name, el("span", { class: `state ${s.runningOn.length || s.mode === "swarm" ? "running" : "nowhere"}` }, where)),
        dl([
          ["mode", s.mode === "swarm" ? `swarm, ${s.replicas}` : `CRIU, failover ${s.failover}`],
          ["address", s.vip ? `${s.vip.address} (held by ${s.vip.holders.join(" and ") || "no node"})` : undefined],
          ["endpoint", s.endpoint],
          ["health", s.health],
          ["standby", s.standby ? `${s.standby}, every ${s.intervalSeconds} s` : undefined],
          ["checkpoint", s.checkpointAgeMs !== undefined ? `${seconds(s.checkpointAgeMs)} old` : s.standby ? "none yet" : undefined],
        ]),
        s.standby ? plot(history[s.name], s.intervalSeconds) : "",
      );
    }),
  );
}

function drawAlerts(view) {
  $("alerts").replaceChildren(...view.alerts.map((a) => el("p", { "data-kind": a.kind }, `⚠ ${a.message}`)));
}

function drawEvents() {
  const service = $("event-service").value;
  const node = $("event-node").value;
  const shown = events.filter((e) => (!service || e.service === service) && (!node || e.node === node)).slice(-300).reverse();
  $("events").replaceChildren(
    ...shown.map((e) => el("li", { "data-kind": e.kind }, el("time", { datetime: e.at }, e.at.slice(11, 23)), " ", e.node, " ", el("span", { class: `kind ${e.kind}` }, e.kind), e.service ? ` ${e.service}` : "", ": ", e.message)),
  );
}

function draw() {
  const { view, history } = state;
  drawNodes(view);
  drawServices(view, history);
  drawAlerts(view);
  const criu = view.services.filter((s) => s.mode === "criu").map((s) => s.name);
  setOptions($("migrate-service"), criu);
  setOptions($("migrate-to"), view.nodes.filter((n) => n.roles.some((r) => r !== "witness")).map((n) => n.name));
  setOptions($("log-service"), criu);
  setOptions($("event-service"), view.services.map((s) => s.name), true);
  setOptions($("event-node"), view.nodes.map((n) => n.name), true);
  $("updated").textContent = `as of ${new Date(view.at).toLocaleTimeString()}`;
  $("migrate-form").hidden = state.readOnly;
  $("read-only-note").hidden = !state.readOnly;
  $("drill-button").hidden = !state.drills;
}

function drawAction(a) {
  let box = document.querySelector(`.action[data-id="${a.id}"]`);
  const fresh = el(
    "div",
    { class: `action ${a.state}`, "data-id": a.id, "data-state": a.state },
    el("strong", {}, a.title), ` — ${a.state}`,
    el("ul", {}, a.lines.slice(-8).map((l) => el("li", {}, l))),
    a.result ? el("p", { class: "result" }, resultText(a.result)) : "",
    a.error ? el("p", { class: "error" }, a.error) : "",
  );
  if (box) box.replaceWith(fresh);
  else $("action-log").prepend(fresh);
  const busy = a.state === "running";
  $("migrate-button").disabled = busy;
  $("drill-button").disabled = busy;
  if (!busy && a.kind === "drill") loadReports();
}

function resultText(r) {
  if (r.downtimeMs !== undefined) return `${r.service}: ${r.from} → ${r.to}, downtime ${r.downtimeMs} ms`;
  if (r.longestGapMs !== undefined) return `${r.service}: ${r.from} → ${r.to}, the client's longest gap ${r.longestGapMs} ms, ${r.failed} of ${r.requests} requests failed`;
  return JSON.stringify(r);
}

async function loadReports() {
  const r = await api("/api/reports");
  if (!r.ok) return;
  const list = await r.json();
  $("reports").replaceChildren(
    ...(list.length
      ? list.map((x) => el("li", {}, x.html ? el("a", { href: `/reports/${encodeURIComponent(x.html)}?token=${encodeURIComponent(token)}`, target: "_blank", rel: "noopener" }, x.name) : x.name, el("span", { class: "muted" }, ` ${new Date(x.at).toLocaleString()}`)))
      : [el("li", { class: "muted" }, "no reports yet (edge-ha drill, edge-ha bench, or a drill from here)")]),
  );
}

let logTimer;
async function loadLogs() {
  clearTimeout(logTimer);
  const service = $("log-service").value;
  if (service) {
    const r = await api(`/api/logs?service=${encodeURIComponent(service)}&tail=200`);
    const body = await r.json();
    $("log-where").textContent = r.ok ? `on ${body.node}` : body.error;
    if (r.ok) {
      const box = $("logs");
      const atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 10;
      box.textContent = body.lines.length ? body.lines.join("\n") : `(${service} has written no log lines yet)`;
      if (atEnd) box.scrollTop = box.scrollHeight;
    }
  }
  // Asked again every few seconds, of wherever the service runs then: the log follows it across a move.
  logTimer = setTimeout(loadLogs, 3000);
}

/** Asks for confirmation in the page's own dialog; true when confirmed. */
function confirmed(text) {
  return new Promise((resolve) => {
    const dialog = $("confirm");
    $("confirm-text").textContent = text;
    dialog.onclose = () => resolve(dialog.returnValue === "ok");
    dialog.showModal();
  });
}

async function post(path, body) {
  const r = await api(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const answer = await r.json();
  if (!r.ok) drawAction({ id: `refused-${Date.now()}`, kind: "refused", title: path.slice(5), state: "failed", lines: [], error: answer.error });
}

$("migrate-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const service = $("migrate-service").value;
  const to = $("migrate-to").value;
  if (await confirmed(`Live-migrate ${service} to ${to}? It pauses for about a second.`)) await post("/api/migrate", { service, to });
});
$("drill-button").addEventListener("click", async () => {
  const service = $("migrate-service").value;
  if (await confirmed(`Run a migration drill of ${service}? It moves ${service} to its standby under a 10 ms client and writes a report.`)) await post("/api/drill", { service });
});
$("event-service").addEventListener("change", drawEvents);
$("event-node").addEventListener("change", drawEvents);
$("log-service").addEventListener("change", loadLogs);

function connect() {
  const stream = new EventSource(`/api/stream?token=${encodeURIComponent(token)}`);
  stream.addEventListener("open", () => {
    $("connection").textContent = "live";
    $("connection").className = "pill live";
  });
  stream.addEventListener("error", () => {
    $("connection").textContent = "reconnecting…";
    $("connection").className = "pill";
  });
  stream.addEventListener("state", (m) => {
    state = JSON.parse(m.data);
    draw();
  });
  stream.addEventListener("events", (m) => {
    const fresh = JSON.parse(m.data);
    const seen = new Set(events.map((e) => `${e.at}${e.node}${e.kind}${e.message}`));
    events = events.concat(fresh.filter((e) => !seen.has(`${e.at}${e.node}${e.kind}${e.message}`))).sort((a, b) => a.at.localeCompare(b.at)).slice(-1000);
    drawEvents();
  });
  stream.addEventListener("action", (m) => drawAction(JSON.parse(m.data)));
}

connect();
loadReports();
setTimeout(loadLogs, 500);
