import test from "ava";
import { copyFileSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import * as path from "node:path";
import { $ } from "zx";
import { PulumiStack } from "../lib/pulumi";
import { projectRoot } from "../lib/toolchain";

/*
 * edge-ha gitops on the real Pulumi engine and plugins, against the local
 * file backend and this machine's Docker engine: a git repository holding a
 * small project (test/fixtures/hello-stack: a command and a Docker network),
 * changed through commits on branches as a pipeline would see them. The
 * swarm's side of drift runs against the lab in the maintenance tests'
 * companion (unit: test/gitops.unit.test.ts).
 */
const fixture = path.join(__dirname, "fixtures", "hello-stack");
// Inside the project, so that the program finds the project's node_modules.
const repo = path.join(__dirname, "fixtures", `.gitops-${process.pid}`);
const stack = new PulumiStack(repo, `gitops-test-${process.pid}`);
const network = `edge-ha-engine-test-${stack.stack}`;
const git = $({ cwd: repo, quiet: true });
const edgeHa = (...args: string[]) => $({ quiet: true, nothrow: true, cwd: repo })`${path.join(projectRoot, "bin", "edge-ha")} gitops ${args} --project ${repo} --stack ${stack.stack}`;

test.before(async () => {
  mkdirSync(repo, { recursive: true });
  for (const f of ["Pulumi.yaml", "index.ts"]) copyFileSync(path.join(fixture, f), path.join(repo, f));
  await git`git init -q -b main`;
  await git`git config user.email gitops@edge-ha.test`;
  await git`git config user.name gitops`;
  await stack.ensure();
  await stack.setConfig("greeting", "hi");
  await git`git add -A`;
  await git`git commit -q -m ${"the fleet as first declared"}`;
});

test.after.always(async () => {
  // What exists is read back first: a network removed by hand is not deleted again.
  await stack.refresh().catch(() => undefined);
  await stack.remove().catch(() => undefined);
  rmSync(repo, { recursive: true, force: true });
});

test.serial("apply from a clean checkout of main creates the fleet", async (t) => {
  const r = await edgeHa("apply");
  t.is(r.exitCode, 0, r.stderr);
  const head = (await git`git rev-parse HEAD`).stdout.trim();
  t.is(r.stdout.trim(), `applied ${head.slice(0, 12)} to stack ${stack.stack}: created 3`);
});

test.serial("preview of a proposed change: the changes per resource in Markdown and JSON, no value of any setting, a secret least of all", async (t) => {
  await git`git checkout -q -b change`;
  await stack.setConfig("greeting", "s3cret-greeting", true);
  await git`git commit -q -am ${"a new greeting"}`;
  const md = path.join(repo, "..", `.gitops-${process.pid}.md`);
  t.teardown(() => rmSync(md, { force: true }));
  const r = await edgeHa("preview", "--json", "--md", md);
  t.is(r.exitCode, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  t.deepEqual(report.changes, [{ op: "update", type: "command:local:Command", name: "hello", properties: ["environment"] }]);
  t.is(report.commit, (await git`git rev-parse HEAD`).stdout.trim());
  const markdown = readFileSync(md, "utf8");
  t.regex(markdown, /\| \(cluster\) \|  \| 1 \|  \|  \|/);
  t.regex(markdown, /- update `hello` \(command:local:Command\): environment/);
  for (const text of [r.stdout, markdown]) t.false(text.includes("s3cret"), "the secret appears nowhere");
});

test.serial("apply refuses a branch other than main, and changes not committed, changing nothing", async (t) => {
  const onBranch = await edgeHa("apply");
  t.is(onBranch.exitCode, 1);
  t.regex(onBranch.stderr, /gitops apply refused, nothing was changed:\n {2}- the checkout is on branch change, expected main/);
  await git`git checkout -q main`;
  await $({ cwd: repo, quiet: true })`sh -c ${"echo '// an edit' >> index.ts"}`;
  const dirty = await edgeHa("apply");
  t.is(dirty.exitCode, 1);
  t.regex(dirty.stderr, /the checkout has changes that are not committed \(index\.ts\)/);
  await git`git checkout -q -- index.ts`;
  t.regex(String((await stack.outputs()).message), /^hi from /, "the fleet still says hi");
});

test.serial("once merged, apply updates only what changed; a second apply at once is refused by the backend's lock and says so", async (t) => {
  await git`git merge -q change`;
  const [first, second] = await Promise.all([edgeHa("apply"), new Promise((r) => setTimeout(r, 500)).then(() => edgeHa("apply"))]);
  const results = [first, second];
  const applied = results.filter((r) => r.exitCode === 0);
  const refused = results.filter((r) => r.exitCode !== 0);
  t.is(applied.length, 1, results.map((r) => r.stdout + r.stderr).join("\n"));
  t.regex(applied[0].stdout, /: updated 1, unchanged 2$/m);
  t.is(refused.length, 1);
  t.regex(refused[0].stderr, /another apply of stack gitops-test-\d+ is running \(the backend holds its lock\): this one changed nothing/);
  t.regex(String((await stack.outputs()).message), /^s3cret-greeting from /);
});

test.serial("a bare repository with the example hooks: a push to main is previewed, then applied; a push whose preview fails is refused and changes nothing", async (t) => {
  const bare = `${repo}-site.git`;
  t.teardown(() => rmSync(bare, { recursive: true, force: true }));
  await $({ quiet: true })`git init -q --bare -b main ${bare}`;
  for (const hook of ["pre-receive", "post-receive"]) copyFileSync(path.join(projectRoot, "examples", "gitops", hook), path.join(bare, "hooks", hook));
  await git`git remote add site ${bare}`;
  // Trees are checked out beside the project's node_modules, as EDGE_HA_NODE_MODULES does elsewhere.
  const env = { ...process.env, EDGE_HA: path.join(projectRoot, "bin", "edge-ha"), EDGE_HA_STACK: stack.stack, WORK_DIR: path.dirname(repo) };
  const push = () => $({ cwd: repo, quiet: true, nothrow: true, env })`git push site main`;

  await stack.setConfig("greeting", "pushed");
  await git`git commit -q -am ${"greet as pushed"}`;
  const accepted = await push();
  t.is(accepted.exitCode, 0, accepted.stderr);
  t.regex(accepted.stderr, /### edge-ha: pulumi preview of stack `gitops-test-\d+`[\s\S]*- update `hello` \(command:local:Command\): environment/);
  t.regex(accepted.stderr, /applied [0-9a-f]{12} to stack gitops-test-\d+: updated 1, unchanged 2/);
  t.regex(String((await stack.outputs()).message), /^pushed from /);

  await $({ cwd: repo, quiet: true })`sh -c ${"printf 'throw new Error(\"greeting: expected a word, found none\");\n' | cat - index.ts > index.new && mv index.new index.ts"}`;
  await git`git commit -q -am ${"a broken program"}`;
  const refused = await push();
  t.not(refused.exitCode, 0);
  t.regex(refused.stderr, /greeting: expected a word, found none/);
  t.regex(refused.stderr, /push refused: the preview of [0-9a-f]{12} failed \(above\); nothing was changed/);
  t.is((await $({ quiet: true })`git --git-dir ${bare} rev-parse main`).stdout.trim(), (await git`git rev-parse HEAD~1`).stdout.trim(), "the site's main is still the last good commit");
  t.regex(String((await stack.outputs()).message), /^pushed from /, "the fleet did not change");
  await git`git reset -q --hard HEAD~1`;
});

test.serial("drift: none (exit 0), then a network removed by hand is drift (exit 3), named", async (t) => {
  const clean = await edgeHa("drift");
  t.is(clean.exitCode, 0, clean.stderr);
  t.is(clean.stdout.trim(), `no drift in stack ${stack.stack}`);
  await $({ quiet: true })`docker network rm ${network}`;
  const drift = await edgeHa("drift", "--json");
  t.is(drift.exitCode, 3, drift.stderr);
  t.deepEqual(JSON.parse(drift.stdout).items, [{ subject: "net", what: "docker:index/network:Network is gone from its host" }]);
});
