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
  const own =
    /\/lib\/(engine|tensor|autograd|nn|optim|capture|train|streams|trace|bench|devices|kernels)\//;
  const outside = lines.find((l) => !own.test(l) && !l.includes("ext:"));
  return (outside ?? lines[0] ?? "unknown").replace(/^at /, "");
}

/**
 * An asynchronous op that failed on its device. Synchronisation points reject with an
 * AggregateError of them.
 *
 * @example
 * ```ts
 * import { OpError } from "./errors.ts";
 * const error = new OpError("out of memory", {
 *   op: "mm",
 *   opId: 7,
 *   device: "gpu:0",
 *   site: new Error("created here"),
 * });
 * console.log(error.name, error.op, error.opId, error.device); // "OpError" "mm" 7 "gpu:0"
 * console.log(error.message.startsWith("mm (op #7) on gpu:0 failed: out of memory")); // true
 * // Where they surface:
 * // try { await synchronize(); } catch (e) {
 * //   for (const f of (e as AggregateError).errors) console.error(f.op, f.createdAt);
 * // }
 * ```
 */
export class OpError extends Error {
  /** Always "OpError". */
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

/**
 * The asynchronous failures not yet reported: each surfaces once, at the first
 * synchronisation point that covers its device, or through the `data()` that waited on it.
 */
export class ErrorLog {
  #errors: OpError[] = [];

  /** Records a failure to report later. */
  add(error: OpError): void {
    this.#errors.push(error);
  }

  /** Forgets `error`: it was delivered elsewhere (a rejected `data()`). */
  markReported(error: OpError): void {
    this.#errors = this.#errors.filter((e) => e !== error);
  }

  /** Throws the failures not yet reported on `device` (all devices if none) as one AggregateError. */
  throwFor(device?: { name: string }): void {
    const mine = this.#errors.filter((e) => !device || e.device === device.name);
    if (mine.length === 0) return;
    this.#errors = this.#errors.filter((e) => !mine.includes(e));
    const where = device ? ` on ${device.name}` : "";
    throw new AggregateError(
      mine,
      `${mine.length} asynchronous op${mine.length === 1 ? "" : "s"} failed${where}: ${
        mine.map((e) => e.message).join("; ")
      }`,
    );
  }
}
