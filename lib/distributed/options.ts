/**
 * Options of a process group and how they default from the environment (torch's env://).
 *
 * @module
 */

/** Options of {@linkcode initProcessGroup}; each defaults from the environment (env://). */
export interface ProcessGroupOptions {
  /**
   * This process's rank, 0 to worldSize - 1.
   * @default {Number(Deno.env.get("RANK"))}
   */
  rank?: number;
  /**
   * The number of processes in the job.
   * @default {Number(Deno.env.get("WORLD_SIZE"))}
   */
  worldSize?: number;
  /**
   * The NATS server, `nats://host:port`.
   * @default {AUTOPAR_NATS_URL, else `nats://${MASTER_ADDR}:${MASTER_PORT}` (4222 without a port)}
   */
  url?: string;
  /**
   * The job id: every subject and key-value key of the group is scoped by it, so two jobs on
   * one server, or a restarted job with a fresh id, never see each other.
   * @default {Deno.env.get("AUTOPAR_JOB") ?? "default"}
   */
  job?: string;
  /**
   * How long the rendezvous and each collective may take before they fail, naming the ranks
   * they waited for.
   * @default {60000}
   */
  timeoutMs?: number;
  /**
   * Publish this rank's trace events on the job's subject `autopar.<job>.trace.<rank>` for a
   * dashboard that follows the job (`deno task start --nats URL`, or `deno task launch
   * --dashboard`, which sets AUTOPAR_TRACE=1). Off by default: the engine builds trace events
   * only while someone observes them.
   * @default {Deno.env.get("AUTOPAR_TRACE") === "1"}
   */
  trace?: boolean;
}

/** Options with every default applied. */
export interface ResolvedOptions {
  /** This process's rank. */
  rank: number;
  /** The number of processes. */
  worldSize: number;
  /** The rank among the processes of this machine (LOCAL_RANK), or the rank without one. */
  localRank: number;
  /** The NATS server. */
  url: string;
  /** The job id, as given. */
  job: string;
  /** The job id as a NATS subject token and bucket-name part. */
  jobToken: string;
  /** The timeout in milliseconds. */
  timeoutMs: number;
}

/** The default timeout of the rendezvous and of each collective, as in torch.distributed. */
export const DEFAULT_TIMEOUT_MS = 60_000;

function integer(value: unknown, what: string, from: string): number {
  const n = typeof value === "string" ? (value.trim() === "" ? NaN : Number(value)) : value;
  if (typeof n !== "number" || !Number.isInteger(n)) {
    throw new TypeError(`Cannot use ${what} ${JSON.stringify(value)} (${from}): not an integer`);
  }
  return n;
}

/**
 * A job id as a subject token: letters, digits and "-" stay, any other character becomes
 * `_<hex>_`, so distinct ids stay distinct and none can add subject levels or wildcards.
 */
export function jobToken(job: string): string {
  return job.replace(/[^A-Za-z0-9-]/g, (c) => `_${c.codePointAt(0)!.toString(16)}_`);
}

/**
 * The options with their defaults from `env` (RANK, WORLD_SIZE, LOCAL_RANK, AUTOPAR_NATS_URL
 * or MASTER_ADDR + MASTER_PORT, AUTOPAR_JOB). Throws a TypeError when the rank or world size
 * is missing or not an integer, a RangeError when they are out of range.
 *
 * @example
 * ```ts
 * import { resolveOptions } from "./options.ts";
 * const env = { RANK: "1", WORLD_SIZE: "2", MASTER_ADDR: "10.0.0.5", MASTER_PORT: "4333" };
 * const o = resolveOptions({}, (name) => env[name as keyof typeof env]);
 * console.log(o.rank, o.worldSize, o.url); // 1 2 "nats://10.0.0.5:4333"
 * ```
 */
export function resolveOptions(
  options: ProcessGroupOptions = {},
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): ResolvedOptions {
  const rank = options.rank !== undefined
    ? integer(options.rank, "rank", "options.rank")
    : integer(env("RANK") ?? "", "rank", "RANK; set it or pass options.rank");
  const worldSize = options.worldSize !== undefined
    ? integer(options.worldSize, "world size", "options.worldSize")
    : integer(
      env("WORLD_SIZE") ?? "",
      "world size",
      "WORLD_SIZE; set it or pass options.worldSize",
    );
  if (worldSize < 1) {
    throw new RangeError(`Cannot use world size ${worldSize}: it must be at least 1`);
  }
  if (rank < 0 || rank >= worldSize) {
    throw new RangeError(
      `Cannot use rank ${rank} in a world of size ${worldSize}: it must be 0 to ${worldSize - 1}`,
    );
  }
  const local = env("LOCAL_RANK");
  const localRank = local === undefined || local === ""
    ? rank
    : integer(local, "local rank", "LOCAL_RANK");
  let url = options.url ?? env("AUTOPAR_NATS_URL");
  if (url === undefined || url === "") {
    const addr = env("MASTER_ADDR") || "127.0.0.1";
    const port = env("MASTER_PORT") || "4222";
    url = `nats://${addr.includes(":") ? `[${addr}]` : addr}:${port}`;
  }
  const job = options.job ?? (env("AUTOPAR_JOB") || "default");
  if (typeof job !== "string" || job === "") {
    throw new TypeError(`Cannot use job id ${JSON.stringify(job)}: it must be a non-empty string`);
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (typeof timeoutMs !== "number" || !(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
    throw new RangeError(`Cannot use timeout ${timeoutMs} ms: it must be a positive number`);
  }
  return { rank, worldSize, localRank, url, job, jobToken: jobToken(job), timeoutMs };
}
