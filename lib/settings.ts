import { UserError } from "./log";
import { defaultCriuVersion, knownSourceSha256, type CriuSource } from "../modules/criu";
import type { DockerSource } from "../modules/docker-engine";

/*
 * The stack's settings: the `edge-ha:*` keys of stacks/Pulumi.<stack>.yaml,
 * declared (with types and defaults) in Pulumi.yaml. Read from a plain
 * key/value map so that tests need no engine.
 */

export interface ClusterSettings {
  inventory: string;
  dockerSource: DockerSource;
  dockerLogMaxSize: string;
  dockerLogMaxFiles: number;
  criuSource: CriuSource;
  criuVersion: string;
  criuTcpEstablished: boolean;
  criuFileLocks: boolean;
  criuSkipInFlight: boolean;
  rsyncPort: number;
}

export const settingDefaults: Omit<ClusterSettings, "inventory"> = {
  dockerSource: "debian",
  dockerLogMaxSize: "10m",
  dockerLogMaxFiles: 3,
  criuSource: "auto",
  criuVersion: defaultCriuVersion,
  criuTcpEstablished: true,
  criuFileLocks: true,
  criuSkipInFlight: true,
  rsyncPort: 873,
};

/** Keys that exist but are not in ClusterSettings (secrets are read separately). */
const secretKeys = ["rsyncPassword"];

/** A stack config that is not right; names the file and every bad key. */
export class SettingsError extends UserError {
  constructor(file: string, problems: string[]) {
    super(`${file} has invalid settings:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "SettingsError";
  }
}

/**
 * Validates the `edge-ha:` keys (`raw` maps bare key names to the text values
 * Pulumi keeps) and fills in defaults. `file` is named in messages.
 */
export function parseSettings(raw: Record<string, string>, file: string): ClusterSettings {
  const problems: string[] = [];
  const known = ["inventory", ...Object.keys(settingDefaults), ...secretKeys];
  for (const key of Object.keys(raw)) {
    if (!known.includes(key)) problems.push(`edge-ha:${key}: unknown setting (known: ${known.join(", ")})`);
  }
  const text = (key: string, pattern: RegExp, expected: string): string | undefined => {
    const value = raw[key];
    if (value === undefined) return undefined;
    if (!pattern.test(value)) problems.push(`edge-ha:${key}: expected ${expected}, found "${value}"`);
    return value;
  };
  const oneOf = <T extends string>(key: string, values: readonly T[]) => text(key, new RegExp(`^(${values.map((v) => v.replace(/[.]/g, "\\.")).join("|")})$`), `one of ${values.join(", ")}`) as T | undefined;
  const integer = (key: string, min: number, max: number) => {
    const v = text(key, /^\d+$/, `a whole number from ${min} to ${max}`);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (n < min || n > max) problems.push(`edge-ha:${key}: expected a whole number from ${min} to ${max}, found ${n}`);
    return n;
  };
  const boolean = (key: string) => {
    const v = text(key, /^(true|false)$/, "true or false");
    return v === undefined ? undefined : v === "true";
  };

  const inventory = raw.inventory;
  if (!inventory) problems.push(`edge-ha:inventory: expected the path of the fleet's inventory file, found nothing`);
  const settings: ClusterSettings = {
    inventory: inventory ?? "",
    dockerSource: oneOf("dockerSource", ["debian", "docker"] as const) ?? settingDefaults.dockerSource,
    dockerLogMaxSize: text("dockerLogMaxSize", /^\d+[kmg]$/, "a size such as 10m") ?? settingDefaults.dockerLogMaxSize,
    dockerLogMaxFiles: integer("dockerLogMaxFiles", 1, 100) ?? settingDefaults.dockerLogMaxFiles,
    criuSource: oneOf("criuSource", ["auto", "distro", "build"] as const) ?? settingDefaults.criuSource,
    // Only versions whose source tarball checksum edge-ha carries can be built.
    criuVersion: oneOf("criuVersion", Object.keys(knownSourceSha256)) ?? settingDefaults.criuVersion,
    criuTcpEstablished: boolean("criuTcpEstablished") ?? settingDefaults.criuTcpEstablished,
    criuFileLocks: boolean("criuFileLocks") ?? settingDefaults.criuFileLocks,
    criuSkipInFlight: boolean("criuSkipInFlight") ?? settingDefaults.criuSkipInFlight,
    rsyncPort: integer("rsyncPort", 1, 65535) ?? settingDefaults.rsyncPort,
  };
  if (problems.length) throw new SettingsError(file, problems);
  return settings;
}
