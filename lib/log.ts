const progressListeners = new Set<(message: string) => void>();

/** Progress lines for long work, on stderr so stdout stays parseable (and to whoever listens: the dashboard's actions). */
export function progress(message: string): void {
  if (process.env.EDGE_HA_QUIET !== "1") process.stderr.write(`• ${message}\n`);
  for (const listener of progressListeners) listener(message);
}

/** Calls `listener` with every progress line from now on; returns what stops it. */
export function onProgress(listener: (message: string) => void): () => void {
  progressListeners.add(listener);
  return () => progressListeners.delete(listener);
}

/** An error meant for the user: printed without a stack trace by the CLI entry points (exit code 1). */
export class UserError extends Error {
  override name = "UserError";
}

/** A command line that is wrong: unknown group, command or option (exit code 2). */
export class UsageError extends UserError {
  override name = "UsageError";
}

/** node:util parseArgs's errors for unknown or malformed options. */
const isParseArgsError = (err: unknown) => err instanceof TypeError && String((err as { code?: string }).code).startsWith("ERR_PARSE_ARGS");

/**
 * Runs a CLI entry point. Errors end in one line (`error: …`); an unexpected
 * one adds its stack trace only with EDGE_HA_VERBOSE=1. Exit codes: 1 for a
 * failure, 2 for a wrong command line.
 */
export function runMain(main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    const usage = err instanceof UsageError || isParseArgsError(err);
    if (err instanceof UserError || usage) {
      process.stderr.write(`error: ${(err as Error).message}${usage ? " (see --help)" : ""}\n`);
    } else {
      const message = err instanceof Error ? err.message : String(err);
      process.stderr.write(`error: ${message.trim().split("\n")[0]}\n`);
      if (process.env.EDGE_HA_VERBOSE === "1") process.stderr.write(`${err instanceof Error ? err.stack : ""}\n`);
      else process.stderr.write("(an unexpected error: EDGE_HA_VERBOSE=1 shows where it came from)\n");
    }
    process.exit(usage ? 2 : 1);
  });
}
