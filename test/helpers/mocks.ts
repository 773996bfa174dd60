import * as pulumi from "@pulumi/pulumi";

export interface RegisteredResource {
  type: string;
  name: string;
  /** Inputs with secrets unwrapped to their values. */
  inputs: Record<string, any>;
  /** Paths of the inputs that were secret, e.g. "connection" or "environment.TOKEN". */
  secretInputs: string[];
}

function unwrapSecrets(value: any, at: string, found: string[]): any {
  if (value === null || typeof value !== "object") return value;
  // Assets and archives as the program made them: their path is a promise (`await r.inputs.source.path`).
  if (value instanceof pulumi.asset.Asset || value instanceof pulumi.asset.Archive) return value;
  // The mock monitor hands secrets over in their RPC form; Pulumi's own runtime tells them.
  if (pulumi.runtime.isRpcSecret(value)) {
    found.push(at);
    return unwrapSecrets(pulumi.runtime.unwrapRpcSecret(value), at, found);
  }
  if (Array.isArray(value)) return value.map((v, i) => unwrapSecrets(v, `${at}[${i}]`, found));
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unwrapSecrets(v, at ? `${at}.${k}` : k, found)]));
}

/** A command's output: what a checkpoints sshd's install prints (its keys, named after it), else "mock-NAME". */
function mockStdout(name: string): string {
  if (name.endsWith("-sshd")) return `host-key ssh-ed25519 AAAAhost-${name}\nclient-key ssh-ed25519 AAAAclient-${name}\n`;
  return `mock-${name}`;
}

/**
 * Installs Pulumi's unit-test mocks and records every resource registered, so a
 * test can assert on which resources a program creates and with what inputs.
 */
export function recordResources(): RegisteredResource[] {
  const registered: RegisteredResource[] = [];
  pulumi.runtime.setMocks(
    {
      newResource(args) {
        const secretInputs: string[] = [];
        const inputs = unwrapSecrets(args.inputs, "", secretInputs);
        registered.push({ type: args.type, name: args.name, inputs, secretInputs });
        return { id: `${args.name}-id`, state: { ...args.inputs, stdout: mockStdout(args.name) } };
      },
      // The program calls no provider function; one that does must be mocked here first.
      call(args) {
        throw new Error(`unexpected call of ${args.token}: mock it in test/helpers/mocks.ts`);
      },
    },
    "edge-ha",
    "unit",
    false,
  );
  return registered;
}

/** The value inside an Output, and whether it is marked secret. */
export async function unwrap<T>(output: pulumi.Output<T>): Promise<{ value: T; secret: boolean }> {
  const value = await new Promise<T>((resolve) => output.apply(resolve));
  const secret = await (output as any).isSecret;
  return { value, secret };
}
