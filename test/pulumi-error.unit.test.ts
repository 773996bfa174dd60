import test from "ava";
import { PulumiError } from "../lib/pulumi";

test("a failed pulumi run is said in one sentence: Pulumi's error lines once each, a list that follows one included, no engine boilerplate", (t) => {
  const output = `Previewing update (provtest):
  + pulumi:pulumi:Stack edge-ha-provtest create
Diagnostics:
  pulumi:pulumi:Stack (edge-ha-provtest):
    error: stacks/Pulumi.provtest.yaml has invalid settings:
      - edge-ha:criuSource: expected one of auto, distro, build, found "sometimes"
    error: preview failed
  command:remote:Command (node3-engine):
    error: command failed on node3: exit status 1
    error: command failed on node3: exit status 1
  - node3-facts delete
`;
  const err = new PulumiError("pulumi preview --stack provtest", output, "/tmp/x.log");
  t.is(
    err.message,
    'pulumi preview --stack provtest failed: stacks/Pulumi.provtest.yaml has invalid settings: - edge-ha:criuSource: expected one of auto, distro, build, found "sometimes"; command failed on node3: exit status 1 (whole output: /tmp/x.log)',
  );
  t.is(err.output, output);
  t.is(PulumiError.errorsOf("just one line\n"), "just one line", "no error line: its last line");
});

test("a host command's failure carries what the host said, not only Pulumi's line about the exit status", (t) => {
  const output = `Updating (owntest):
 +  command:remote:Command ghost-sync creating (0s) error: Process exited with status 1: running "bash -s -- create":
 +  command:remote:Command ghost-sync **creating failed** error: Process exited with status 1: running "bash -s -- create":
    pulumi:pulumi:Stack edge-ha-owntest running error: update failed
Diagnostics:
  command:remote:Command (ghost-sync):
    error: Process exited with status 1: running "bash -s -- create":
    ghost cannot be checkpointed on node2. CRIU's errors:
      (00.013994) Error (criu/files-reg.c:1031): Can't dump ghost file /var/tmp/big of 2002944 size, increase limit
    Likely cause: a deleted file

Outputs:
    clusterName   : "owntest"
`;
  t.is(
    PulumiError.errorsOf(output),
    `Process exited with status 1: running "bash -s -- create":\n  ghost cannot be checkpointed on node2. CRIU's errors:\n    (00.013994) Error (criu/files-reg.c:1031): Can't dump ghost file /var/tmp/big of 2002944 size, increase limit\n  Likely cause: a deleted file`,
  );
});
