import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { down, labOptions } from "../../lib/lab/lab";
import { freshLabStack } from "../../lib/lab/stack";
import { progress } from "../../lib/log";
import { PulumiStack } from "../../lib/pulumi";
import { projectRoot } from "../../lib/toolchain";

export const help = `Usage: edge-ha bench provision [--runs N]

Times \`pulumi up\` of the edge-ha program on a lab of 3 blank nodes: cold
(blank nodes: Docker, CRIU build, rsync, swarm) and no-op (a second up), N
times (default 1), then destroys the stack and the lab. Goals: cold <= 5 min,
no-op <= 20 s. Uses its own lab ("bench", 10.77.211.0/24) and stack.
`;

/** `edge-ha bench provision`. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { runs: { type: "string", default: "1" }, help: { type: "boolean", short: "h" } } });
  if (values.help) return void process.stdout.write(help);
  const runs = Number(values.runs);
  const dir = mkdtempSync(path.join(tmpdir(), "edge-ha-bench-"));
  const lab = labOptions({ name: "bench", subnetPrefix: "10.77.211", inventoryFile: path.join(dir, "inventory.yaml") });
  const stack = new PulumiStack(projectRoot, "bench");
  const seconds = async (fn: () => Promise<unknown>) => {
    const t = process.hrtime.bigint();
    await fn();
    return Number(process.hrtime.bigint() - t) / 1e9;
  };
  try {
    for (let run = 1; run <= runs; run++) {
      await freshLabStack(lab, stack, 3);
      progress(`run ${run}: pulumi up on 3 blank nodes`);
      const cold = await seconds(() => stack.up());
      const noop = await seconds(() => stack.up());
      const noop2 = await seconds(() => stack.up());
      console.log(`run ${run}: pulumi up cold (3 blank nodes) ${cold.toFixed(1)} s; no-op up ${noop.toFixed(1)} s, ${noop2.toFixed(1)} s`);
      const destroy = await seconds(() => stack.destroy());
      console.log(`run ${run}: pulumi destroy ${destroy.toFixed(1)} s`);
    }
  } finally {
    await stack.forget();
    await down(lab);
  }
}
