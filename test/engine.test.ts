import test from "ava";
import * as path from "node:path";
import { $ } from "zx";
import { PulumiStack } from "../lib/pulumi";
import { pulumiEnv } from "../lib/toolchain";

// Drives the real Pulumi engine (CLI, Node language host, the command and
// docker provider plugins) against the project's local file backend and this
// machine's Docker engine.
const project = path.join(__dirname, "fixtures", "hello-stack");
const stack = new PulumiStack(project, `engine-test-${process.pid}`);
const networkName = `edge-ha-engine-test-${stack.stack}`;
const networkExists = async () => (await $({ nothrow: true, quiet: true })`docker network inspect ${networkName}`).exitCode === 0;

test.before(async () => {
  await stack.ensure();
  await stack.setConfig("greeting", "hi");
});

test.after.always(async () => {
  await stack.remove();
});

test.serial("the engine runs with the plugins setup installed: command 1.2.1, docker 4.11.0, language host 3.248.0", async (t) => {
  const env = pulumiEnv();
  const plugins = JSON.parse((await $({ env, quiet: true, cwd: project })`pulumi plugin ls --json`).stdout) as { name: string; kind: string; version: string }[];
  const resource = plugins.filter((p) => p.kind === "resource").map((p) => `${p.name} ${p.version}`);
  t.true(resource.includes("command 1.2.1"), resource.join(", "));
  t.true(resource.includes("docker 4.11.0"), resource.join(", "));
  // The language host the CLI runs is the one beside it; it reports the version it was built as.
  const about = JSON.parse((await $({ env, quiet: true, cwd: project })`pulumi about --json`).stdout) as { plugins: { name: string; kind: string; version: string }[] };
  const language = about.plugins.find((p) => p.kind === "language" && p.name === "nodejs");
  t.is(language?.version, "3.248.0", JSON.stringify(about.plugins));
});

test.serial("up creates the command and the network, and exports the command's output", async (t) => {
  const { summary } = await stack.up();
  t.deepEqual(summary, { created: 3 });
  const outputs = await stack.outputs();
  t.regex(String(outputs.message), /^hi from \S+$/);
  t.true(await networkExists(), "the network is on this machine's engine");
});

test.serial("a second up changes nothing", async (t) => {
  const { summary } = await stack.up();
  t.deepEqual(summary, { unchanged: 3 });
});

test.serial("a changed input updates the command in place", async (t) => {
  await stack.setConfig("greeting", "hello again");
  const { summary } = await stack.up();
  t.deepEqual(summary, { updated: 1, unchanged: 2 });
  t.regex(String((await stack.outputs()).message), /^hello again from /);
});

test.serial("the state holds no serialized provider code: no dynamic providers", async (t) => {
  const state = await stack.exportState();
  t.false(state.includes("__provider"));
  t.false(state.includes("pulumi-nodejs:dynamic"));
});

test.serial("destroy removes everything", async (t) => {
  await stack.destroy();
  const state = JSON.parse(await stack.exportState());
  t.deepEqual(state.deployment.resources ?? [], []);
  t.false(await networkExists());
});
