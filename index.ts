import * as pulumi from "@pulumi/pulumi";
import * as path from "node:path";
import { loadInventory } from "./lib/inventory";
import { HostFacts } from "./modules/host-facts";

// The inventory path is relative to the project folder, whatever the caller's cwd.
const config = new pulumi.Config("edge-ha");
const inventory = loadInventory(path.resolve(__dirname, config.require("inventory")));

const facts = inventory.hosts.map((host) => ({ host, facts: new HostFacts(host.name, { host }) }));

export const cluster = inventory.cluster;
export const hosts = Object.fromEntries(
  facts.map(({ host, facts }) => [host.name, { address: host.address, hostname: facts.hostname, kernel: facts.kernel, machine: facts.machine }]),
);
