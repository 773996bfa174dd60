import * as pulumi from "@pulumi/pulumi";

export interface RegisteredResource {
  type: string;
  name: string;
  inputs: Record<string, any>;
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
        registered.push({ type: args.type, name: args.name, inputs: args.inputs });
        return { id: `${args.name}-id`, state: { ...args.inputs, stdout: `mock-${args.name}` } };
      },
      call(args) {
        return args.inputs;
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
