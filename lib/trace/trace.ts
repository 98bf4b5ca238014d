/**
 * The trace: one Observable of plain, serialisable events, one per op, copy and
 * benchmark span. Viewers and exporters read it and nothing else does.
 *
 * @module
 */
import { Observable, type Subscription } from "npm:rxjs@7.8.2";
import { engine, type TraceEvent } from "../engine/engine.ts";
import type * as rxjs from "../streams/rxjs_types.ts";

export type { TraceEvent } from "../engine/engine.ts";

/**
 * The stream {@link trace$} returns: an rxjs Observable of trace events, to `.pipe()` and
 * `subscribe()` like any other. It never completes.
 *
 * @example
 * ```ts
 * import { filter, firstValueFrom } from "npm:rxjs@7.8.2";
 * import { trace$, type TraceStream } from "./trace.ts";
 * import { ones } from "../tensor/creation.ts";
 * const events: TraceStream = trace$();
 * const firstAdd = firstValueFrom(events.pipe(filter((e) => e.op === "add")));
 * ones([2, 3]).add(1);
 * console.log((await firstAdd).shape); // [2, 3]
 * ```
 */
export type TraceStream = rxjs.Observable<TraceEvent>;

/**
 * Options of {@link trace$}.
 *
 * @example
 * ```ts
 * import { trace$, type TraceOptions } from "./trace.ts";
 * import { ones } from "../tensor/creation.ts";
 * import { synchronize } from "../engine/sync.ts";
 * const keep: TraceOptions = { replay: true, bufferSize: 2 };
 * trace$(keep); // keeps the newest 2 events from here on
 * ones([4]).add(1).mul(2);
 * await synchronize();
 * const kept: string[] = [];
 * trace$({ replay: true }).subscribe((e) => kept.push(e.op)).unsubscribe();
 * console.log(kept); // ["add", "mul"]
 * trace$({ replay: true, bufferSize: 0 }); // stops keeping and forgets them
 * ```
 */
export interface TraceOptions {
  /**
   * Replay the events kept so far to each subscriber before the live ones. The first such
   * call starts keeping events (the engine builds events only while someone observes them,
   * so nothing is kept before); they are kept from then on, for every later subscriber.
   * @default {false}
   */
  replay?: boolean;
  /**
   * With `replay`, the most events kept (the oldest are dropped first). A new size applies
   * to the buffer from then on, keeping its newest events; 0 stops keeping and forgets them.
   * @default {100_000, or the size set before}
   */
  bufferSize?: number;
}

/** The newest events, in a ring. */
class ReplayBuffer {
  #ring: TraceEvent[] = [];
  #next = 0;
  readonly #sub: Subscription;

  constructor(public size: number) {
    this.#sub = engine().events.subscribe((e) => this.push(e));
  }

  push(e: TraceEvent): void {
    if (this.#ring.length < this.size) this.#ring.push(e);
    else {
      this.#ring[this.#next] = e;
      this.#next = (this.#next + 1) % this.size;
    }
  }

  /** The events kept, oldest first. */
  kept(): TraceEvent[] {
    return [...this.#ring.slice(this.#next), ...this.#ring.slice(0, this.#next)];
  }

  resize(size: number): void {
    const kept = this.kept();
    this.#ring = kept.slice(Math.max(0, kept.length - size));
    this.#next = 0;
    this.size = size;
  }

  stop(): void {
    this.#sub.unsubscribe();
    this.#ring = [];
  }
}

let replay: ReplayBuffer | undefined;

/**
 * The stream of trace events of every op that finishes from now on; with `{ replay: true }`,
 * first the events kept since the first such call (at most `bufferSize`). Throws a
 * RangeError for a bad `bufferSize`.
 *
 * @example
 * ```ts
 * import { trace$ } from "./trace.ts";
 * import { ones } from "../tensor/creation.ts";
 * import { synchronize } from "../engine/sync.ts";
 * const ops: string[] = [];
 * const sub = trace$().subscribe((e) => ops.push(e.op));
 * ones([4]).add(1);
 * await synchronize();
 * sub.unsubscribe();
 * console.log(ops); // ["ones", "add"]
 *
 * trace$({ replay: true, bufferSize: 1000 }); // keep the last 1,000 events from here on
 * ones([4]).mul(2);
 * await synchronize();
 * const late: string[] = [];
 * trace$({ replay: true }).subscribe((e) => late.push(e.op)).unsubscribe();
 * console.log(late); // ["ones", "mul"]
 * trace$({ replay: true, bufferSize: 0 }); // stop keeping
 * ```
 */
export function trace$(options: TraceOptions = {}): TraceStream {
  const events = engine().events;
  if (!options.replay) return events.asObservable();
  const size = options.bufferSize ?? replay?.size ?? 100_000;
  if (!Number.isInteger(size) || size < 0) {
    throw new RangeError(
      `Cannot keep ${size} trace events: bufferSize must be a whole number >= 0`,
    );
  }
  if (size === 0) {
    replay?.stop();
    replay = undefined;
    return events.asObservable();
  }
  if (!replay) replay = new ReplayBuffer(size);
  else if (size !== replay.size) replay.resize(size);
  const buffer = replay;
  return new Observable<TraceEvent>((subscriber) => {
    // Events are emitted on this thread only, so none can slip in between these two steps.
    for (const e of buffer.kept()) {
      if (subscriber.closed) return;
      subscriber.next(e);
    }
    return events.subscribe(subscriber);
  });
}
