/**
 * The task stream's data on the page: one row per device lane, each a list of spans sorted
 * by start. A row keeps its recent spans as they came and folds its oldest ones, once it
 * has too many, into aggregated spans (same op, same time bucket), so memory and drawing
 * stay bounded however long the page runs. Pure data: tested in Deno, drawn by TaskStream.
 *
 * @module
 */
import type { TraceEvent } from "../components/protocol.ts";

/** A span on a row: one trace event, or several of the same op folded together. */
export interface Span {
  start: number;
  end: number;
  op: string;
  /** Events in the span: 1 for a single event. */
  count: number;
  bytes: number;
  flops: number;
  /** Sum of the events' wall durations (ms). */
  busy: number;
  /** The event itself, when `count` is 1. */
  event?: TraceEvent;
}

/** One device lane ("gpu:0 compute"), or the row of benchmark blocks. */
export interface Row {
  key: string;
  device: string;
  lane: TraceEvent["lane"] | "benchmark";
  spans: Span[];
  /** The longest span, so a search by start finds every span that reaches a time. */
  longest: number;
}

/** Options of {@link TaskStore}. */
export interface TaskStoreOptions {
  /**
   * Spans a row holds before folding its oldest half.
   * @default {20_000}
   */
  maxSpansPerRow?: number;
  /**
   * Time buckets the folded half is cut into.
   * @default {500}
   */
  foldBuckets?: number;
}

const LANE_ORDER = { benchmark: 0, compute: 1, copy: 2, host: 3 } as const;

/** The row of an event: benchmark blocks get their own. */
export function rowKeyOf(e: Pick<TraceEvent, "op" | "device" | "lane">): string {
  return e.op === "benchmark" ? "benchmarks" : `${e.device} ${e.lane}`;
}

/** First index in `spans` whose start is >= t. */
export function lowerBound(spans: readonly Span[], t: number): number {
  let lo = 0, hi = spans.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (spans[mid].start < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Spans per device lane, bounded; see the module documentation.
 *
 * @example
 * ```ts
 * import { TaskStore } from "./task_store.ts";
 * const store = new TaskStore();
 * store.add([{ id: 1, op: "mm", device: "gpu:0", lane: "compute", queued: 0, start: 1,
 *   end: 3, deps: [] }]);
 * console.log(store.rows().map((r) => r.key)); // ["gpu:0 compute"]
 * ```
 */
export class TaskStore {
  readonly #rows = new Map<string, Row>();
  readonly #maxSpans: number;
  readonly #buckets: number;
  #ordered: Row[] = [];
  /** Events added since the store was made or cleared. */
  events = 0;
  /** Earliest start and latest end seen. */
  first = Infinity;
  last = -Infinity;

  /** Makes an empty store. */
  constructor(options: TaskStoreOptions = {}) {
    this.#maxSpans = options.maxSpansPerRow ?? 20_000;
    this.#buckets = options.foldBuckets ?? 500;
  }

  /** The rows: benchmarks first, then each device's compute, copy and host lanes. */
  rows(): readonly Row[] {
    return this.#ordered;
  }

  /** Forgets everything. */
  clear(): void {
    this.#rows.clear();
    this.#ordered = [];
    this.events = 0;
    this.first = Infinity;
    this.last = -Infinity;
  }

  /** Makes sure a row exists (so idle lanes show as white rows). */
  ensureRow(device: string, lane: Row["lane"]): Row {
    const key = lane === "benchmark" ? "benchmarks" : `${device} ${lane}`;
    let row = this.#rows.get(key);
    if (!row) {
      row = { key, device, lane, spans: [], longest: 0 };
      this.#rows.set(key, row);
      this.#ordered = [...this.#rows.values()].sort((a, b) =>
        (a.lane === "benchmark" ? -1 : 0) - (b.lane === "benchmark" ? -1 : 0) ||
        deviceRank(a.device) - deviceRank(b.device) ||
        a.device.localeCompare(b.device, "en", { numeric: true }) ||
        LANE_ORDER[a.lane] - LANE_ORDER[b.lane]
      );
    }
    return row;
  }

  /** Adds events (any order), folding rows that grew too long. */
  add(events: readonly TraceEvent[]): void {
    for (const e of events) {
      const row = this.ensureRow(e.device, e.op === "benchmark" ? "benchmark" : e.lane);
      const span: Span = {
        start: e.start,
        end: Math.max(e.end, e.start),
        op: e.op,
        count: 1,
        bytes: e.bytes ?? 0,
        flops: e.flops ?? 0,
        busy: Math.max(0, e.end - e.start),
        event: e,
      };
      const spans = row.spans;
      if (spans.length === 0 || spans[spans.length - 1].start <= span.start) spans.push(span);
      else spans.splice(lowerBound(spans, span.start + Number.MIN_VALUE), 0, span);
      row.longest = Math.max(row.longest, span.end - span.start);
      this.first = Math.min(this.first, span.start);
      this.last = Math.max(this.last, span.end);
      this.events++;
      if (spans.length > this.#maxSpans) this.#fold(row);
    }
  }

  /** Calls `each` for every span of `row` that overlaps [t0, t1], in start order. */
  visible(row: Row, t0: number, t1: number, each: (s: Span) => void): void {
    const spans = row.spans;
    for (let i = lowerBound(spans, t0 - row.longest); i < spans.length; i++) {
      const s = spans[i];
      if (s.start > t1) break;
      if (s.end >= t0) each(s);
    }
  }

  /** The span of `row` under time `t` (within `slack` ms), the latest-starting one first. */
  hit(row: Row, t: number, slack = 0): Span | undefined {
    let found: Span | undefined;
    this.visible(row, t - slack, t + slack, (s) => {
      found = s;
    });
    return found;
  }

  /** Folds the oldest half of `row` into one span per op and time bucket. */
  #fold(row: Row): void {
    const half = row.spans.length >> 1;
    const old = row.spans.slice(0, half);
    const from = old[0].start;
    const width = Math.max((old[half - 1].start - from) / this.#buckets, 1e-3);
    const folded: Span[] = [];
    const open = new Map<string, Span>();
    let bucket = -1;
    for (const s of old) {
      const b = Math.floor((s.start - from) / width);
      if (b !== bucket) {
        bucket = b;
        open.clear();
      }
      const into = open.get(s.op);
      if (into) {
        into.end = Math.max(into.end, s.end);
        into.count += s.count;
        into.bytes += s.bytes;
        into.flops += s.flops;
        into.busy += s.busy;
        into.event = undefined;
      } else {
        const copy = { ...s };
        open.set(s.op, copy);
        folded.push(copy);
      }
    }
    row.spans = folded.concat(row.spans.slice(half));
    row.longest = row.spans.reduce((m, s) => Math.max(m, s.end - s.start), 0);
  }
}

function deviceRank(device: string): number {
  return device.startsWith("gpu") ? 0 : 1;
}
