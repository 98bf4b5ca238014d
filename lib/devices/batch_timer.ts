/**
 * Device timestamps of one batch, on adapters with the "timestamp-query" feature: each
 * compute pass writes a timestamp at its beginning and its end (`timestampWrites`). WebGPU
 * has no timestamp command outside passes, so a copy is bracketed by the nearest timestamps
 * around it: the end of the pass just before it (or an empty marker pass, when something
 * else came in between) and the beginning of the pass just after it (or a marker). The
 * queries are resolved into one buffer and read back once per batch, in the batch's own
 * submission.
 *
 * @module
 */
import type { StagingRing } from "./staging_ring.ts";
import type { Waits } from "./drains.ts";

/** Most queries in one GPUQuerySet (WebGPU's limit). */
const QUERIES_PER_SET = 4096;

interface QueryBlock {
  set: GPUQuerySet;
  resolve: GPUBuffer;
}

/** Query sets and their resolve buffers, reused across batches. */
export class QueryPool {
  readonly #device: GPUDevice;
  readonly #idle: QueryBlock[] = [];

  /** A pool for `device`, which must have the "timestamp-query" feature. */
  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /** An idle block, or a new one. */
  take(): QueryBlock {
    return this.#idle.pop() ?? {
      set: this.#device.createQuerySet({ type: "timestamp", count: QUERIES_PER_SET }),
      resolve: this.#device.createBuffer({
        size: QUERIES_PER_SET * 8,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      }),
    };
  }

  /** Returns blocks whose batch has completed. */
  give(blocks: QueryBlock[]): void {
    // A few idle blocks cover the batches in flight; more would only hold memory.
    for (const b of blocks) {
      if (this.#idle.length < 8) this.#idle.push(b);
      else {
        b.set.destroy();
        b.resolve.destroy();
      }
    }
  }
}

/** Device times of one op, ns on the device's timestamp clock. */
export interface DeviceSpan {
  gpuStart: number;
  gpuEnd: number;
}

/** The timestamps of one batch; make one per batch, in encoding order. */
export class BatchTimer {
  readonly #pool: QueryPool;
  readonly #blocks: QueryBlock[] = [];
  #used = 0;
  /** A timestamp taken with nothing encoded after it yet (global query index). */
  #boundary: number | undefined;
  /** Copies encoded since the last timestamp: op and the query of their start. */
  #open: { op: number; start: number }[] = [];
  /** op -> [start query, end query] */
  readonly #spans = new Map<number, [number, number]>();
  #staging: GPUBuffer | undefined;

  /** A timer drawing query sets from `pool`. */
  constructor(pool: QueryPool) {
    this.#pool = pool;
  }

  /** `count` consecutive queries in one set: that set and the first index in it. */
  #alloc(count: 1 | 2): { set: GPUQuerySet; index: number; global: number } {
    if (this.#used + count > this.#blocks.length * QUERIES_PER_SET) {
      this.#used = this.#blocks.length * QUERIES_PER_SET;
      this.#blocks.push(this.#pool.take());
    }
    const global = this.#used;
    this.#used += count;
    const set = this.#blocks[this.#blocks.length - 1].set;
    return { set, index: global % QUERIES_PER_SET, global };
  }

  /** Ends the open copies at query `q`. */
  #close(q: number): void {
    for (const c of this.#open) this.#spans.set(c.op, [c.start, q]);
    this.#open = [];
  }

  /** An empty pass that only writes a timestamp; returns its query. */
  #marker(encoder: GPUCommandEncoder): number {
    const q = this.#alloc(1);
    encoder.beginComputePass({
      timestampWrites: { querySet: q.set, beginningOfPassWriteIndex: q.index },
    }).end();
    return q.global;
  }

  /** The `timestampWrites` of op `op`'s compute pass. */
  pass(op: number): GPUComputePassTimestampWrites {
    const q = this.#alloc(2);
    this.#close(q.global);
    this.#spans.set(op, [q.global, q.global + 1]);
    this.#boundary = q.global + 1;
    return {
      querySet: q.set,
      beginningOfPassWriteIndex: q.index,
      endOfPassWriteIndex: q.index + 1,
    };
  }

  /** Call right before encoding op `op`'s copy. */
  copy(encoder: GPUCommandEncoder, op: number): void {
    const start = this.#boundary ?? this.#marker(encoder);
    this.#close(start);
    this.#boundary = undefined;
    this.#open.push({ op, start });
  }

  /** Closes the last copies and resolves every query into a staging buffer; call before finish(). */
  resolve(encoder: GPUCommandEncoder, staging: StagingRing): void {
    if (this.#open.length > 0) this.#close(this.#marker(encoder));
    if (this.#used === 0) return;
    this.#staging = staging.take(this.#used * 8);
    this.#blocks.forEach((b, i) => {
      const count = Math.min(QUERIES_PER_SET, this.#used - i * QUERIES_PER_SET);
      encoder.resolveQuerySet(b.set, 0, count, b.resolve, 0);
      encoder.copyBufferToBuffer(b.resolve, 0, this.#staging!, i * QUERIES_PER_SET * 8, count * 8);
    });
  }

  /** Whether the batch took any timestamp. */
  get timed(): boolean {
    return this.#staging !== undefined;
  }

  /**
   * Reads the timestamps back once the submission is done; resolves to each op's span and the
   * first and last timestamps of the batch. Rejects when the readback fails.
   */
  async read(staging: StagingRing, drains: Waits): Promise<
    { spans: Map<number, DeviceSpan>; first: number; last: number }
  > {
    const s = this.#staging!;
    try {
      await drains.map(s, 0, this.#used * 8);
      const raw = new BigUint64Array(s.getMappedRange(0, this.#used * 8));
      const ts = Array.from(raw, Number);
      s.unmap();
      const spans = new Map<number, DeviceSpan>();
      let first = Infinity;
      let last = -Infinity;
      for (const [op, [a, b]] of this.#spans) {
        // A timestamp the device did not write reads 0; that op keeps the batch's times.
        if (ts[a] === 0 || ts[b] < ts[a]) continue;
        spans.set(op, { gpuStart: ts[a], gpuEnd: ts[b] });
        first = Math.min(first, ts[a]);
        last = Math.max(last, ts[b]);
      }
      return { spans, first, last };
    } finally {
      staging.give(s);
      this.#pool.give(this.#blocks);
    }
  }
}

/**
 * Puts one device's timestamps on the shared clock (ms, `timeOrigin + now()`). A batch's
 * first pass cannot start before the batch was submitted, so `submit - first` bounds the
 * offset between the clocks from below; the largest bound seen so far is the estimate (the
 * batch that started at once, on an idle queue, gives the tightest one). A batch is also
 * done before its completion was seen, so the offset is clamped per batch to keep its last
 * timestamp before `seen` (this absorbs drift between the two clocks).
 */
export class DeviceClock {
  #offset = -Infinity;

  /** The offset (ms) to add to `ns / 1e6` for a batch submitted at `submit` and seen done at `seen`. */
  align(submit: number, seen: number, first: number, last: number): number {
    this.#offset = Math.max(this.#offset, submit - first / 1e6);
    return Math.min(this.#offset, seen - last / 1e6);
  }
}
