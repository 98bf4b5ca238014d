/**
 * The dashboard's view of a distributed job: follows the trace subjects that ranks publish
 * (lib/distributed/trace_publisher.ts) on a NATS server, of one job or of all, and turns each
 * rank's events into events of this process: their device becomes the rank's lane
 * ("rank 1 gpu:0", so the task stream draws "rank 1 gpu:0 compute"; with every job followed,
 * "<job> rank 1 gpu:0"), and their times move onto this process's clock. The event hub
 * streams them with the local engine's own.
 *
 * @module
 */
import { connect } from "npm:@nats-io/transport-node@3.4.0";
import type { NatsConnection, Subscription } from "npm:@nats-io/nats-core@3.4.0";
import { type Observable, Subject } from "npm:rxjs@7.8.2";
import { type TraceMessage, traceSubject } from "../lib/distributed/trace_publisher.ts";
import type { TraceEvent } from "../components/protocol.ts";

/** Options of {@link TraceFollower.connect}. */
export interface TraceFollowerOptions {
  /** The NATS server, `nats://host:port`. */
  url: string;
  /**
   * The job to follow.
   * @default {undefined: every job on the server}
   */
  job?: string;
  /**
   * How long connecting may take.
   * @default {10_000}
   */
  timeoutMs?: number;
}

/** What the follower has seen of one rank. */
export interface RankSeen {
  job: string;
  rank: number;
  worldSize: number;
  /** The rank's device names, as it published them. */
  devices: string[];
  /** Events received. */
  events: number;
  /** Events the rank dropped because it was behind, as it last said. */
  dropped: number;
  /** Messages lost on the way (gaps in its sequence). */
  missed: number;
}

const decoder = new TextDecoder();

/**
 * The lane name of `device` on `rank`: "rank 1 gpu:0", or "<job> rank 1 gpu:0" when `job`
 * is given (every job followed at once).
 *
 * @example
 * ```ts
 * import { rankDevice } from "./trace_follower.ts";
 * console.log(rankDevice(1, "gpu:0")); // "rank 1 gpu:0"
 * console.log(rankDevice(0, "comm", "run7")); // "run7 rank 0 comm"
 * ```
 */
export function rankDevice(rank: number, device: string, job?: string): string {
  return `${job === undefined ? "" : `${job} `}rank ${rank} ${device}`;
}

/** Follows ranks' trace subjects; see the module documentation. */
export class TraceFollower {
  /** The subject it follows. */
  readonly subject: string;
  /** The server. */
  readonly url: string;
  readonly #nc: NatsConnection;
  readonly #sub: Subscription;
  readonly #events = new Subject<TraceEvent>();
  readonly #ranks = new Map<string, RankSeen & { seq: number }>();
  readonly #allJobs: boolean;
  #malformed = 0;

  private constructor(url: string, nc: NatsConnection, job: string | undefined) {
    this.url = url;
    this.#nc = nc;
    this.#allJobs = job === undefined;
    this.subject = traceSubject(job);
    this.#sub = nc.subscribe(this.subject, {
      callback: (err, m) => {
        if (err) return;
        try {
          this.#onMessage(JSON.parse(decoder.decode(m.data)));
        } catch {
          this.#malformed++; // someone else's message: never break the subscription
        }
      },
    });
  }

  /**
   * Connects and subscribes. Rejects with an Error naming the URL when the server cannot be
   * reached; throws a TypeError for an empty job id.
   *
   * @example
   * ```ts
   * import { TraceFollower } from "./trace_follower.ts";
   * import { startNatsServer } from "../lib/distributed/nats_server.ts";
   * await using server = await startNatsServer();
   * const follower = await TraceFollower.connect({ url: server.url, job: "run1" });
   * console.log(follower.subject); // "autopar.run1.trace.*"
   * await follower.close();
   * ```
   */
  static async connect(options: TraceFollowerOptions): Promise<TraceFollower> {
    if (options.job !== undefined && (typeof options.job !== "string" || options.job === "")) {
      throw new TypeError(
        `Cannot follow job ${JSON.stringify(options.job)}: it must be a non-empty string`,
      );
    }
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: options.url,
        timeout: options.timeoutMs ?? 10_000,
        name: `autopar dashboard ${options.job ?? "(every job)"}`,
      });
    } catch (cause) {
      throw new Error(
        `Cannot follow the trace at the NATS server at ${options.url}: ${
          (cause as Error)?.message ?? cause
        }`,
        { cause },
      );
    }
    return new TraceFollower(options.url, nc, options.job);
  }

  /** The ranks' events, on this process's lanes and clock; completes on close. */
  get events$(): Observable<TraceEvent> {
    return this.#events.asObservable();
  }

  /** What it has seen of each rank so far, by job and rank. */
  ranks(): RankSeen[] {
    return [...this.#ranks.values()]
      .map(({ seq: _, ...r }) => ({ ...r, devices: [...r.devices] }))
      .sort((a, b) => a.job.localeCompare(b.job) || a.rank - b.rank);
  }

  /** Messages that were not trace messages. */
  get malformed(): number {
    return this.#malformed;
  }

  /** Unsubscribes, ends {@link TraceFollower.events$} and closes the connection. */
  async close(): Promise<void> {
    if (this.#events.closed) return;
    this.#sub.unsubscribe();
    this.#events.complete();
    this.#events.unsubscribe();
    await this.#nc.close().catch(() => {});
  }

  #onMessage(m: TraceMessage): void {
    if (
      typeof m.job !== "string" || !Number.isInteger(m.rank) || !Array.isArray(m.events) ||
      typeof m.timeOrigin !== "number"
    ) {
      this.#malformed++;
      return;
    }
    const key = `${m.job}\u0000${m.rank}`;
    let seen = this.#ranks.get(key);
    if (!seen || m.seq <= seen.seq) {
      // New, or restarted under the same job id: start its count afresh.
      seen = {
        job: m.job,
        rank: m.rank,
        worldSize: m.worldSize,
        devices: [],
        events: 0,
        dropped: 0,
        missed: 0,
        seq: 0,
      };
      this.#ranks.set(key, seen);
    }
    seen.missed += Math.max(0, m.seq - seen.seq - 1);
    seen.seq = m.seq;
    seen.devices = [...m.devices];
    seen.dropped = m.dropped;
    seen.events += m.events.length;
    const shift = m.timeOrigin - performance.timeOrigin;
    const job = this.#allJobs ? m.job : undefined;
    for (const e of m.events) {
      this.#events.next({
        ...e,
        device: rankDevice(m.rank, e.device, job),
        queued: e.queued + shift,
        start: e.start + shift,
        end: e.end + shift,
        // A rank's benchmark lines are its own, not the local table's.
        label: e.op === "benchmark" && e.label !== undefined
          ? `${rankDevice(m.rank, "", job).trimEnd()}: ${e.label}`
          : e.label,
      });
    }
  }
}
