import { PulumiStack } from "../pulumi";
import { down, LabOptions, up } from "./lab";

/**
 * A lab of `nodes` blank nodes (and a witness, when asked) and a stack pointed at its inventory, both new:
 * what a previous run left (even state for nodes that no longer exist) is
 * dropped first. For tests and benchmarks, which own their lab and stack.
 */
export async function freshLabStack(lab: LabOptions, stack: PulumiStack, nodes: number, options: Parameters<typeof up>[2] = {}): Promise<void> {
  await stack.forget();
  await down(lab);
  await up(lab, nodes, options);
  await stack.ensure();
  await stack.setConfig("edge-ha:inventory", lab.inventoryFile);
}
