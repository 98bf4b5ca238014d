/**
 * The all-reduce's two algorithms over a process group's link (its rank, subjects, and the
 * chunks it sends and takes): the direct one (each segment to the rank that reduces it, which
 * publishes the result once) and the ring (reduce-scatter, then all-gather). Both give every
 * rank the same bits: each segment is reduced once, in rank (or ring) order.
 *
 * @module
 */
import type { DistributedError, Op, ReduceOp } from "./wire.ts";
import { chunksOf, reduceInto } from "./wire.ts";

/** What the algorithms need of a process group. */
export interface Link {
  rank: number;
  worldSize: number;
  /** The job's subject of these parts. */
  subject(...parts: (string | number)[]): string;
  /** Publishes one chunk of `op`'s step `step`. */
  send(subject: string, op: Op, step: number, chunk: number, values: Float32Array): void;
  /** The chunk `chunk` of step `step` from rank `from`, once it is in. */
  take(op: Op, step: number, chunk: number, from: number): Promise<Float32Array>;
  /** The error of `op` for `reason`. */
  errorFor(op: Op, reason: string): DistributedError;
}

/**
 * Reduce-scatter straight to each segment's owner, then one fan-out through the server:
 * rank r sends chunk k of segment c to rank c (step r); rank c reduces the N ranks' chunks
 * in rank order and publishes the result once to every rank (step N + c). Two hops instead
 * of the ring's 2(N-1), and each rank publishes its tensor's size once (the ring: 2(N-1)/N).
 * Only the owner reduces a segment, so every rank gets the same bits.
 */
export async function directAllReduce(
  link: Link,
  o: Op,
  buf: Float32Array,
  bounds: number[],
  reduce: ReduceOp,
  chunkFloats: number,
): Promise<void> {
  const N = link.worldSize, r = link.rank;
  const chunks = (c: number) => chunksOf(bounds[c], bounds[c + 1], chunkFloats);
  const own = chunks(r);
  for (let d = 1; d < N; d++) { // rank r + 1 first: the owners are not all hit at once
    const c = (r + d) % N, to = link.subject("to", c);
    chunks(c).forEach(([a, b], k) => link.send(to, o, r, k, buf.subarray(a, b)));
  }
  const take = async (step: number, k: number, from: number, [a, b]: [number, number]) => {
    const got = await link.take(o, step, k, from);
    if (got.length !== b - a) {
      throw link.errorFor(o, `rank ${from} sent ${got.length} values where ${b - a} belong`);
    }
    return got;
  };
  const reduced = own.map(async (range, k) => {
    // Rank 0 reduces in place; the others into rank 0's chunk (a message's own bytes).
    const mine = buf.subarray(range[0], range[1]);
    const acc = r === 0 ? mine : await take(0, k, 0, range);
    for (let from = 1; from < N; from++) {
      reduceInto(acc, from === r ? mine : await take(from, k, from, range), reduce);
    }
    if (acc !== mine) mine.set(acc);
    link.send(link.subject("bcast"), o, N + r, k, acc);
  });
  const gathered = [];
  for (let c = 0; c < N; c++) {
    if (c === r) continue;
    gathered.push(
      ...chunks(c).map(async (range, k) => {
        buf.set(await take(N + c, k, c, range), range[0]);
      }),
    );
  }
  await Promise.all([...reduced, ...gathered]);
}

/**
 * The ring over `buf`, split in `bounds` (worldSize + 1 offsets): `steps` steps, the first
 * `reduceSteps` of them reducing with `op` (reduce-scatter), the rest copying (all-gather).
 * At step s, rank r sends segment (r - s) mod N to r + 1 and receives (r - s - 1) mod N from
 * r - 1, chunk by chunk, each chunk forwarded as soon as it is in.
 */
export async function ringPass(
  link: Link,
  o: Op,
  buf: Float32Array,
  bounds: number[],
  steps: number,
  reduceSteps: number,
  reduce: ReduceOp,
  chunkFloats: number,
): Promise<void> {
  const N = link.worldSize, r = link.rank;
  const next = link.subject("to", (r + 1) % N), prev = (r - 1 + N) % N;
  const seg = (s: number) => (((r - s) % N) + N) % N;
  const chunks = (c: number) => chunksOf(bounds[c], bounds[c + 1], chunkFloats);
  const receive = async (s: number, k: number, [a, b]: [number, number]) => {
    const got = await link.take(o, s, k, prev);
    if (got.length !== b - a) {
      throw link.errorFor(o, `rank ${prev} sent ${got.length} values where ${b - a} belong`);
    }
    if (s >= reduceSteps) buf.set(got, a);
    else if (reduce === "max") {
      for (let i = a; i < b; i++) {
        buf[i] = Math.max(got[i - a], buf[i]);
      }
    } else if (reduce === "min") {
      for (let i = a; i < b; i++) buf[i] = Math.min(got[i - a], buf[i]);
    } else for (let i = a; i < b; i++) buf[i] = got[i - a] + buf[i];
  };
  for (let s = 0; s < steps; s++) {
    const cs = chunks(seg(s));
    for (let k = 0; k < cs.length; k++) {
      if (s > 0) await receive(s - 1, k, cs[k]);
      link.send(next, o, s, k, buf.subarray(cs[k][0], cs[k][1]));
    }
  }
  const last = chunks(seg(steps));
  for (let k = 0; k < last.length; k++) await receive(steps - 1, k, last[k]);
}
