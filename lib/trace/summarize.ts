/**
 * A summary of a trace: how busy each lane was, how much copying was hidden under
 * computation, the critical path through the dependencies, and how close the run came to
 * the best the lanes allow.
 *
 * @module
 */
import type { TraceEvent } from "../engine/engine.ts";
import { intersection, type Interval, measure, union } from "./intervals.ts";

/**
 * How busy one lane (a device's compute, copy or host lane) was.
 *
 * @example
 * ```ts
 * import { type LaneSummary, summarize } from "./summarize.ts";
 * const [lane]: LaneSummary[] = summarize([
 *   { id: 1, op: "mm", device: "gpu:0", lane: "compute", queued: 0, start: 0, end: 4, deps: [] },
 *   { id: 2, op: "mm", device: "gpu:0", lane: "compute", queued: 0, start: 6, end: 10, deps: [] },
 * ]).lanes;
 * console.log(lane.device, lane.lane, lane.ops); // "gpu:0" "compute" 2
 * console.log(lane.busy, lane.utilisation); // 8 0.8
 * ```
 */
export interface LaneSummary {
  /** The device's name, for example "gpu:0". */
  device: string;
  /** Which of the device's lanes: "compute", "copy" or "host". */
  lane: TraceEvent["lane"];
  /** Ops on the lane. */
  ops: number;
  /** ms the lane was busy: the length of the union of its ops' spans. */
  busy: number;
  /** busy / makespan. */
  utilisation: number;
}

/**
 * Copy time against compute time (ms).
 *
 * @example
 * ```ts
 * import { type CopySummary, summarize } from "./summarize.ts";
 * const copy: CopySummary = summarize([
 *   { id: 1, op: "mm", device: "gpu:0", lane: "compute", queued: 0, start: 0, end: 10, deps: [] },
 *   { id: 2, op: "copy", device: "gpu:0", lane: "copy", queued: 0, start: 8, end: 12, deps: [] },
 * ]).copy;
 * console.log(copy.total, copy.hidden, copy.exposed, copy.hiddenFraction); // 4 2 2 0.5
 * ```
 */
export interface CopySummary {
  /** Copy time: per device, the union of its copy spans; summed over devices. */
  total: number;
  /** Copy time during which the same device was computing (the copy of y[i-1] under y[i]). */
  hidden: number;
  /** Copy time during which some device (this one or another) was computing. */
  hiddenAnyDevice: number;
  /** Copy time during which no device was computing: total - hiddenAnyDevice. */
  exposed: number;
  /** hidden / total; 0 without copies. */
  hiddenFraction: number;
}

/**
 * What {@link summarize} finds.
 *
 * @example
 * ```ts
 * import { summarize, type TraceSummary } from "./summarize.ts";
 * const s: TraceSummary = summarize([
 *   { id: 1, op: "mm", device: "gpu:0", lane: "compute", queued: 0, start: 0, end: 4, deps: [] },
 *   { id: 2, op: "mm", device: "gpu:1", lane: "compute", queued: 0, start: 0, end: 4, deps: [] },
 *   { id: 3, op: "add", device: "gpu:0", lane: "compute", queued: 0, start: 4, end: 5, deps: [1] },
 * ]);
 * console.log(s.makespan, s.criticalPath, s.idealMakespan, s.efficiency);
 * // 5 { length: 5, ops: [1, 3] } 5 1
 * ```
 */
export interface TraceSummary {
  /** ms from the first op's start to the last op's end (0 without ops). */
  makespan: number;
  /** Each lane that ran an op, by device name, then lane name. */
  lanes: LaneSummary[];
  /** Copy time against compute time, in ms. */
  copy: CopySummary;
  /** The longest chain of dependent ops, by the sum of their durations (ms), first op first. */
  criticalPath: { length: number; ops: number[] };
  /**
   * The shortest makespan the dependencies and lanes allow: the larger of the critical path
   * and the busiest lane's busy time.
   */
  idealMakespan: number;
  /** idealMakespan / makespan (1 for an empty trace). */
  efficiency: number;
}

