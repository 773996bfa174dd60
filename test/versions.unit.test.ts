import test from "ava";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import * as path from "node:path";

// The plugins scripts/setup builds and installs must be the versions the npm
// packages ask for: the engine would otherwise look for (and try to download)
// another version, or run a provider whose schema the SDK does not match.
const root = path.join(__dirname, "..");
const setup = readFileSync(path.join(root, "scripts", "setup"), "utf8");
const pinned = (name: string) => JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")).dependencies[name] as string;
const installed = (name: string) => JSON.parse(readFileSync(path.join(root, "node_modules", name, "package.json"), "utf8")).version as string;
const setupVersion = (variable: string) => new RegExp(`^${variable}=(\\S+)$`, "m").exec(setup)?.[1];

for (const [pkg, variable] of [["@pulumi/command", "COMMAND_PLUGIN_VERSION"], ["@pulumi/docker", "DOCKER_PLUGIN_VERSION"], ["@pulumi/pulumi", "PULUMI_VERSION"]] as const) {
  test(`${pkg}: package.json pins one exact version, the lockfile installed it, and setup installs the same plugin version`, (t) => {
    t.regex(pinned(pkg), /^\d+\.\d+\.\d+$/, "an exact version, no range");
    t.is(installed(pkg), pinned(pkg));
    t.is(setupVersion(variable), pinned(pkg), `scripts/setup ${variable}`);
  });
}

test("the stack files in the repository carry no machine's secrets: no encryptionsalt (it binds a stack to the passphrase one machine generated, and a fresh clone's demo then fails at once)", (t) => {
  const root = path.join(__dirname, "..");
  const tracked = execFileSync("git", ["ls-files", "stacks"], { cwd: root, encoding: "utf8" }).split("\n").filter((f) => /Pulumi\..*\.yaml$/.test(f));
  t.true(tracked.length > 0);
  for (const f of tracked) t.notRegex(readFileSync(path.join(root, f), "utf8"), /^encryptionsalt:/m, `${f} holds an encryptionsalt: remove the line (pulumi writes it at a local stack init)`);
});
