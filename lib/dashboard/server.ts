import { randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { findHost, type Inventory } from "../config/inventory";
import { onProgress, UserError } from "../log";
import { sshExec } from "../host/ssh";
import { migrate } from "../ha/migration";
import type { AgentEvent } from "../ha/agent";
import type { LabOptions } from "../lab/lab";
import { migrationDrill } from "../lab/drill";
import { writeReports } from "../lab/report";
import type { FleetView } from "./fleet-view";
import { FleetSampler, type SamplerOptions } from "./sampler";

/*
 * The dashboard's web server: one page (page/, served with its script and
 * style inline), a JSON API, and a stream of server-sent events that pushes
 * the fleet's view, the agents' events and an action's progress as they
 * happen. Every request needs the token made at start (a header, or ?token=
 * for the page and the stream, which a browser cannot give a header), so
 * that another user or web page on the machine can neither read nor act.
 * With readOnly there are no actions. Nothing it serves holds a secret: the
 * samples read none (files/sample.sh), and actions answer with numbers.
 */

export interface DashboardOptions {
  inventory: Inventory;
  /** Address and port to listen on (default 127.0.0.1, port 0: any free one). */
  listen?: string;
  port?: number;
  /** Default: a random one. */
  token?: string;
  readOnly?: boolean;
  /** Where drill and bench reports are (listed and served), and where a drill run here writes its own. */
  reportsDir: string;
  /** The lab, when the inventory is a lab's: drills need its fault injection. */
  lab?: LabOptions;
  sampler?: SamplerOptions;
}

export interface Dashboard {
  url: string;
  token: string;
  close(): Promise<void>;
}

interface Action {
  id: string;
  kind: "migrate" | "drill";
  title: string;
  state: "running" | "done" | "failed";
  lines: string[];
  result?: Record<string, unknown>;
  error?: string;
}

const pageDir = path.join(__dirname, "page");

/** Starts the dashboard; see the top of this file. */
export async function startDashboard(opts: DashboardOptions): Promise<Dashboard> {
  const token = opts.token ?? randomBytes(18).toString("base64url");
  const streams = new Set<ServerResponse>();
  const actions: Action[] = [];
  let running: Action | undefined;
  let lastState = "";

  const send = (res: ServerResponse, event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  const broadcast = (event: string, data: unknown) => {
    for (const res of streams) send(res, event, data);
  };
  const statePayload = (view: FleetView) => ({ view, history: Object.fromEntries(sampler.history), readOnly: !!opts.readOnly, drills: !!opts.lab });

  const sampler = new FleetSampler(
    opts.inventory,
    (view, newEvents: AgentEvent[]) => {
      if (newEvents.length) broadcast("events", newEvents);
      // Pushed when something other than the clock changed, and at least every 2 s (the ages and the plot move).
      const key = JSON.stringify({ ...view, at: 0, services: view.services.map((s) => ({ ...s, checkpointAgeMs: undefined })), nodes: view.nodes.map((n) => ({ ...n, leaseMs: (n.leaseMs ?? 0) > 0, load: undefined })) });
      if (key !== lastState || Date.now() - lastPush > 2000) {
        lastState = key;
        lastPush = Date.now();
        broadcast("state", statePayload(view));
      }
    },
    opts.sampler,
  );
  let lastPush = 0;

  const authorized = (req: IncomingMessage, url: URL) => {
    const given = (req.headers.authorization ?? "").replace(/^Bearer /, "") || url.searchParams.get("token") || "";
    const a = Buffer.from(given);
    const b = Buffer.from(token);
    return a.length === b.length && timingSafeEqual(a, b);
  };

  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
    res.end(JSON.stringify(body));
  };

  const readBody = (req: IncomingMessage) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      let text = "";
      req.on("data", (chunk) => {
        text += chunk;
        if (text.length > 10_000) req.destroy();
      });
      req.on("end", () => {
        try {
          resolve(text ? JSON.parse(text) : {});
        } catch {
          reject(new UserError("the request's body is not JSON"));
        }
      });
      req.on("error", reject);
    });

  /** Runs an action alone, its progress lines and outcome pushed to every page. */
  const act = (kind: Action["kind"], title: string, work: () => Promise<Record<string, unknown>>): Action => {
    const action: Action = { id: randomUUID(), kind, title, state: "running", lines: [] };
    actions.push(action);
    running = action;
    broadcast("action", action);
    const stopListening = onProgress((line) => {
      action.lines.push(line);
      broadcast("action", action);
    });
    void work()
      .then((result) => Object.assign(action, { state: "done", result }))
      .catch((err: Error) => Object.assign(action, { state: "failed", error: err.message }))
      .finally(() => {
        stopListening();
        running = undefined;
        broadcast("action", action);
      });
    return action;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://dashboard");
    if (!authorized(req, url)) {
      res.writeHead(401, { "content-type": "text/plain; charset=utf-8" });
      return void res.end("401: this dashboard needs its token (printed when it started): open the address it printed\n");
    }
    const route = `${req.method} ${url.pathname}`;
    if (route === "GET /") {
      const nonce = randomBytes(16).toString("base64");
      const page = readFileSync(path.join(pageDir, "index.html"), "utf8")
        .replace("/*STYLE*/", () => readFileSync(path.join(pageDir, "style.css"), "utf8"))
        .replace("/*SCRIPT*/", () => readFileSync(path.join(pageDir, "app.js"), "utf8"))
        .replace(/NONCE/g, nonce);
      res.writeHead(200, {
        "content-type": "text/html; charset=utf-8",
        "cache-control": "no-store",
        // Only what this page carries runs; no request leaves for another origin.
        "content-security-policy": `default-src 'self'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; img-src 'self' data:; frame-ancestors 'none'`,
        "referrer-policy": "no-referrer",
      });
      return void res.end(page);
    }
    if (route === "GET /api/state") return json(res, 200, statePayload(sampler.view()));
    if (route === "GET /api/events") {
      const service = url.searchParams.get("service");
      const node = url.searchParams.get("node");
      return json(res, 200, sampler.events.filter((e) => (!service || e.service === service) && (!node || e.node === node)));
    }
    if (route === "GET /api/stream") {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive" });
      streams.add(res);
      req.on("close", () => streams.delete(res));
      send(res, "state", statePayload(sampler.view()));
      send(res, "events", sampler.events);
      for (const a of actions.slice(-5)) send(res, "action", a);
      return;
    }
    if (route === "GET /api/logs") {
      const service = url.searchParams.get("service") ?? "";
      const tail = Math.min(1000, Math.max(1, Number(url.searchParams.get("tail") ?? 100) || 100));
      const view = sampler.view().services.find((s) => s.name === service && s.mode === "criu");
      if (!view) return json(res, 404, { error: `no service "${service}" here` });
      // Wherever it runs now: a move takes its container, and its log, with it.
      if (view.runningOn.length !== 1) return json(res, 409, { error: `${service} runs on ${view.runningOn.join(" and ") || "no node"}: no one log to show` });
      const out = await sshExec(findHost(opts.inventory, view.runningOn[0]), `docker logs --timestamps --tail ${tail} ${service} 2>&1`, { nothrow: true });
      return json(res, 200, { service, node: view.runningOn[0], lines: out.stdout.split("\n").filter(Boolean) });
    }
    if (route === "GET /api/reports") return json(res, 200, listReports(opts.reportsDir));
    if (req.method === "GET" && url.pathname.startsWith("/reports/")) {
      const name = decodeURIComponent(url.pathname.slice("/reports/".length));
      const file = path.join(opts.reportsDir, name);
      if (!/^[\w.-]+\.(html|json)$/.test(name) || !existsSync(file)) return json(res, 404, { error: `no report "${name}"` });
      res.writeHead(200, { "content-type": name.endsWith(".html") ? "text/html; charset=utf-8" : "application/json", "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:" });
      return void res.end(readFileSync(file));
    }
    if (route === "GET /api/actions") return json(res, 200, actions);
    if (req.method === "POST" && url.pathname.startsWith("/api/")) {
      if (opts.readOnly) return json(res, 403, { error: "this dashboard is read-only (--read-only): it runs no actions" });
      if (running) return json(res, 409, { error: `${running.title} is still running: one action at a time` });
      const body = await readBody(req);
      const service = String(body.service ?? "");
      const view = sampler.view();
      const s = view.services.find((v) => v.name === service && v.mode === "criu");
      if (!s) return json(res, 400, { error: `service: expected one of ${view.services.filter((v) => v.mode === "criu").map((v) => v.name).join(", ")}, found "${service}"` });
      if (url.pathname === "/api/migrate") {
        const to = String(body.to ?? "");
        if (!opts.inventory.hosts.some((h) => h.name === to)) return json(res, 400, { error: `to: expected a node of the inventory, found "${to}"` });
        const action = act("migrate", `migrate ${service} to ${to}`, async () => {
          const r = await migrate(opts.inventory, service, to);
          return { service, from: r.from, to: r.to, downtimeMs: Math.round(r.downtime * 1000) };
        });
        return json(res, 202, action);
      }
      if (url.pathname === "/api/drill") {
        const lab = opts.lab;
        if (!lab) return json(res, 400, { error: "drills run on the local lab only (its fault injection): start the dashboard with --lab NAME" });
        const action = act("drill", `migration drill of ${service}`, async () => {
          const report = await migrationDrill({ lab, inventory: opts.inventory }, service);
          const files = writeReports([report], opts.reportsDir);
          return { service, from: report.from, to: report.to, longestGapMs: Math.round(report.client.longestGapMs ?? 0), failed: report.client.failed, requests: report.client.requests, report: path.basename(files.html) };
        });
        return json(res, 202, action);
      }
    }
    json(res, 404, { error: `no ${route} here` });
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: Error) => {
      if (!res.headersSent) json(res, err instanceof UserError ? 400 : 500, { error: err.message });
      else res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => {
      const where = `${opts.listen ?? "127.0.0.1"}:${opts.port ?? 0}`;
      if (err.code === "EADDRINUSE") reject(new UserError(`${where} is taken by another program (another dashboard?): give --port N, or --port 0 for any free one`));
      else if (err.code === "EADDRNOTAVAIL") reject(new UserError(`--listen ${opts.listen}: no interface of this machine has that address`));
      else reject(err);
    });
    server.listen(opts.port ?? 0, opts.listen ?? "127.0.0.1", resolve);
  });
  sampler.start();
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}/?token=${token}`,
    token,
    close: async () => {
      for (const res of streams) res.end();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await sampler.stop();
    },
  };
}

/** The drill and bench reports in `dir`, newest first. */
function listReports(dir: string): { name: string; at: string; html?: string }[] {
  if (!existsSync(dir)) return [];
  const files = readdirSync(dir);
  return files
    .filter((f) => f.endsWith(".json") && /^(drill|bench)-/.test(f))
    .map((f) => {
      const base = f.slice(0, -".json".length);
      return { name: base, at: statSync(path.join(dir, f)).mtime.toISOString(), ...(files.includes(`${base}.html`) ? { html: `${base}.html` } : {}) };
    })
    .sort((a, b) => b.at.localeCompare(a.at));
}