/**
 * Options of {@link summarize}.
 *
 * @example
 * ```ts
 * import { type SummarizeOptions, summarize } from "./summarize.ts";
 * const options: SummarizeOptions = { span: "step" };
 * const s = summarize([
 *   { id: 1, op: "mm", device: "gpu:0", lane: "compute", queued: 0, start: 0, end: 4, deps: [] },
 *   { id: 2, op: "benchmark", label: "step", device: "cpu", lane: "host", queued: 5, start: 5,
 *     end: 9, deps: [] },
 *   { id: 3, op: "mm", device: "gpu:0", lane: "compute", queued: 6, start: 6, end: 8, deps: [] },
 * ], options);
 * console.log(s.makespan, s.lanes[0].ops); // 2 1
 * ```
 */
export interface SummarizeOptions {
  /**
   * Summarise only the ops queued inside the last benchmark span with this label.
   * @default {every op}
   */
  span?: string;
}

/**
 * Summarises a trace. Benchmark spans (op "benchmark") are not work: they only delimit
 * `span`. Dependencies on ops that are not in `events` are ignored. The numbers are only as
 * true as the spans: without device timing, every op of a batch carries the batch's times.
 * Throws a RangeError when `span` names no benchmark span, or when the dependencies form a
 * cycle.
 *
 * @example
 * ```ts
 * import { summarize } from "./summarize.ts";
 * const ev = (id: number, lane: "compute" | "copy", start: number, end: number, deps: number[]) =>
 *   ({ id, op: lane === "copy" ? "copy" : "mm", device: "gpu:0", lane, queued: 0, start, end, deps });
 * const s = summarize([
 *   ev(1, "compute", 0, 10, []),
 *   ev(2, "compute", 10, 20, [1]),
 *   ev(3, "copy", 10, 15, [1]), // copies y[0] while y[1] computes
 * ]);
 * console.log(s.copy.hiddenFraction, s.criticalPath.length, s.efficiency); // 1 20 1
 * ```
 */
export function summarize(
  events: readonly TraceEvent[],
  options: SummarizeOptions = {},
): TraceSummary {
  let work = events.filter((e) => e.op !== "benchmark");
  if (options.span !== undefined) {
    const span = events.findLast((e) => e.op === "benchmark" && e.label === options.span);
    if (!span) {
      throw new RangeError(`Cannot summarise span "${options.span}": the trace has no such span`);
    }
    work = work.filter((e) => e.queued >= span.start && e.queued <= span.end);
  }
  let first = Infinity;
  let last = -Infinity;
  const byLane = new Map<string, TraceEvent[]>();
  for (const e of work) {
    first = Math.min(first, e.start);
    last = Math.max(last, e.end);
    const key = `${e.device}\u0000${e.lane}`;
    const lane = byLane.get(key);
    if (lane) lane.push(e);
    else byLane.set(key, [e]);
  }
  const makespan = work.length > 0 ? last - first : 0;
  const unions = new Map<string, Interval[]>();
  const lanes: LaneSummary[] = [...byLane.entries()].map(([key, es]) => {
    const u = union(es.map((e) => [e.start, e.end]));
    unions.set(key, u);
    const busy = measure(u);
    return {
      device: es[0].device,
      lane: es[0].lane,
      ops: es.length,
      busy,
      utilisation: makespan > 0 ? busy / makespan : 0,
    };
  }).sort((a, b) => a.device.localeCompare(b.device) || a.lane.localeCompare(b.lane));

  const computeAll = union(work.filter((e) => e.lane === "compute").map((e) => [e.start, e.end]));
  const copy: CopySummary = {
    total: 0,
    hidden: 0,
    hiddenAnyDevice: 0,
    exposed: 0,
    hiddenFraction: 0,
  };
  for (const l of lanes) {
    if (l.lane !== "copy") continue;
    const copies = unions.get(`${l.device}\u0000copy`)!;
    copy.total += l.busy;
    copy.hidden += intersection(copies, unions.get(`${l.device}\u0000compute`) ?? []);
    copy.hiddenAnyDevice += intersection(copies, computeAll);
  }
  copy.exposed = copy.total - copy.hiddenAnyDevice;
  copy.hiddenFraction = copy.total > 0 ? copy.hidden / copy.total : 0;

  const criticalPath = longestPath(work);
  const idealMakespan = lanes.reduce((m, l) => Math.max(m, l.busy), criticalPath.length);
  return {
    makespan,
    lanes,
    copy,
    criticalPath,
    idealMakespan,
    efficiency: makespan > 0 ? idealMakespan / makespan : 1,
  };
}

