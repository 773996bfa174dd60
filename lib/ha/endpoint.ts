import * as http from "node:http";
import * as net from "node:net";

/*
 * A service's stable client endpoint: a TCP front proxy whose backend (host
 * and port of the node that runs the service) is switched when the service
 * moves. Chosen over a moving IP address because a proxy can *hold* clients:
 * a connection that arrives while the service is between nodes waits (its
 * bytes stay in the socket) and is forwarded once the new backend answers,
 * instead of being refused; a moved address would need gratuitous ARP and
 * still refuse connections during the gap. It runs where the clients enter
 * the edge (in the lab: the lab host, the nodes' gateway).
 */

export interface Backend {
  host: string;
  port: number;
}

export interface EndpointOptions {
  /** Address and port clients connect to. */
  listen: { host: string; port: number };
  backend?: Backend;
  /** How long a client connection may wait for a backend that does not answer (default 5000 ms). */
  holdMs?: number;
  /** A connection attempt to a backend that takes longer counts as failed (default 300 ms; a LAN answers in one). */
  connectTimeoutMs?: number;
  /**
   * Probe every backend with a TCP connect every `everyMs`; `failures` misses
   * in a row mark it down (its open connections are cut, so clients retry at
   * once instead of waiting on a dead host), one success marks it up again.
   * With `httpPath`, a probe is a GET of that path instead, passed by 2xx and
   * 3xx (the service's own healthcheck: a hung server still accepts).
   */
  healthCheck?: { everyMs: number; failures: number; httpPath?: string };
}

/** What migrate and failover need from an endpoint, in this process or behind its control API. */
export interface EndpointControl {
  /** Clients are held from now on until switchTo. */
  hold(): Promise<void>;
  /** Sends clients (held ones first) to a new backend; connections to the old ones are cut. */
  switchTo(backend: Backend): Promise<void>;
}

const key = (b: Backend) => `${b.host}:${b.port}`;

/** Whether a TCP port accepts a connection within `timeoutMs`. */
export function tcpAnswers(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    const done = (ok: boolean) => (socket.destroy(), resolve(ok));
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** Whether GET `path` on a backend answers 2xx or 3xx within `timeoutMs`. */
export function httpAnswers(host: string, port: number, path: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const request = http.get({ host, port, path, timeout: timeoutMs, agent: false }, (response) => {
      response.resume();
      resolve((response.statusCode ?? 500) < 400);
    });
    request.once("timeout", () => request.destroy());
    request.once("error", () => resolve(false));
  });
}

export class Endpoint implements EndpointControl {
  private server?: net.Server;
  /** In order of preference: clients go to the first one that is up (no balancing: replicas may not share state). */
  private backends: Backend[];
  private readonly down = new Set<string>();
  private readonly misses = new Map<string, number>();
  private readonly open = new Map<string, Set<net.Socket>>();
  private held = false;
  private active = 0;
  private waiting: (() => void)[] = [];
  private checker?: NodeJS.Timeout;
  private readonly holdMs: number;
  private readonly connectTimeoutMs: number;
  readonly stats = { connections: 0, held: 0, failed: 0, cut: 0 };
  /** Backends marked down or up by the health check, with when (Date.now()). */
  readonly events: { at: number; backend: string; up: boolean }[] = [];

  constructor(private readonly options: EndpointOptions) {
    this.backends = options.backend ? [options.backend] : [];
    this.holdMs = options.holdMs ?? 5000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 300;
  }

