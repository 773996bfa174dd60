import test from "ava";
import { parseInventory } from "../lib/config/inventory";
import { checkApplyFrom } from "../lib/gitops/checkout";
import { refreshDrift, swarmDrift, type SwarmNodeView } from "../lib/gitops/drift";
import { changeReport, hostOf, reportMarkdown } from "../lib/gitops/report";
import { jsonErrors } from "../scripts/commands/gitops";

/*
 * gitops without an engine: a preview's JSON read into changes per host, the
 * Markdown a review gets, the checkout apply accepts, drift from a refresh
 * and from the swarm's nodes. The real engine: test/gitops.test.ts.
 */

const step = (op: string, type: string, name: string, diffReasons?: string[]) => ({ op, urn: `urn:pulumi:prod::edge-ha::edge-ha:cluster:EdgeCluster$${type}::${name}`, diffReasons, newState: { inputs: { environment: { TOKEN: "[secret]", GREETING: "hello" } } } });
const preview = JSON.stringify({
  config: { "edge-ha:rsyncPassword": "[secret]" },
  steps: [
    step("same", "pulumi:pulumi:Stack", "edge-ha-prod"),
    step("update", "edge-ha:host:HostCommand", "pi1-labels", ["environment"]),
    step("create", "docker:index/network:Network", "pi10-service-network"),
    step("replace", "command:remote:Command", "pi2-agent", ["create", "triggers"]),
    step("create-replacement", "command:remote:Command", "pi2-agent", ["create", "triggers"]),
    step("delete-replaced", "command:remote:Command", "pi2-agent"),
    step("delete", "docker:index/service:Service", "web-service"),
  ],
  changeSummary: { same: 1, update: 1, create: 1, replace: 1, delete: 1 },
});

test("a resource belongs to the host its name starts with; pi1 never takes pi10's", (t) => {
  const hosts = ["pi1", "pi10", "pi2"];
  t.is(hostOf("pi10-service-network", hosts), "pi10");
  t.is(hostOf("pi1-labels", hosts), "pi1");
  t.is(hostOf("lab-pi2-settings", hosts), "pi2");
  t.is(hostOf("web-service", hosts), undefined);
});

test("a preview becomes changes per host, a replacement counted once, and Markdown without a value of any setting", (t) => {
  const report = changeReport(preview, "prod", ["pi1", "pi2", "pi10"], "0123456789abcdef0123");
  t.is(report.changes.length, 6);
  const md = reportMarkdown(report);
  t.is(
    md,
    [
      "### edge-ha: pulumi preview of stack `prod` at 0123456789ab",
      "",
      "| host | create | update | replace | delete |",
      "|---|---:|---:|---:|---:|",
      "| (cluster) |  |  |  | 1 |",
      "| pi1 |  | 1 |  |  |",
      "| pi10 | 1 |  |  |  |",
      "| pi2 |  |  | 1 |  |",
      "",
      "<details><summary>4 change(s)</summary>",
      "",
      "- update `pi1-labels` (edge-ha:host:HostCommand): environment",
      "- create `pi10-service-network` (docker:index/network:Network)",
      "- replace `pi2-agent` (command:remote:Command): create, triggers",
      "- delete `web-service` (docker:index/service:Service)",
      "",
      "</details>",
      "",
    ].join("\n"),
  );
  for (const text of [md, JSON.stringify(report)]) t.false(/hello|secret/.test(text), "no value reaches the review");
  t.regex(reportMarkdown(changeReport(JSON.stringify({ steps: [step("same", "pulumi:pulumi:Stack", "s")], changeSummary: { same: 12 } }), "prod", [])), /No changes: the fleet is as this commit declares it \(12 resources unchanged\)/);
});

test("apply only from a clean checkout of main; a detached CI checkout names its branch", (t) => {
  t.notThrows(() => checkApplyFrom({ branch: "main", commit: "c", dirty: [] }, "main", {}));
  t.notThrows(() => checkApplyFrom({ branch: "", commit: "c", dirty: [] }, "main", { GITHUB_REF_NAME: "main" }));
  const err = t.throws(() => checkApplyFrom({ branch: "", commit: "c", dirty: [" M stacks/Pulumi.prod.yaml", "?? notes.txt"] }, "main", {}));
  t.is(
    err!.message,
    "gitops apply refused, nothing was changed:\n" +
      "  - the checkout is detached at no named branch, expected main (changes reach the fleet only once merged there; a detached CI checkout names it in GITOPS_BRANCH)\n" +
      "  - the checkout has changes that are not committed (stacks/Pulumi.prod.yaml, notes.txt): commit them for review, or discard them",
  );
});

test("drift: a resource gone or changed, and swarm nodes whose role or labels are not the inventory's", async (t) => {
  t.deepEqual(refreshDrift(JSON.stringify({ steps: [step("refresh", "x:y:Z", "ok"), step("delete", "docker:index/network:Network", "pi1-service-network"), step("update", "docker:index/service:Service", "web-service", ["labels"])] })), [
    { subject: "pi1-service-network", what: "docker:index/network:Network is gone from its host" },
    { subject: "web-service", what: "docker:index/service:Service differs from the stack's record (update: labels)" },
  ]);
  const inventory = parseInventory(
    `cluster: site\ndefaults: { ssh: { privateKeyFile: id, knownHostsFile: kh } }\nhosts:\n` +
      `  - { name: pi1, address: 10.0.0.1, roles: [manager], labels: { zone: a, disk: ssd } }\n` +
      `  - { name: pi2, address: 10.0.0.2, roles: [worker], labels: { zone: b } }\n` +
      `  - { name: pi3, address: 10.0.0.3, roles: [worker] }\n`,
    "site.yaml",
  );
  const nodes = async (): Promise<SwarmNodeView[]> => [
    { address: "10.0.0.1", role: "manager", labels: { zone: "a" } },
    { address: "10.0.0.2", role: "manager", labels: { zone: "c", extra: "1" } },
  ];
  t.deepEqual(await swarmDrift(inventory, nodes), [
    { subject: "pi1", what: "has no label disk (the inventory says ssd)" },
    { subject: "pi2", what: "is a swarm manager, the inventory says worker" },
    { subject: "pi2", what: "has label zone=c, the inventory says b" },
    { subject: "pi2", what: "has a label extra=1 the inventory does not have" },
    { subject: "pi3", what: "is in no swarm at 10.0.0.3, the inventory has it as a worker" },
  ]);
});

test("a failed preview's errors come from its JSON's diagnostics, without colours or stack frames", (t) => {
  const output = JSON.stringify({
    steps: [],
    diagnostics: [
      { message: "error: Running program 'index.ts' failed with an unhandled exception:\nError: greeting: expected a word, found none\n    at Object.<anonymous> \u001b[90m(index.ts:1:7)\u001b[39m\n", severity: "error" },
      { message: "a warning", severity: "warning" },
    ],
  });
  t.is(jsonErrors(output), "Running program 'index.ts' failed with an unhandled exception: Error: greeting: expected a word, found none");
  t.is(jsonErrors("not json"), "");
});