/** The longest path through the dependency graph, weighted by duration (Kahn's order). */
function longestPath(work: readonly TraceEvent[]): { length: number; ops: number[] } {
  const byId = new Map(work.map((e) => [e.id, e]));
  const waiting = new Map<number, number>();
  const consumers = new Map<number, number[]>();
  for (const e of byId.values()) {
    const deps = new Set(e.deps.filter((d) => byId.has(d) && d !== e.id));
    waiting.set(e.id, deps.size);
    for (const d of deps) {
      const list = consumers.get(d);
      if (list) list.push(e.id);
      else consumers.set(d, [e.id]);
    }
  }
  const length = new Map<number, number>();
  const via = new Map<number, number>();
  const ready = [...waiting].filter(([, n]) => n === 0).map(([id]) => id);
  let done = 0;
  while (ready.length > 0) {
    const id = ready.pop()!;
    done++;
    const e = byId.get(id)!;
    let best = 0;
    for (const d of e.deps) {
      const l = length.get(d);
      if (l !== undefined && l > best) {
        best = l;
        via.set(id, d);
      }
    }
    length.set(id, best + Math.max(0, e.end - e.start));
    for (const c of consumers.get(id) ?? []) {
      const n = waiting.get(c)! - 1;
      waiting.set(c, n);
      if (n === 0) ready.push(c);
    }
  }
  if (done < byId.size) {
    throw new RangeError("Cannot find the critical path: the deps form a cycle");
  }
  let end: number | undefined;
  for (const [id, l] of length) if (end === undefined || l > length.get(end)!) end = id;
  const ops: number[] = [];
  for (let id = end; id !== undefined; id = via.get(id)) ops.push(id);
  return { length: end === undefined ? 0 : length.get(end)!, ops: ops.reverse() };
}

/**
 * One line for a summary: compute utilisation, copy overlap and efficiency.
 *
 * @example
 * ```ts
 * import { formatSummary, summarize } from "./summarize.ts";
 * const s = summarize([
 *   { id: 1, op: "mm", device: "gpu:0", lane: "compute", queued: 0, start: 0, end: 8, deps: [] },
 *   { id: 2, op: "copy", device: "gpu:0", lane: "copy", queued: 0, start: 8, end: 12, deps: [1] },
 *   { id: 3, op: "mm", device: "gpu:0", lane: "compute", queued: 0, start: 8, end: 10, deps: [] },
 * ]);
 * console.log(formatSummary(s));
 * // "gpu:0 compute 83% busy; copy 50% hidden under compute (2.0 ms exposed); efficiency 1.00"
 * ```
 */
export function formatSummary(s: TraceSummary): string {
  const busy = s.lanes.filter((l) => l.lane === "compute")
    .map((l) => `${l.device} compute ${(l.utilisation * 100).toFixed(0)}% busy`);
  const copy = s.copy.total > 0
    ? `copy ${(s.copy.hiddenFraction * 100).toFixed(0)}% hidden under compute ` +
      `(${s.copy.exposed.toFixed(1)} ms exposed)`
    : "no copies";
  return [...busy, copy, `efficiency ${s.efficiency.toFixed(2)}`].join("; ");
}
