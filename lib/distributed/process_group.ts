/**
 * A process group on NATS: rendezvous in a JetStream key-value bucket of the job, collectives
 * over core NATS subjects of the job, in chunks under the server's max_payload. Works on
 * Float32Arrays; the tensor-facing functions live in collectives.ts.
 *
 * @module
 */

import { connect } from "npm:@nats-io/transport-node@3.4.0";
import type { Msg, NatsConnection, Subscription } from "npm:@nats-io/nats-core@3.4.0";
import { type KV, Kvm } from "npm:@nats-io/kv@3.4.0";
import { type ProcessGroupOptions, type ResolvedOptions, resolveOptions } from "./options.ts";

import {
  allReduceAlgorithm,
  dataTokens,
  dec,
  DIRECT_CHUNK_BYTES,
  DistributedError,
  enc,
  floatsOf,
  GONE,
  type Header,
  MAX_CHUNK_BYTES,
  type Op,
  ranksText,
  type ReduceOp,
  shapeText,
  type Waiter,
} from "./wire.ts";

import { directAllReduce, type Link, ringPass } from "./all_reduce.ts";

export { DistributedError } from "./wire.ts";
export type { ReduceOp } from "./wire.ts";

/** One process of a job: its connection, mailboxes and the collectives' sequence. */
export class ProcessGroup {
  /** This process's rank. */
  readonly rank: number;
  /** The number of processes. */
  readonly worldSize: number;
  /** LOCAL_RANK, or the rank. */
  readonly localRank: number;
  /** The NATS server. */
  readonly url: string;
  /** The job id. */
  readonly job: string;
  /** The timeout of each collective, ms. */
  readonly timeoutMs: number;
  /** The server's max_payload in bytes, as the server announced it. */
  readonly maxPayload: number;

