import { $ } from "zx";
import { UserError } from "../log";

/*
 * The checkout a pipeline applies from. `gitops apply` changes the fleet only
 * from a clean checkout of the main branch: what runs is then what was
 * reviewed and merged, nothing more and nothing else.
 */

export interface Checkout {
  /** The branch checked out ("" when detached). */
  branch: string;
  commit: string;
  /** Files changed or added and not committed (git status --porcelain), at most ten. */
  dirty: string[];
}

/** What is checked out in the git work tree that holds `dir`. */
export async function checkoutOf(dir: string): Promise<Checkout> {
  // The repository of `dir` itself, not one a git hook's environment points at (GIT_DIR and kin).
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^GIT_(DIR|WORK_TREE|INDEX_FILE|OBJECT_DIRECTORY|ALTERNATE_OBJECT_DIRECTORIES|QUARANTINE_PATH)$/.test(k)));
  const git = $({ cwd: dir, quiet: true, nothrow: true, env });
  const top = await git`git rev-parse --show-toplevel`;
  if (top.exitCode !== 0) throw new UserError(`${dir} is not in a git checkout: gitops applies only committed changes (${top.stderr.trim()})`);
  const commit = (await git`git rev-parse HEAD`).stdout.trim();
  const branch = (await git`git symbolic-ref --quiet --short HEAD`).stdout.trim();
  // Ignored files (node_modules, the toolchain) are not changes to the fleet.
  const dirty = (await git`git status --porcelain --untracked-files=all`).stdout.split("\n").filter(Boolean).slice(0, 10);
  return { branch, commit, dirty };
}

/**
 * Refuses to apply from anything but a clean checkout of `branch`; in a
 * detached checkout (what CI systems make), GITOPS_BRANCH or the CI's own
 * variable (GITHUB_REF_NAME, CI_COMMIT_BRANCH) names the branch.
 */
export function checkApplyFrom(c: Checkout, branch: string, env: NodeJS.ProcessEnv = process.env): void {
  const on = c.branch || env.GITOPS_BRANCH || env.GITHUB_REF_NAME || env.CI_COMMIT_BRANCH || "";
  const problems: string[] = [];
  if (on !== branch) problems.push(`the checkout is ${on ? `on branch ${on}` : "detached at no named branch"}, expected ${branch} (changes reach the fleet only once merged there; a detached CI checkout names it in GITOPS_BRANCH)`);
  if (c.dirty.length) problems.push(`the checkout has changes that are not committed (${c.dirty.map((l) => l.slice(3)).join(", ")}): commit them for review, or discard them`);
  if (problems.length) throw new UserError(`gitops apply refused, nothing was changed:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
}
