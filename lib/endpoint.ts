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
}

/** What migrate and failover need from an endpoint, in this process or behind its control API. */
export interface EndpointControl {
  /** Clients are held from now on until switchTo. */
  hold(): Promise<void>;
  /** Sends clients (held ones first) to a new backend. */
  switchTo(backend: Backend): Promise<void>;
}

export class Endpoint implements EndpointControl {
  private server?: net.Server;
  private backend?: Backend;
  private held = false;
  private active = 0;
  private waiting: (() => void)[] = [];
  private readonly holdMs: number;
  readonly stats = { connections: 0, held: 0, failed: 0 };

  constructor(private readonly options: EndpointOptions) {
    this.backend = options.backend;
    this.holdMs = options.holdMs ?? 5000;
  }

  async start(): Promise<void> {
    this.server = net.createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      this.server!.once("error", reject);
      this.server!.listen(this.options.listen.port, this.options.listen.host, resolve);
    });
  }

  async stop(): Promise<void> {
    this.release();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** Holds new connections, then waits (up to 300 ms) for the ones in flight to finish. */
  async hold(): Promise<void> {
    this.held = true;
    for (let i = 0; i < 30 && this.active > 0; i++) await new Promise((r) => setTimeout(r, 10));
  }

  async switchTo(backend: Backend): Promise<void> {
    this.backend = backend;
    this.release();
  }

  current(): Backend | undefined {
    return this.backend;
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
    const tryConnect = () => {
      if (this.held || !this.backend) {
        if (Date.now() > deadline) return fail();
        this.stats.held++;
        return void this.waiting.push(tryConnect);
      }
      const upstream = net.connect(this.backend.port, this.backend.host);
      upstream.setNoDelay(true);
      upstream.once("connect", () => {
        this.active++;
        upstream.once("close", () => this.active--);
        upstream.removeAllListeners("error");
        upstream.on("error", () => client.destroy());
        client.pipe(upstream).pipe(client);
      });
      // The backend is not there (yet): the service is between nodes. Try again, within the deadline.
      upstream.once("error", () => {
        upstream.destroy();
        if (Date.now() > deadline) return fail();
        setTimeout(tryConnect, 20);
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