  readonly #nc: NatsConnection;
  readonly #kv: KV;
  readonly #prefix: string;
  readonly #nonce = crypto.randomUUID();
  readonly #subs: Subscription[] = [];
  readonly #data = new Map<string, Float32Array>();
  readonly #waiters = new Map<string, Waiter>();
  readonly #headers = new Map<number, Map<number, Header>>();
  readonly #aborts = new Map<number, { rank: number; reason: string; ranks: number[] }>();
  #current: Op | undefined;
  #finished = -1;
  #seq = 0;
  #tail: Promise<unknown> = Promise.resolve();
  #broken: Error | undefined;
  #closing = false;
  /** What the all-reduce algorithms (all_reduce.ts) use of this group. */
  readonly #link: Link = {
    rank: -1, // set by the constructor
    worldSize: -1,
    subject: (...parts) => this.#subject(...parts),
    send: (subject, op, step, chunk, values) => this.#send(subject, op, step, chunk, values),
    take: (op, step, chunk, from) => this.#take(op, step, chunk, from),
    errorFor: (op, reason) => this.#errorFor(op, reason),
  };

  private constructor(o: ResolvedOptions, nc: NatsConnection, kv: KV) {
    this.rank = o.rank;
    this.worldSize = o.worldSize;
    this.localRank = o.localRank;
    this.url = o.url;
    this.job = o.job;
    this.timeoutMs = o.timeoutMs;
    this.maxPayload = nc.info?.max_payload ?? 1 << 20;
    this.#nc = nc;
    this.#kv = kv;
    this.#prefix = `autopar.${o.jobToken}`;
    Object.assign(this.#link, { rank: o.rank, worldSize: o.worldSize });
  }

  /**
   * Connects, registers in the job's bucket and waits until every rank has (bounded by the
   * timeout). Rejects with a DistributedError naming the URL when the server cannot be
   * reached, or naming the ranks still missing.
   */
  static async create(options: ProcessGroupOptions = {}): Promise<ProcessGroup> {
    const o = resolveOptions(options);
    const deadline = performance.now() + o.timeoutMs;
    const where = `the NATS server at ${o.url}`;
    let nc: NatsConnection;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      nc = await Promise.race([
        connect({
          servers: o.url,
          timeout: o.timeoutMs,
          noEcho: true,
          reconnect: false,
          name: `autopar ${o.job} rank ${o.rank}`,
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${o.timeoutMs} ms`)),
            o.timeoutMs,
          );
        }),
      ]);
    } catch (cause) {
      throw new DistributedError(
        `Cannot connect to ${where} (job "${o.job}", rank ${o.rank}): ${
          (cause as Error)?.message ?? cause
        }`,
        [],
        { cause },
      );
    } finally {
      clearTimeout(timer);
    }
    let pg: ProcessGroup | undefined;
    try {
      const kv = await jobBucket(new Kvm(nc), `autopar_${o.jobToken}`);
      pg = new ProcessGroup(o, nc, kv);
      pg.#listen();
      await pg.#rendezvous(deadline);
      return pg;
    } catch (cause) {
      if (pg) pg.#closing = true;
      await nc.close().catch(() => {});
      if (cause instanceof DistributedError) throw cause;
      throw new DistributedError(
        `Cannot join job "${o.job}" as rank ${o.rank} at ${where}: ${
          (cause as Error)?.message ?? cause
        }`,
        [],
        { cause },
      );
    }
  }

  #subject(...parts: (string | number)[]): string {
    return [this.#prefix, ...parts].join(".");
  }

  #listen(): void {
    const nc = this.#nc;
    const sub = (subject: string, handle: (m: Msg) => void) =>
      this.#subs.push(nc.subscribe(subject, {
        callback: (err, m) => {
          try {
            if (!err) handle(m);
          } catch { /* a malformed message of someone else's: never break the connection */ }
        },
      }));
    sub(this.#subject("to", this.rank, ">"), (m) => this.#onData(m));
    sub(this.#subject("bcast", ">"), (m) => this.#onData(m));
    sub(this.#subject("hdr"), (m) => {
      const { seq, ...h } = JSON.parse(dec.decode(m.data)) as Header & { seq: number };
      this.#onHeader(seq, h);
    });
    sub(this.#subject("abort"), (m) => {
      const a = JSON.parse(dec.decode(m.data));
      this.#onAbort(a.seq, a);
    });
    sub(this.#subject("ping", this.rank), (m) => {
      m.respond(enc.encode(JSON.stringify({ rank: this.rank, nonce: this.#nonce })));
    });
    nc.closed().then((err) => {
      if (this.#closing) return;
      const lost = new DistributedError(
        `lost the connection to the NATS server at ${this.url}${err ? ` (${err.message})` : ""}`,
        [],
        { cause: err },
      );
      this.#broken ??= lost;
      if (this.#current) this.#fail(this.#current, this.#errorFor(this.#current, lost.message));
    });
  }

  async #rendezvous(deadline: number): Promise<void> {
    await this.#kv.put(
      `rank.${this.rank}`,
      JSON.stringify({ rank: this.rank, nonce: this.#nonce, pid: Deno.pid }),
    );
    const missing = new Set<number>();
    for (let r = 0; r < this.worldSize; r++) if (r !== this.rank) missing.add(r);
    while (missing.size > 0) {
      await Promise.all([...missing].map(async (r) => {
        const entry = await this.#kv.get(`rank.${r}`).catch(() => null);
        if (!entry || entry.operation !== "PUT") return;
        const { nonce } = entry.json<{ nonce: string }>();
        const reply = await this.#ping(r, 500);
        if (reply === nonce) missing.delete(r); // a live process, not a stale key
      }));
      if (missing.size === 0) break;
      if (performance.now() >= deadline) {
        const ms = [...missing].sort((a, b) => a - b);
        throw new DistributedError(
          `Cannot initialize the process group of job "${this.job}" at ${this.url} within ` +
            `${this.timeoutMs} ms: ${ranksText(ms)} of ${this.worldSize} did not register`,
          ms,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    await this.barrier(); // every rank has seen every other before anyone goes on
  }

  /**
   * The nonce rank `r` answers with; `gone` when no process listens for it (the server knows
   * at once when a connection closed), undefined when it does not answer in `ms`.
   */
  async #ping(r: number, ms: number): Promise<string | undefined> {
    try {
      const m = await this.#nc.request(this.#subject("ping", r), undefined, { timeout: ms });
      return JSON.parse(dec.decode(m.data)).nonce;
    } catch (e) {
      return (e as { isNoResponders?: () => boolean }).isNoResponders?.() ? GONE : undefined;
    }
  }

  #onData(m: Msg): void {
    const [seq, step, chunk] = dataTokens(m.subject);
    // A late chunk of a collective that failed, or a subject not ours (NaN).
    if (!(seq > this.#finished)) return;
    const key = `${seq}:${step}:${chunk}`;
    const data = floatsOf(m.data);
    const w = this.#waiters.get(key);
    if (w) {
      this.#waiters.delete(key);
      this.#current?.waiters.delete(key);
      w.resolve(data);
    } else this.#data.set(key, data);
  }

  #onHeader(seq: number, h: Header): void {
    if (seq <= this.#finished) return;
    let hs = this.#headers.get(seq);
    if (!hs) this.#headers.set(seq, hs = new Map());
    hs.set(h.rank, h);
    const op = this.#current;
    if (op?.seq === seq && hs.size === this.worldSize) op.headerWait?.resolve();
  }

  #onAbort(seq: number, a: { rank: number; reason: string; ranks: number[] }): void {
    if (seq <= this.#finished) return;
    this.#aborts.set(seq, a);
    const op = this.#current;
    if (op?.seq === seq) {
      this.#fail(op, this.#errorFor(op, `${a.reason} (reported by rank ${a.rank})`, a.ranks));
    }
  }

  #errorFor(op: Op, reason: string, ranks: readonly number[] = []): DistributedError {
    return new DistributedError(`Cannot ${op.what}: ${reason}`, ranks);
  }

  #fail(op: Op, error: Error): void {
    if (op.error) return;
    op.error = error;
    for (const key of op.waiters) {
      const w = this.#waiters.get(key);
      this.#waiters.delete(key);
      w?.reject(error);
    }
    op.waiters.clear();
    op.headerWait?.reject(error);
  }

  /** Data chunk `chunk` of `step` of the current collective, from rank `from`. */
  #take(op: Op, step: number, chunk: number, from: number): Promise<Float32Array> {
    const key = `${op.seq}:${step}:${chunk}`;
    const have = this.#data.get(key);
    if (have) {
      this.#data.delete(key);
      return Promise.resolve(have);
    }
    if (op.error) return Promise.reject(op.error);
    return new Promise((resolve, reject) => {
      this.#waiters.set(key, { resolve, reject, from });
      op.waiters.add(key);
    });
  }

  /**
   * Publishes `values` as they are, no copy of ours: nats.js copies them into its outbound
   * buffer before this turn of the event loop ends, before any caller awaits and writes them.
   */
  #send(subject: string, op: Op, step: number, chunk: number, values: Float32Array): void {
    this.#nc.publish(
      `${subject}.${op.seq}.${step}.${chunk}.${this.rank}`,
      new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
    );
  }

  /** The ranks the collective waits for now. */
  #waitedFor(op: Op): number[] {
    const waitedFor = new Set<number>();
    for (const key of op.waiters) {
      const w = this.#waiters.get(key);
      if (w) waitedFor.add(w.from);
    }
    const hs = this.#headers.get(op.seq);
    if (op.headerWait) {
      for (let r = 0; r < this.worldSize; r++) if (r !== this.rank && !hs?.has(r)) waitedFor.add(r);
    }
    return [...waitedFor].sort((a, b) => a - b);
  }

  /** While the collective waits: fails it at once when a rank it waits for is gone. */
  async #watch(op: Op, ms: number): Promise<void> {
    const peers = this.#waitedFor(op);
    if (op.error || peers.length === 0) return;
    const answers = await Promise.all(peers.map((r) => this.#ping(r, ms)));
    const gone = peers.filter((_, i) => answers[i] === GONE);
    if (op.error || gone.length === 0) return;
    this.#blame(op, `${ranksText(gone)} left the job (its connection to the server closed)`, gone);
  }

  /** What to say when the collective ran out of time: which ranks are dead, stalled or slow. */
  async #onTimeout(op: Op, probeMs: number): Promise<void> {
    if (op.error) return;
    const waitedFor = this.#waitedFor(op);
    const peers = [...Array(this.worldSize).keys()].filter((r) => r !== this.rank);
    const answers = await Promise.all(peers.map((r) => this.#ping(r, probeMs)));
    if (op.error) return;
    const dead = peers.filter((_, i) => answers[i] === undefined || answers[i] === GONE);
    let reason: string, ranks: number[];
    if (dead.length > 0) {
      ranks = dead;
      reason = `${ranksText(dead)} did not answer within ${this.timeoutMs} ms (died or stalled)`;
    } else {
      ranks = waitedFor;
      reason = op.headerWait
        ? `${ranksText(ranks)} did not reach it within ${this.timeoutMs} ms`
        : `${ranksText(ranks)} sent nothing for ${this.timeoutMs} ms (messages lost?)`;
    }
    this.#blame(op, reason, ranks);
  }

  /** Fails the collective here and tells the other ranks why. */
  #blame(op: Op, reason: string, ranks: number[]): void {
    this.#fail(op, this.#errorFor(op, reason, ranks));
    try {
      this.#nc.publish(
        this.#subject("abort"),
        enc.encode(JSON.stringify({ seq: op.seq, rank: this.rank, reason, ranks })),
      );
    } catch { /* the connection is gone: the others see that themselves */ }
  }

  /**
   * Runs `body` as collective number `seq` after the ones before it: exchanges `header`
   * with every rank first (a mismatch fails every rank alike), then runs the body, all
   * bounded by the timeout.
   */
  #run<T>(
    what: string,
    header: Omit<Header, "rank" | "chunk">,
    input: Promise<unknown>,
    body: (op: Op, chunkFloats: number) => Promise<T>,
  ): Promise<T> {
    if (this.#broken) {
      throw new DistributedError(
        `Cannot ${what}: the process group failed earlier: ${this.#broken.message}`,
      );
    }
    if (this.#closing) throw new Error(`Cannot ${what}: the process group was destroyed`);
    const seq = this.#seq++;
    const run = async (): Promise<T> => {
      const op: Op = { seq, what: `${what} (collective #${seq})`, waiters: new Set() };
      this.#current = op;
      const probeMs = Math.min(1000, Math.max(20, this.timeoutMs / 5));
      op.timer = setTimeout(() => this.#onTimeout(op, probeMs - 10), this.timeoutMs - probeMs);
      const every = Math.min(2000, Math.max(100, this.timeoutMs / 10));
      op.watch = setInterval(() => this.#watch(op, every), every);
      try {
        if (this.#broken) {
          throw this.#errorFor(op, `the process group failed earlier: ${this.#broken.message}`);
        }
        const abort = this.#aborts.get(seq);
        if (abort) {
          throw this.#errorFor(op, `${abort.reason} (reported by rank ${abort.rank})`, abort.ranks);
        }
        await input; // this rank's values, read when the collective was called
        if (op.error) throw op.error;
        const most = header.algorithm === "direct" ? DIRECT_CHUNK_BYTES : MAX_CHUNK_BYTES;
        const chunk = Math.floor(Math.min(this.maxPayload, most) / 4);
        const mine: Header = { ...header, rank: this.rank, chunk };
        this.#onHeader(seq, mine);
        this.#nc.publish(this.#subject("hdr"), enc.encode(JSON.stringify({ ...mine, seq })));
        const hs = this.#headers.get(seq)!;
        if (hs.size < this.worldSize) {
          await new Promise<void>((resolve, reject) => {
            if (op.error) return reject(op.error);
            op.headerWait = { resolve, reject };
          });
        }
        op.headerWait = undefined;
        this.#check(op, hs);
        const chunkFloats = Math.min(...[...hs.values()].map((h) => h.chunk));
        const result = await body(op, chunkFloats);
        if (op.error) throw op.error;
        return result;
      } catch (e) {
        if (op.error && e !== op.error) throw op.error;
        if (!op.error) { // a failure of this rank's own (its tensor could not be read): say so
          this.#blame(op, `rank ${this.rank} failed: ${(e as Error)?.message ?? e}`, [this.rank]);
        }
        throw e;
      } finally {
        clearTimeout(op.timer);
        clearInterval(op.watch);
        if (op.error && !(op.error as { agreed?: boolean }).agreed) this.#broken ??= op.error;
        this.#finish(op);
      }
    };
    const p = this.#tail.then(run, run);
    this.#tail = p.catch(() => {});
    return p;
  }

  #finish(op: Op): void {
    this.#current = undefined;
    this.#finished = op.seq;
    this.#headers.delete(op.seq);
    this.#aborts.delete(op.seq);
    for (const key of [...this.#data.keys()]) {
      if (Number(key.slice(0, key.indexOf(":"))) <= op.seq) this.#data.delete(key);
    }
  }

  /** Throws on every rank alike when the ranks called different collectives or shapes. */
  #check(op: Op, hs: Map<number, Header>): void {
    const all = [...hs.values()].sort((a, b) => a.rank - b.rank);
    const differ = (key: (h: Header) => string, what: string) => {
      const groups = new Map<string, number[]>();
      for (const h of all) {
        const k = key(h);
        groups.set(k, [...(groups.get(k) ?? []), h.rank]);
      }
      if (groups.size <= 1) return;
      const parts = [...groups].map(([k, rs]) => `${k} on ${ranksText(rs)}`);
      const error = this.#errorFor(op, `the ranks' ${what} differ: ${parts.join("; ")}`);
      (error as { agreed?: boolean }).agreed = true; // every rank sees this: the group lives on
      op.error = error;
      throw error;
    };
    differ((h) => h.kind, "collectives");
    differ((h) => shapeText(h.shape), "shapes");
    differ((h) => String(h.op), "reduce ops");
    differ((h) => String(h.src), "source ranks");
    differ((h) => String(h.algorithm), "all-reduce algorithms");
  }

  /** All-reduces `values` (in place in the array), the same result on every rank. */
  allReduce(
    input: Float32Array | Promise<Float32Array>,
    shape: readonly number[],
    op: ReduceOp,
  ): Promise<Float32Array> {
    let values!: Float32Array;
    const ready = Promise.resolve(input).then((v) => values = v);
    const algorithm = allReduceAlgorithm(this.worldSize);
    return this.#run(
      `allReduce (${op}) shape ${shapeText(shape)}`,
      { kind: "allReduce", shape: [...shape], op, algorithm },
      ready,
      async (o, chunkFloats) => {
        const N = this.worldSize;
        if (N === 1) return values;
        const n = values.length;
        const bounds = Array.from({ length: N + 1 }, (_, c) => Math.floor((c * n) / N));
        if (algorithm === "ring") {
          await ringPass(this.#link, o, values, bounds, 2 * N - 2, N - 1, op, chunkFloats);
        } else await directAllReduce(this.#link, o, values, bounds, op, chunkFloats);
        if (op === "mean") { for (let i = 0; i < n; i++) values[i] = values[i] / N; }
        return values;
      },
    );
  }

  /** Rank `src`'s values on every rank; the others' `values` are replaced. */
  broadcast(
    input: Float32Array | Promise<Float32Array>,
    shape: readonly number[],
    src: number,
  ): Promise<Float32Array> {
    let values!: Float32Array;
    const ready = Promise.resolve(input).then((v) => values = v);
    return this.#run(
      `broadcast from rank ${src} shape ${shapeText(shape)}`,
      {
        kind: "broadcast",
        shape: [...shape],
        src,
      },
      ready,
      async (o, chunkFloats) => {
        const n = values.length;
        const subject = this.#subject("bcast");
        for (let a = 0, k = 0; a < n; a += chunkFloats, k++) {
          const b = Math.min(a + chunkFloats, n);
          if (this.rank === src) this.#send(subject, o, 0, k, values.subarray(a, b));
          else values.set(await this.#take(o, 0, k, src), a);
        }
        return values;
      },
    );
  }

  /** Every rank's `values`, in rank order, concatenated. */
  allGather(
    input: Float32Array | Promise<Float32Array>,
    shape: readonly number[],
  ): Promise<Float32Array> {
    let values!: Float32Array;
    const ready = Promise.resolve(input).then((v) => values = v);
    return this.#run(
      `allGather shape ${shapeText(shape)}`,
      {
        kind: "allGather",
        shape: [...shape],
      },
      ready,
      async (o, chunkFloats) => {
        const N = this.worldSize, n = values.length;
        const buf = new Float32Array(N * n);
        buf.set(values, this.rank * n);
        if (N === 1) return buf;
        const bounds = Array.from({ length: N + 1 }, (_, c) => c * n);
        await ringPass(this.#link, o, buf, bounds, N - 1, 0, "sum", chunkFloats);
        return buf;
      },
    );
  }

  /** Resolves once every rank has called it. */
  barrier(): Promise<void> {
    return this.#run("barrier", { kind: "barrier" }, Promise.resolve(), () => Promise.resolve());
  }

  /** Waits for the queued collectives, removes this rank's key and closes the connection. */
  async destroy(): Promise<void> {
    if (this.#closing) return;
    await this.#tail;
    this.#closing = true;
    if (!this.#nc.isClosed()) {
      await this.#kv.delete(`rank.${this.rank}`).catch(() => {});
      await this.#nc.drain().catch(() => {});
    }
  }
}

/**
 * The job's KV bucket, made by whichever rank comes first. Ranks that create it at the same
 * instant race in JetStream: the loser's stream create fails ("subjects overlap with an
 * existing stream"). Creating again finds the bucket there (a create of the same config is
 * idempotent), so a few bounded retries settle the race.
 */
async function jobBucket(kvm: Kvm, name: string): Promise<KV> {
  for (let attempt = 1;; attempt++) {
    try {
      return await kvm.create(name, { history: 1, storage: "memory" });
    } catch (e) {
      const raced = /overlap|already in use/i.test((e as Error)?.message ?? "");
      if (!raced || attempt >= 5) throw e;
      await new Promise((resolve) => setTimeout(resolve, 25 * attempt));
    }
  }
}
