import * as pulumi from "@pulumi/pulumi";
import { hostScript } from "../../lib/host/shell";
import { HostCommand } from "../command";
import type { ClusterNode } from "../host-facts";

export interface SwarmClusterArgs {
  /** The swarm's nodes, each after its dependsOn (its Docker engine); the first with role manager initializes the swarm. */
  nodes: ClusterNode[];
}

/** Resolves the host's inventory address to the IPv4 address swarm advertises. */
const advertiseAddress = `ip=$(getent ahostsv4 "$ADDR" | awk 'NR==1{print $1}'); [ -n "$ip" ] || ip=$ADDR`;

/**
 * Docker Swarm over the inventory's hosts. The first manager initializes it;
 * every other node joins (as a worker, then promoted when the inventory says
 * manager), and its labels and role are set from the manager, so a change of
 * labels or role touches only that node. Nodes already in a swarm are left as
 * they are. Removing a node drains it, demotes it, removes it from the swarm,
 * and makes it leave. Join tokens are secret outputs.
 */
export class SwarmCluster extends pulumi.ComponentResource {
  readonly leaderAddress: string;
  readonly workerToken: pulumi.Output<string>;
  readonly managerToken: pulumi.Output<string>;
  /** Swarm node ID per inventory host name. */
  readonly nodeIds: Record<string, pulumi.Output<string>> = {};

  constructor(name: string, args: SwarmClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("edge-ha:cluster:SwarmCluster", name, {}, opts);
    const leader = args.nodes.find((n) => n.host.roles.includes("manager"));
    if (!leader) throw new pulumi.ResourceError("expected at least one host with roles: [manager] to start the swarm on, found none; give one host that role in the inventory", this);
    this.leaderAddress = leader.host.address;

    const init = new HostCommand(
      `${name}-init`,
      {
        connection: leader.connection,
        environment: { ADDR: leader.host.address },
        create: hostScript(`
${advertiseAddress}
if [ "$(docker info -f '{{.Swarm.LocalNodeState}}')" != active ]; then
  docker swarm init --advertise-addr "$ip" --listen-addr "$ip:2377" >/dev/null
fi
docker info -f '{{.Swarm.NodeID}}'
docker swarm join-token -q worker
docker swarm join-token -q manager`),
        delete: `docker swarm leave --force >/dev/null 2>&1 || true`,
      },
      { parent: this, dependsOn: leader.dependsOn, additionalSecretOutputs: ["stdout"] },
    );
    const line = (i: number) => init.stdout.apply((s) => s.split("\n")[i] ?? "");
    this.workerToken = pulumi.secret(line(1));
    this.managerToken = pulumi.secret(line(2));
    // The node ID is not secret; unwrap it from the secret stdout.
    this.nodeIds[leader.host.name] = pulumi.unsecret(line(0));

    for (const node of args.nodes) {
      const isLeader = node === leader;
      let nodeId = this.nodeIds[leader.host.name];
      let member: HostCommand | undefined;
      if (!isLeader) {
        member = new HostCommand(
          `${name}-${node.host.name}-member`,
          {
            connection: node.connection,
            environment: { ADDR: node.host.address, LEADER: leader.host.address, TOKEN: this.workerToken },
            create: hostScript(`
${advertiseAddress}
if [ "$(docker info -f '{{.Swarm.LocalNodeState}}')" != active ]; then
  docker swarm join --token "$TOKEN" --advertise-addr "$ip" --listen-addr "$ip:2377" "$LEADER:2377" >/dev/null
fi
docker info -f '{{.Swarm.NodeID}}'`),
            delete: `docker swarm leave --force >/dev/null 2>&1 || true`,
          },
          { parent: this, dependsOn: [init, ...(node.dependsOn ?? [])] },
        );
        nodeId = member.stdout;
        this.nodeIds[node.host.name] = nodeId;
      }

      const labels = Object.entries(node.host.labels).map(([k, v]) => `${k}=${v}`).join("\n");
      new HostCommand(
        `${name}-${node.host.name}-settings`,
        {
          connection: leader.connection,
          environment: { NODE_ID: nodeId, LABELS: labels, ROLE: node.host.roles[0] },
          create: hostScript(`
wanted=()
while IFS= read -r kv; do [ -n "$kv" ] && wanted+=("$kv"); done <<<"$LABELS"
args=()
while IFS= read -r kv; do
  [ -z "$kv" ] && continue
  keep=0
  for w in "\${wanted[@]}"; do [ "\${w%%=*}" = "\${kv%%=*}" ] && keep=1; done
  [ $keep = 1 ] || args+=(--label-rm "\${kv%%=*}")
done < <(docker node inspect -f '{{range $k, $v := .Spec.Labels}}{{$k}}={{$v}}{{println}}{{end}}' "$NODE_ID")
for w in "\${wanted[@]}"; do args+=(--label-add "$w"); done
retry 5 docker node update --availability active "\${args[@]}" "$NODE_ID" >/dev/null
if [ "$(docker node inspect -f '{{.Spec.Role}}' "$NODE_ID")" != "$ROLE" ]; then
  if [ "$ROLE" = manager ]; then retry 5 docker node promote "$NODE_ID" >/dev/null; else retry 5 docker node demote "$NODE_ID" >/dev/null; fi
fi
docker node inspect -f '{{.Spec.Role}} {{range $k, $v := .Spec.Labels}}{{$k}}={{$v}} {{end}}' "$NODE_ID"`),
          // The first manager keeps its place until the swarm itself goes.
          delete: isLeader
            ? undefined
            : hostScript(`
docker node inspect "$NODE_ID" >/dev/null 2>&1 || exit 0
retry 5 docker node update --availability drain "$NODE_ID" >/dev/null
wait_for 60 "the tasks of $NODE_ID to move away" sh -c "[ -z \\"\\$(docker node ps -q --filter desired-state=running $NODE_ID)\\" ]" || true
[ "$(docker node inspect -f '{{.Spec.Role}}' "$NODE_ID")" = manager ] && retry 5 docker node demote "$NODE_ID" >/dev/null
retry 5 docker node rm --force "$NODE_ID" >/dev/null`),
        },
        { parent: this, dependsOn: member ? [member] : [init] },
      );
    }

    this.registerOutputs({ leaderAddress: this.leaderAddress, workerToken: this.workerToken, managerToken: this.managerToken, nodeIds: this.nodeIds });
  }
}
