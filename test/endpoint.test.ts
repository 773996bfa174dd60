import test from "ava";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { Endpoint } from "../lib/ha/endpoint";
import { Prober, summarize } from "../lib/lab/prober";

/** A stand-in for the counter service: real HTTP on loopback, its count given at start. */
async function counterServer(start: number): Promise<{ port: number; close: () => Promise<void> }> {
  let count = start;
  const server = http.createServer((req, res) => {
    if (req.method === "POST") count++;
    res.setHeader("connection", "close");
    res.end(JSON.stringify({ count, host: "test" }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { port: (server.address() as AddressInfo).port, close: () => new Promise((r) => server.close(() => r())) };
}

test("the endpoint holds clients while the service moves, then sends them to the new backend: no request fails", async (t) => {
  const first = await counterServer(0);
  const endpoint = new Endpoint({ listen: { host: "127.0.0.1", port: 0 }, backend: { host: "127.0.0.1", port: first.port } });
  await endpoint.start();
  const port = ((endpoint as any).server.address() as AddressInfo).port;
  const prober = new Prober({ host: "127.0.0.1", port });
  prober.start();
  try {
    await new Promise((r) => setTimeout(r, 300));
    await endpoint.hold();
    const before = (await first.close(), prober.probes.filter((p) => p.ok).pop()!.count!);
    await new Promise((r) => setTimeout(r, 400)); // the service is "between nodes"
    const second = await counterServer(before);
    await endpoint.switchTo({ host: "127.0.0.1", port: second.port });
    await new Promise((r) => setTimeout(r, 300));
    const summary = summarize(await prober.stop());
    await second.close();
    t.is(summary.failed, 0);
    t.true(summary.longestGapMs >= 350, `gap ${summary.longestGapMs} ms`);
    t.is(summary.lostIncrements, 0, "state carried over: the count goes on from where it was");
    t.true(endpoint.stats.held > 0);
  } finally {
    await prober.stop();
    await endpoint.stop();
  }
});

test("a client that waits longer than the hold limit is cut, and the prober counts it as failed", async (t) => {
  const endpoint = new Endpoint({ listen: { host: "127.0.0.1", port: 0 }, holdMs: 200 });
  await endpoint.start();
  const port = ((endpoint as any).server.address() as AddressInfo).port;
  const prober = new Prober({ host: "127.0.0.1", port }, 10, 1000);
  prober.start();
  await new Promise((r) => setTimeout(r, 500));
  const summary = summarize(await prober.stop());
  await endpoint.stop();
  t.true(summary.failed >= 1);
  t.is(summary.requests, summary.failed);
});

test("with several backends and a health check, clients move to the next backend when the first goes away", async (t) => {
  const first = await counterServer(100);
  const second = await counterServer(0);
  const endpoint = new Endpoint({ listen: { host: "127.0.0.1", port: 0 }, healthCheck: { everyMs: 50, failures: 2 } });
  endpoint.setBackends([{ host: "127.0.0.1", port: first.port }, { host: "127.0.0.1", port: second.port }]);
  await endpoint.start();
  const prober = new Prober({ host: "127.0.0.1", port: endpoint.port() });
  prober.start();
  try {
    await new Promise((r) => setTimeout(r, 300));
    await first.close();
    await new Promise((r) => setTimeout(r, 500));
    const summary = summarize(await prober.stop());
    t.is(summary.failed, 0);
    t.is(prober.probes.at(-1)!.count! < 100, true, "served by the second backend");
    t.true(summary.lostIncrements! > 0, "the second backend has its own state: what the first counted is lost");
    t.deepEqual(endpoint.events.map((e) => [e.backend, e.up]), [[`127.0.0.1:${first.port}`, false]]);
  } finally {
    await prober.stop();
    await endpoint.stop();
    await second.close();
  }
});

test("with an http health check, a backend that accepts connections but fails its check is marked down", async (t) => {
  let sick = false;
  const server = http.createServer((req, res) => {
    res.setHeader("connection", "close");
    res.statusCode = req.url === "/health" && sick ? 503 : 200;
    res.end("{}");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const endpoint = new Endpoint({ listen: { host: "127.0.0.1", port: 0 }, healthCheck: { everyMs: 50, failures: 2, httpPath: "/health" } });
  endpoint.setBackends([{ host: "127.0.0.1", port }]);
  await endpoint.start();
  try {
    await new Promise((r) => setTimeout(r, 200));
    t.deepEqual(endpoint.events, [], "passing: up");
    sick = true;
    await new Promise((r) => setTimeout(r, 300));
    t.deepEqual(endpoint.events.map((e) => e.up), [false], "503 on /health while it still accepts: down");
    sick = false;
    await new Promise((r) => setTimeout(r, 200));
    t.deepEqual(endpoint.events.map((e) => e.up), [false, true], "passing again: up");
  } finally {
    await endpoint.stop();
    await new Promise((r) => server.close(() => r(undefined)));
  }
});
