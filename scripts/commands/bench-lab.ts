import { $ } from "zx";
import { UsageError } from "../../lib/log";
import { down, labOptions, up } from "../../lib/lab/lab";
import { nodeImage } from "../../lib/lab/image";

export const help = `Usage: edge-ha bench lab [--skip-cold]

Times \`lab up\` for 3 nodes: cold (the node image built from scratch with
debootstrap, unless --skip-cold) and warm (image cached, nodes new), and a
no-op \`lab up\`. Goal: warm < 60 s. Uses its own lab ("bench", 10.77.210.0/24).
`;

/** `edge-ha bench lab`. */
export async function main(args: string[]): Promise<void> {
  if (args.includes("--help") || args.includes("-h")) return void process.stdout.write(help);
  const unknown = args.filter((a) => a !== "--skip-cold");
  if (unknown.length) throw new UsageError(`unexpected arguments: ${unknown.join(" ")}`);
  const lab = labOptions({ name: "bench", subnetPrefix: "10.77.210", inventoryFile: "/tmp/edge-ha-bench-inventory.yaml" });
  const time = async (what: string, fn: () => Promise<unknown>) => {
    const t = process.hrtime.bigint();
    await fn();
    const s = Number(process.hrtime.bigint() - t) / 1e9;
    console.log(`${what.padEnd(34)} ${s.toFixed(1)} s`);
    return s;
  };
  try {
    await down(lab);
    if (!args.includes("--skip-cold")) {
      const cache = process.env.EDGE_HA_CACHE ?? "/var/cache/edge-ha";
      await $({ quiet: true, nothrow: true })`docker image rm ${nodeImage}`;
      await $({ quiet: true })`rm -f ${`${cache}/${nodeImage.replace(/[/:]/g, "_")}.tar`}`;
      await time("lab up, 3 nodes, cold (image build)", () => up(lab, 3));
      await down(lab);
    }
    for (let i = 1; i <= 3; i++) {
      await time(`lab up, 3 nodes, warm (run ${i})`, () => up(lab, 3));
      await time(`lab up again (no-op, run ${i})`, () => up(lab, 3));
      await down(lab);
    }
  } finally {
    await down(lab);
  }
}
