/**
 * The launcher's command line, torchrun's flags in their short form:
 * `--nproc N [--nnodes M --node-rank K --master host:port] [--job ID] script.ts [args]`.
 *
 * @module
 */
import type { LaunchOptions } from "./launch.ts";

/** The usage line the CLI prints with a bad argument and for `--help`. */
export const LAUNCH_USAGE =
  "usage: deno task launch --nproc N [--nnodes M --node-rank K --master host:port] [--job ID] " +
  "[--kill-timeout-ms MS] [--timeout-ms MS] [--dashboard [--port N]] script.ts [args...]";

const FLAGS: Record<string, keyof LaunchOptions> = {
  "--nproc": "nproc",
  "--nproc-per-node": "nproc",
  "--nnodes": "nnodes",
  "--node-rank": "nodeRank",
  "--master": "master",
  "--job": "job",
  "--kill-timeout-ms": "killTimeoutMs",
  "--timeout-ms": "timeoutMs",
  "--dashboard": "dashboard",
  "--port": "dashboardPort",
};

/** Flags without a value. */
const BOOLEAN = new Set<keyof LaunchOptions>(["dashboard"]);

const NUMERIC = new Set<keyof LaunchOptions>([
  "nproc",
  "nnodes",
  "nodeRank",
  "killTimeoutMs",
  "timeoutMs",
  "dashboardPort",
]);

/**
 * Parses the launcher's arguments: flags (`--flag value` or `--flag=value`) up to the script,
 * everything after it goes to the script untouched. Throws a RangeError naming the flag for
 * an unknown flag, a flag without its value, a value that is not a number where one is
 * needed, or a missing script; the values themselves are checked by `launch()`.
 *
 * @example
 * ```ts
 * import { parseLaunchArgs } from "./launch_args.ts";
 * const o = parseLaunchArgs(["--nproc", "2", "--job=run1", "train.ts", "--lr", "0.1"]);
 * console.log(o.nproc, o.job, o.script, o.args); // 2 "run1" "train.ts" ["--lr", "0.1"]
 * ```
 */
export function parseLaunchArgs(argv: readonly string[]): LaunchOptions {
  const out: Record<string, unknown> = {};
  let i = 0;
  for (; i < argv.length && argv[i].startsWith("-"); i++) {
    const arg = argv[i];
    if (arg === "--") {
      i++;
      break;
    }
    const eq = arg.indexOf("=");
    const flag = eq < 0 ? arg : arg.slice(0, eq);
    const key = FLAGS[flag];
    if (key === undefined) {
      throw new RangeError(
        `Cannot use option ${flag}: it is unknown; the options are ${
          Object.keys(FLAGS).join(", ")
        }`,
      );
    }
    if (BOOLEAN.has(key)) {
      if (eq >= 0) throw new RangeError(`Cannot use option ${flag} with a value: it takes none`);
      out[key] = true;
      continue;
    }
    let value: string;
    if (eq >= 0) value = arg.slice(eq + 1);
    else {
      if (i + 1 >= argv.length) throw new RangeError(`Cannot use option ${flag}: it needs a value`);
      value = argv[++i];
    }
    if (NUMERIC.has(key)) {
      const n = value.trim() === "" ? NaN : Number(value);
      if (!Number.isFinite(n)) {
        throw new RangeError(`Cannot use ${flag} ${JSON.stringify(value)}: it must be a number`);
      }
      out[key] = n;
    } else out[key] = value;
  }
  if (i >= argv.length) {
    throw new RangeError("Cannot launch without a script: name one after the options");
  }
  return { ...out, script: argv[i], args: argv.slice(i + 1) } as LaunchOptions;
}
