/**
 * What the launcher takes and gives: its options, the lines it passes on, its result and its
 * errors (lib/distributed/launch.ts runs the job).
 *
 * @module
 */
import type { AdapterPlan } from "./adapters.ts";

/**
 * Options of {@linkcode launch}; the CLI's flags (see launch_args.ts) map onto them.
 *
 * @example
 * ```ts
 * import type { LaunchOptions } from "./launch.ts";
 * const options: LaunchOptions = { script: "train.ts", args: ["--epochs", "1"], nproc: 2 };
 * console.log(options.nproc); // 2
 * ```
 */
export interface LaunchOptions {
  /** The script each child runs with `deno run -A`. */
  script: string;
  /**
   * Arguments passed to the script.
   * @default {[]}
   */
  args?: string[];
  /**
   * Processes on this node.
   * @default {1}
   */
  nproc?: number;
  /**
   * Nodes in the job; more than one needs `master` and `job`.
   * @default {1}
   */
  nnodes?: number;
  /**
   * This node's index, 0 to nnodes - 1: its ranks are nodeRank * nproc + 0 ... nproc - 1.
   * @default {0}
   */
  nodeRank?: number;
  /**
   * The NATS server, `host:port` or `nats://host:port`; without it a local one is started
   * (127.0.0.1, a free port, JetStream on) and stopped at the end.
   * @default {undefined}
   */
  master?: string;
  /**
   * The job id (AUTOPAR_JOB), the same on every node.
   * @default {a fresh random id}
   */
  job?: string;
  /**
   * How long a child may take to exit after SIGTERM before it gets SIGKILL.
   * @default {5000}
   */
  killTimeoutMs?: number;
  /**
   * How long the NATS server (local or `master`) may take to accept connections.
   * @default {10000}
   */
  startTimeoutMs?: number;
  /**
   * How long the whole job may run before the launcher stops it and fails.
   * @default {Infinity}
   */
  timeoutMs?: number;
  /**
   * Variables added to every child's environment (after the inherited ones, before the
   * launcher's own).
   * @default {{}}
   */
  env?: Record<string, string>;
  /**
   * Receives each output line of the children and of the launcher itself.
   * @default {writes formatLine(line) to the launcher's stdout or stderr}
   */
  onLine?: (line: OutputLine) => void;
  /**
   * Stops the job (the children, then the server) when aborted; the launch fails with
   * exit code 130.
   * @default {undefined}
   */
  signal?: AbortSignal;
  /**
   * Whether SIGINT and SIGTERM to the launcher stop the job cleanly (children, then the
   * server and its store) instead of ending the process at once.
   * @default {true}
   */
  handleSignals?: boolean;
  /**
   * Start the live dashboard for the job (main.ts as a child, on 127.0.0.1, following the
   * job's trace on its NATS server) before the ranks, and stop it after them; the ranks get
   * AUTOPAR_TRACE=1 (publish their trace) and AUTOPAR_DASHBOARD_URL.
   * @default {false}
   */
  dashboard?: boolean;
  /**
   * The dashboard's port; 0 picks a free one. Needs `dashboard`.
   * @default {8000}
   */
  dashboardPort?: number;
}

/**
 * One line of output: from a rank, or from the launcher (`rank` undefined).
 *
 * @example
 * ```ts
 * import { formatLine, type OutputLine } from "./launch.ts";
 * const line: OutputLine = { rank: 1, stream: "stderr", text: "loss 0.3" };
 * console.log(formatLine(line)); // "[rank 1] loss 0.3"
 * ```
 */
export interface OutputLine {
  /** The global rank that printed it; undefined for the launcher's own lines. */
  rank: number | undefined;
  /** The stream it was printed on. */
  stream: "stdout" | "stderr";
  /** The line, without its newline. */
  text: string;
}

/**
 * What a finished launch reports.
 *
 * @example
 * ```ts
 * import { launch, type LaunchResult } from "./launch.ts";
 * const script = await Deno.makeTempFile({ suffix: ".ts" });
 * await Deno.writeTextFile(script, "console.log(Deno.env.get('RANK'));");
 * const result: LaunchResult = await launch({ script, nproc: 2, onLine: () => {} });
 * console.log(result.codes, result.startedServer); // [0, 0] true
 * await Deno.remove(script);
 * ```
 */
export interface LaunchResult {
  /** The job id the children got. */
  job: string;
  /** The NATS server they used. */
  url: string;
  /** Whether the launcher started (and has since stopped) that server. */
  startedServer: boolean;
  /** The started server's port and store directory (both gone by now). */
  server?: { port: number; storeDir: string };
  /** How the adapters were shared out. */
  adapters: AdapterPlan;
  /** Each local child's exit code, by local rank. */
  codes: number[];
  /** The dashboard's address, when `dashboard` started one (stopped by now). */
  dashboard?: string;
}

/**
 * A launch that did not finish: stopped by a signal, an abort or its timeout. `exitCode`
 * is what the CLI exits with.
 *
 * @example
 * ```ts
 * import { LaunchError } from "./launch.ts";
 * const e = new LaunchError("Cannot finish job j: the launcher got SIGINT", 130);
 * console.log(e.name, e.exitCode); // "LaunchError" 130
 * ```
 */
export class LaunchError extends Error {
  /** The exit code the launcher's process should end with. */
  readonly exitCode: number;
  /** Makes a LaunchError; `cause` is kept. */
  constructor(message: string, exitCode: number, options?: ErrorOptions) {
    super(message, options);
    this.name = "LaunchError";
    this.exitCode = exitCode;
  }
}

/**
 * A child that failed, as in torchrun: its rank, its exit code (128 + the signal number when
 * a signal ended it) and its last stderr lines, which the message ends with.
 *
 * @example
 * ```ts
 * import { ChildFailedError } from "./launch.ts";
 * const e = new ChildFailedError("Cannot finish job j: rank 1 exited with code 3", {
 *   rank: 1, exitCode: 3, lastLines: ["Error: out of memory"],
 * });
 * console.log(e.name, e.rank, e.exitCode); // "ChildFailedError" 1 3
 * ```
 */
export class ChildFailedError extends LaunchError {
  /** The global rank of the child that failed first. */
  readonly rank: number;
  /** The signal that ended it, if one did. */
  readonly signal: string | undefined;
  /** Its last lines on stderr. */
  readonly lastLines: string[];
  /** Makes a ChildFailedError. */
  constructor(
    message: string,
    failed: { rank: number; exitCode: number; signal?: string; lastLines: string[] },
  ) {
    super(message, failed.exitCode === 0 ? 1 : failed.exitCode);
    this.name = "ChildFailedError";
    this.rank = failed.rank;
    this.signal = failed.signal;
    this.lastLines = failed.lastLines;
  }
}

/**
 * `[rank R] text`, or `[launch] text` for the launcher's own lines: how the CLI prints them.
 *
 * @example
 * ```ts
 * import { formatLine } from "./launch.ts";
 * console.log(formatLine({ rank: undefined, stream: "stderr", text: "job j" })); // "[launch] job j"
 * ```
 */
export function formatLine(line: OutputLine): string {
  return `${line.rank === undefined ? "[launch]" : `[rank ${line.rank}]`} ${line.text}`;
}
