/** Progress lines for long work, on stderr so stdout stays parseable. */
export function progress(message: string): void {
  if (process.env.EDGE_HA_QUIET !== "1") process.stderr.write(`• ${message}\n`);
}

/** An error meant for the user: printed without a stack trace by the CLI entry points. */
export class UserError extends Error {
  override name = "UserError";
}

/** Runs a CLI entry point, printing user errors plainly and exiting non-zero. */
export function runMain(main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    if (err instanceof UserError) {
      process.stderr.write(`error: ${err.message}\n`);
    } else {
      process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    }
    process.exit(1);
  });
}
