/**
 * Errors of asynchronous work. An op that fails on its device becomes an {@link OpError}
 * naming the op, its device and where the script created it; it surfaces at the next
 * synchronisation point inside one AggregateError.
 *
 * @module
 */

/** Where in the user's script an op was created: the first stack frame outside autopar. */
export function creationSite(site: Error): string {
  const lines = (site.stack ?? "").split("\n").slice(1).map((l) => l.trim());
  const own = /\/lib\/(engine|tensor|streams|trace|bench|devices|kernels)\//;
  const outside = lines.find((l) => !own.test(l) && !l.includes("ext:"));
  return (outside ?? lines[0] ?? "unknown").replace(/^at /, "");
}

/** An asynchronous op that failed on its device. */
export class OpError extends Error {
  override name = "OpError";
  /** The op's name, for example "mm". */
  readonly op: string;
  /** The op's id in traces. */
  readonly opId: number;
  /** The device it ran on, for example "gpu:0". */
  readonly device: string;
  /** Where the script created the op. */
  readonly createdAt: string;

  /** Builds the error of op `op` (#`opId`) on `device`, created at `site`. */
  constructor(
    detail: string,
    info: { op: string; opId: number; device: string; site: Error; cause?: unknown },
  ) {
    const createdAt = creationSite(info.site);
    super(
      `${info.op} (op #${info.opId}) on ${info.device} failed: ${detail}; created at ${createdAt}`,
      {
        cause: info.cause,
      },
    );
    this.op = info.op;
    this.opId = info.opId;
    this.device = info.device;
    this.createdAt = createdAt;
  }
}
