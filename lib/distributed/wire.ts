/**
 * The process group's wire: its data subjects and chunk sizes, the header each rank sends
 * before a collective, the choice of all-reduce algorithm, and the small helpers the
 * collectives share (lib/distributed/process_group.ts runs them).
 *
 * @module
 */

/** Reduction operations of {@linkcode allReduce}, torch.distributed's ReduceOp. */
export type ReduceOp = "sum" | "mean" | "max" | "min";

/**
 * A collective or rendezvous that could not finish: a rank that died, stalled or disagreed,
 * or a lost NATS server. `ranks` names the ranks it waited for (empty when none is to blame).
 *
 * @example
 * ```ts
 * import { DistributedError } from "../../mod.ts";
 * const e = new DistributedError("Cannot allReduce: rank 1 did not answer", [1]);
 * console.log(e.name, e.ranks); // "DistributedError" [1]
 * ```
 */
export class DistributedError extends Error {
  /** The ranks the operation waited for. */
  readonly ranks: readonly number[];
  /** Makes the error; `ranks` are the ranks to blame. */
  constructor(message: string, ranks: readonly number[] = [], options?: ErrorOptions) {
    super(message, options);
    this.name = "DistributedError";
    this.ranks = ranks;
  }
}

/** The largest chunk, so that the ring pipelines a segment even when max_payload is large. */
export const MAX_CHUNK_BYTES = 256 << 10; // 4 MiB over 2 and 4 ranks: 256 KiB beat 64 KiB and 1 MiB
/**
 * The largest chunk of the direct all-reduce, which has no ring to pipeline: the fewer
 * messages the better (4 ranks, 4 MiB, separate runs on a busy 2-core machine: 1 MiB chunks
 * 71 ms, 256 KiB 124 ms, 64 KiB 154 ms).
 */
export const DIRECT_CHUNK_BYTES = 1 << 20;

export interface Header {
  rank: number;
  kind: string;
  shape?: number[];
  op?: string;
  src?: number;
  algorithm?: string;
  chunk: number;
}

/**
 * The all-reduce's algorithm for `worldSize` ranks: the same on every rank. The direct one
 * measured faster at 4 ranks at every size, about even at 2 (bench/distributed.ts); beyond 8
 * ranks, and across nodes, the ring keeps most traffic between neighbours (docs/distributed.md).
 * AUTOPAR_ALLREDUCE=ring|direct overrides it (the benchmark compares them).
 */
export function allReduceAlgorithm(worldSize: number): "ring" | "direct" {
  let forced: string | undefined;
  try {
    forced = Deno.env.get("AUTOPAR_ALLREDUCE");
  } catch { /* no --allow-env: the default */ }
  if (forced === "ring" || forced === "direct") return forced;
  return worldSize <= 8 ? "direct" : "ring";
}

export interface Waiter {
  resolve(data: Float32Array): void;
  reject(error: Error): void;
  from: number;
}

export interface Op {
  seq: number;
  what: string;
  error?: Error;
  waiters: Set<string>;
  headerWait?: { resolve(): void; reject(error: Error): void };
  timer?: ReturnType<typeof setTimeout>;
  watch?: ReturnType<typeof setInterval>;
}

export const GONE = "\u0000gone";
export const enc = new TextEncoder();
export const dec = new TextDecoder();
export const ranksText = (rs: readonly number[]) =>
  rs.length === 1 ? `rank ${rs[0]}` : `ranks ${rs.join(", ")}`;
export const shapeText = (s: readonly number[] | undefined) => `[${(s ?? []).join(", ")}]`;

/**
 * The seq, step, chunk and sender of a data message, the last four tokens of its subject
 * (`<job's subject>.to.<rank>.<seq>.<step>.<chunk>.<sender>`): the payload is the floats alone,
 * sent and received without a copy of ours.
 */
export function dataTokens(subject: string): number[] {
  return subject.split(".").slice(-4).map(Number);
}

/**
 * The floats of a message's payload: a view where they are aligned (nats.js hands each message
 * bytes of its own, never reused), else a copy.
 */
export function floatsOf(bytes: Uint8Array): Float32Array {
  if (bytes.byteOffset % 4 === 0 && bytes.byteLength % 4 === 0) {
    return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  }
  const out = new Uint8Array(bytes.byteLength - (bytes.byteLength % 4)); // bytes may be a Buffer
  out.set(bytes.subarray(0, out.byteLength));
  return new Float32Array(out.buffer);
}

/** `[a, b)` in equal chunks of at most `chunkFloats` (no runt at the end). */
export function chunksOf(a: number, b: number, chunkFloats: number): [number, number][] {
  const len = b - a, count = Math.ceil(len / chunkFloats);
  return Array.from({ length: count }, (_, k): [number, number] => [
    a + Math.floor((k * len) / count),
    a + Math.floor(((k + 1) * len) / count),
  ]);
}

/** `acc[i] = op(acc[i], x[i])`. */
export function reduceInto(acc: Float32Array, x: Float32Array, op: ReduceOp): void {
  const n = acc.length;
  if (op === "max") { for (let i = 0; i < n; i++) acc[i] = Math.max(acc[i], x[i]); }
  else if (op === "min") { for (let i = 0; i < n; i++) acc[i] = Math.min(acc[i], x[i]); }
  else for (let i = 0; i < n; i++) acc[i] = acc[i] + x[i];
}