  async start(): Promise<void> {
    this.server = net.createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      this.server!.once("error", reject);
      this.server!.listen(this.options.listen.port, this.options.listen.host, resolve);
    });
    const check = this.options.healthCheck;
    if (check) this.checker = setInterval(() => this.checkHealth(check.failures), check.everyMs);
  }

  /** The port clients connect to (useful with listen port 0). */
  port(): number {
    return (this.server!.address() as net.AddressInfo).port;
  }

  async stop(): Promise<void> {
    if (this.checker) clearInterval(this.checker);
    this.release();
    for (const sockets of this.open.values()) for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** Holds new connections, then waits (up to 300 ms) for the ones in flight to finish. */
  async hold(): Promise<void> {
    this.held = true;
    for (let i = 0; i < 30 && this.active > 0; i++) await new Promise((r) => setTimeout(r, 10));
  }

  async switchTo(backend: Backend): Promise<void> {
    this.setBackends([backend]);
    this.release();
  }

  /** Replaces the backends (in order of preference); connections to removed ones are cut. */
  setBackends(backends: Backend[]): void {
    const kept = new Set(backends.map(key));
    for (const [k, sockets] of this.open) if (!kept.has(k)) this.cut(sockets);
    this.backends = backends;
  }

  current(): Backend | undefined {
    return this.firstUp() ?? this.backends[0];
  }

  /** The first backend, in order of preference, that is not down and not in `skip`. */
  private firstUp(skip?: Set<string>): Backend | undefined {
    return this.backends.find((b) => !this.down.has(key(b)) && !skip?.has(key(b)));
  }

  private cut(sockets: Set<net.Socket>): void {
    for (const s of sockets) {
      this.stats.cut++;
      s.destroy();
    }
    sockets.clear();
  }

  private checkHealth(failures: number): void {
    for (const b of this.backends) {
      const k = key(b);
      const { everyMs, httpPath } = this.options.healthCheck!;
      void (httpPath ? httpAnswers(b.host, b.port, httpPath, everyMs) : tcpAnswers(b.host, b.port, everyMs)).then((ok) => {
        const misses = ok ? 0 : (this.misses.get(k) ?? 0) + 1;
        this.misses.set(k, misses);
        if (ok && this.down.delete(k)) this.events.push({ at: Date.now(), backend: k, up: true });
        if (!ok && misses >= failures) this.markDown(k);
      });
    }
  }

  private markDown(k: string): void {
    if (this.down.has(k)) return;
    this.down.add(k);
    this.events.push({ at: Date.now(), backend: k, up: false });
    this.cut(this.open.get(k) ?? new Set());
  }

  private release(): void {
    this.held = false;
    const waiting = this.waiting;
    this.waiting = [];
    for (const go of waiting) go();
  }

  private accept(client: net.Socket): void {
    this.stats.connections++;
    client.on("error", () => client.destroy());
    const deadline = Date.now() + this.holdMs;
    const fail = () => {
      this.stats.failed++;
      client.destroy();
    };
    const tryConnect = (skip = new Set<string>()) => {
      if (client.destroyed) return;
      const backend = this.firstUp(skip);
      if (this.held || !backend) {
        if (Date.now() > deadline) return fail();
        this.stats.held++;
        if (this.held) return void this.waiting.push(() => tryConnect());
        return void setTimeout(() => tryConnect(), 20);
      }
      const k = key(backend);
      const upstream = net.connect(backend.port, backend.host);
      upstream.setNoDelay(true);
      upstream.setTimeout(this.connectTimeoutMs, () => upstream.destroy(new Error("connect timeout")));
      upstream.once("connect", () => {
        upstream.setTimeout(0);
        this.active++;
        const sockets = this.open.get(k) ?? new Set();
        this.open.set(k, sockets);
        sockets.add(client);
        upstream.once("close", () => {
          this.active--;
          sockets.delete(client);
        });
        upstream.removeAllListeners("error");
        upstream.on("error", () => client.destroy());
        client.pipe(upstream).pipe(client);
      });
      // This backend is not there (yet): the service is between nodes, or the
      // node is gone. Try the next one, or this one again, within the deadline.
      upstream.once("error", () => {
        upstream.destroy();
        // With a health check to bring it back, a backend that failed a client is skipped at once.
        if (this.options.healthCheck) this.markDown(k);
        if (Date.now() > deadline) return fail();
        const next = new Set(skip).add(k);
        if (this.firstUp(next)) return tryConnect(next);
        setTimeout(() => tryConnect(), 20);
      });
      client.once("close", () => upstream.destroy());
    };
    client.pause();
    tryConnect();
  }
}

/** An endpoint's control API over HTTP, for an endpoint running in another process. */
export function serveControl(endpoint: Endpoint, port: number, host = "127.0.0.1"): http.Server {
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    try {
      if (req.method === "POST" && url.pathname === "/hold") await endpoint.hold();
      else if (req.method === "POST" && url.pathname === "/switch") {
        const host = url.searchParams.get("host");
        const p = Number(url.searchParams.get("port"));
        if (!host || !Number.isInteger(p)) throw new Error("POST /switch?host=H&port=P");
        await endpoint.switchTo({ host, port: p });
      } else if (req.method !== "GET" || url.pathname !== "/") throw new Error("GET /, POST /hold, POST /switch?host=H&port=P");
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ backend: endpoint.current() ?? null, ...endpoint.stats }));
    } catch (err) {
      res.writeHead(400);
      res.end((err as Error).message);
    }
  });
  server.listen(port, host);
  return server;
}

/** Controls an endpoint through its HTTP control API. */
export function remoteEndpoint(controlUrl: string): EndpointControl {
  const post = async (path: string) => {
    const r = await fetch(new URL(path, controlUrl), { method: "POST" });
    if (!r.ok) throw new Error(`endpoint ${controlUrl}${path}: ${r.status} ${await r.text()}`);
  };
  return {
    hold: () => post("/hold"),
    switchTo: (b) => post(`/switch?host=${encodeURIComponent(b.host)}&port=${b.port}`),
  };
}
