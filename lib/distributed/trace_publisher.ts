/**
 * A rank's trace on NATS: every trace event of this process (its ops, copies and collectives,
 * the `comm` lane's included), in batches of one frame (250 ms, as the dashboard sends them
 * to its pages) on the job's subject `autopar.<job>.trace.<rank>`, for a dashboard that
 * follows the job (`deno task start --nats URL`). Each batch names the rank, the job and the
 * devices seen so far.
 *
 * Publishing never holds up training: events wait in a bounded buffer (the oldest are dropped
 * and counted when it is full), a frame is skipped while the previous one is still being
 * flushed to the server, and the publisher has a connection of its own, so that its bytes
 * never queue in front of the collectives'. A failure to publish (a lost server) is counted,
 * not thrown: the process group reports a lost server itself.
 *
 * @module
 */
import { connect } from "npm:@nats-io/transport-node@3.4.0";
import type { NatsConnection } from "npm:@nats-io/nats-core@3.4.0";
import type { Subscription } from "npm:rxjs@7.8.2";
import { trace$, type TraceEvent } from "../trace/trace.ts";
import { jobToken } from "./options.ts";

/**
 * One message on a rank's trace subject: a batch of its trace events, times on the rank's
 * own `performance.now()` clock (add `timeOrigin` for Unix-epoch ms).
 *
 * @example
 * ```ts
 * import type { TraceMessage } from "../../mod.ts";
 * const m: TraceMessage = {
 *   job: "run1", rank: 1, worldSize: 2, devices: ["cpu"], seq: 1, dropped: 0,
 *   timeOrigin: performance.timeOrigin, events: [],
 * };
 * console.log(m.rank, m.devices); // 1 ["cpu"]
 * ```
 */
export interface TraceMessage {
  /** The job id, as given to initProcessGroup (not the subject token). */
  job: string;
  /** The rank that ran the events. */
  rank: number;
  /** The number of ranks in the job. */
  worldSize: number;
  /** The names of the devices this rank's events ran on so far ("gpu:0", "comm", ...). */
  devices: string[];
  /** 1, 2, ... per publisher: a gap means messages lost on the way. */
  seq: number;
  /** Events this rank dropped so far because it was behind (bounded buffer). */
  dropped: number;
  /** The rank's `performance.timeOrigin`: puts its times on a shared clock. */
  timeOrigin: number;
  /** The events, oldest first. */
  events: TraceEvent[];
}

/**
 * The subject of a rank's trace in `job`, or, without a rank, the wildcard of all of the
 * job's ranks; without a job either, every job's.
 *
 * @example
 * ```ts
 * import { traceSubject } from "../../mod.ts";
 * console.log(traceSubject("run1", 2)); // "autopar.run1.trace.2"
 * console.log(traceSubject("run1")); // "autopar.run1.trace.*"
 * console.log(traceSubject()); // "autopar.*.trace.*"
 * ```
 */
export function traceSubject(job?: string, rank?: number): string {
  return `autopar.${job === undefined ? "*" : jobToken(job)}.trace.${rank ?? "*"}`;
}

/**
 * Options of {@link TracePublisher.start}.
 *
 * @example
 * ```ts
 * import type { TracePublisherOptions } from "../../mod.ts";
 * const o: TracePublisherOptions = { url: "nats://127.0.0.1:4222", job: "j", rank: 0, worldSize: 2 };
 * console.log(o.frameMs ?? 250); // 250
 * ```
 */
export interface TracePublisherOptions {
  /** The NATS server, `nats://host:port`. */
  url: string;
  /** The job id. */
  job: string;
  /** This process's rank. */
  rank: number;
  /** The number of ranks. */
  worldSize: number;
  /**
   * Milliseconds between batches.
   * @default {250}
   */
  frameMs?: number;
  /**
   * Most events waiting to be published; beyond it the oldest are dropped and counted.
   * @default {20_000}
   */
  maxPending?: number;
  /**
   * How long connecting may take.
   * @default {10_000}
   */
  timeoutMs?: number;
}

type Resolved = Required<Omit<TracePublisherOptions, "timeoutMs">>;

const encoder = new TextEncoder();
/** Room left in each message under max_payload, for the protocol's own bytes. */
const HEADROOM = 1024;

/** Publishes this process's trace events on its rank's subject; see the module documentation. */
export class TracePublisher {
  /** The subject it publishes on. */
  readonly subject: string;
  readonly #nc: NatsConnection;
  readonly #o: Resolved;
  readonly #maxBytes: number;
  readonly #devices = new Set<string>();
  readonly #sub: Subscription;
  readonly #timer: ReturnType<typeof setInterval>;
  #pending: TraceEvent[] = [];
  #seq = 0;
  #dropped = 0;
  #published = 0;
  #failed = 0;
  #flushing: Promise<void> | undefined;
  #closed = false;

