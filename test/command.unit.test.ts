import test from "ava";
import { recordResources, unwrap } from "./helpers/mocks";

const registered = recordResources();
// Imported after the mocks are in place, as Pulumi's unit-testing guide asks.
import { LocalCommand, RemoteCommand } from "../modules/command";

test("LocalCommand registers a dynamic resource carrying its scripts", async (t) => {
  const cmd = new LocalCommand("probe", { create: "uname -a", delete: "true", environment: { A: "1" } });
  t.is((await unwrap(cmd.stdout)).value, "mock-probe");
  const r = registered.find((x) => x.name === "probe");
  t.truthy(r);
  t.is(r!.type, "pulumi-nodejs:dynamic/edge-ha:LocalCommand");
  t.is(r!.inputs.create, "uname -a");
  t.deepEqual(r!.inputs.environment, { A: "1" });
});

test("RemoteCommand keeps its connection (with the private key) secret", async (t) => {
  const cmd = new RemoteCommand("remote", {
    create: "hostname",
    connection: { host: "10.0.0.2", privateKey: "KEY", knownHosts: "10.0.0.2 ssh-ed25519 AAAA" },
  });
  const { value, secret } = await unwrap((cmd as any).connection);
  t.true(secret);
  t.is((value as any).privateKey, "KEY");
});
