import test from "ava";
import * as path from "node:path";
import { PulumiStack } from "../lib/pulumi";

// Drives the real Pulumi engine (CLI + Node language host + dynamic provider)
// against the project's local file backend.
const project = path.join(__dirname, "fixtures", "hello-stack");
const stack = new PulumiStack(project, `engine-test-${process.pid}`);

test.before(async () => {
  await stack.ensure();
  await stack.setConfig("greeting", "hi");
});

test.after.always(async () => {
  await stack.remove();
});

test.serial("up creates the command and exports its output", async (t) => {
  const { summary } = await stack.up();
  t.deepEqual(summary, { created: 2 });
  const outputs = await stack.outputs();
  t.regex(String(outputs.message), /^hi from \S+$/);
});

test.serial("a second up changes nothing", async (t) => {
  const { summary } = await stack.up();
  t.deepEqual(summary, { unchanged: 2 });
});

test.serial("a changed input updates the command in place", async (t) => {
  await stack.setConfig("greeting", "hello again");
  const { summary } = await stack.up();
  t.deepEqual(summary, { updated: 1, unchanged: 1 });
  t.regex(String((await stack.outputs()).message), /^hello again from /);
});

test.serial("destroy removes everything", async (t) => {
  await stack.destroy();
  const state = JSON.parse(await stack.exportState());
  t.deepEqual(state.deployment.resources ?? [], []);
});