  private constructor(o: Resolved, nc: NatsConnection) {
    this.#o = o;
    this.#nc = nc;
    this.subject = traceSubject(o.job, o.rank);
    this.#maxBytes = Math.max(4096, (nc.info?.max_payload ?? 1 << 20) - HEADROOM);
    this.#sub = trace$().subscribe((e) => this.#onEvent(e));
    this.#timer = setInterval(() => this.#frame(), o.frameMs);
    Deno.unrefTimer(Number(this.#timer)); // the trace alone never keeps a script running
  }

  /**
   * Connects to the server and starts publishing. Throws a RangeError for a bad `frameMs` or
   * `maxPending`; rejects with an Error naming the URL when the server cannot be reached.
   *
   * @example
   * ```ts
   * import { TracePublisher } from "../../mod.ts";
   * import { startNatsServer } from "./nats_server.ts";
   * await using server = await startNatsServer();
   * const p = await TracePublisher.start({ url: server.url, job: "j", rank: 0, worldSize: 1 });
   * console.log(p.subject); // "autopar.j.trace.0"
   * await p.close();
   * ```
   */
  static async start(options: TracePublisherOptions): Promise<TracePublisher> {
    const frameMs = options.frameMs ?? 250;
    const maxPending = options.maxPending ?? 20_000;
    if (!(frameMs > 0) || !Number.isFinite(frameMs)) {
      throw new RangeError(`Cannot publish the trace every ${frameMs} ms: it must be > 0`);
    }
    if (!Number.isInteger(maxPending) || maxPending < 1) {
      throw new RangeError(
        `Cannot keep ${maxPending} trace events: it must be a whole number >= 1`,
      );
    }
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: options.url,
        timeout: options.timeoutMs ?? 10_000,
        reconnect: false,
        name: `autopar ${options.job} rank ${options.rank} trace`,
      });
    } catch (cause) {
      throw new Error(
        `Cannot publish the trace of rank ${options.rank} to the NATS server at ${options.url}: ${
          (cause as Error)?.message ?? cause
        }`,
        { cause },
      );
    }
    const { url, job, rank, worldSize } = options;
    return new TracePublisher({ url, job, rank, worldSize, frameMs, maxPending }, nc);
  }

  /** Events dropped so far because the buffer was full. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Events published so far. */
  get published(): number {
    return this.#published;
  }

  /** Messages that could not be published (the server was gone). */
  get failed(): number {
    return this.#failed;
  }

  /** Publishes what is pending, then stops and closes its connection. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#sub.unsubscribe();
    clearInterval(this.#timer);
    await this.#flushing;
    this.#publish();
    await this.#nc.drain().catch(() => {});
  }

  #onEvent(e: TraceEvent): void {
    this.#devices.add(e.device);
    this.#pending.push(e);
    if (this.#pending.length > this.#o.maxPending) {
      // Dropping the oldest half at once keeps this O(1) per event on average.
      const drop = this.#pending.length - (this.#o.maxPending >> 1);
      this.#pending = this.#pending.slice(drop);
      this.#dropped += drop;
    }
  }

  /** One frame: publishes unless the previous frame is still on its way. */
  #frame(): void {
    if (this.#flushing || this.#pending.length === 0) return;
    this.#publish();
    this.#flushing = this.#nc.flush().catch(() => {}).finally(() => this.#flushing = undefined);
  }

  #publish(): void {
    const events = this.#pending;
    this.#pending = [];
    if (events.length > 0) this.#send(events);
  }

  /** Publishes `events`, split in halves until each message fits under max_payload. */
  #send(events: TraceEvent[]): void {
    const message: TraceMessage = {
      job: this.#o.job,
      rank: this.#o.rank,
      worldSize: this.#o.worldSize,
      devices: [...this.#devices],
      seq: this.#seq + 1,
      dropped: this.#dropped,
      timeOrigin: performance.timeOrigin,
      events,
    };
    const bytes = encoder.encode(JSON.stringify(message));
    if (bytes.length > this.#maxBytes) {
      if (events.length === 1) {
        this.#dropped++; // one event larger than a message: nothing to split
        return;
      }
      const half = events.length >> 1;
      this.#send(events.slice(0, half));
      this.#send(events.slice(half));
      return;
    }
    try {
      this.#nc.publish(this.subject, bytes);
      this.#seq++;
      this.#published += events.length;
    } catch {
      this.#failed++;
    }
  }
}
