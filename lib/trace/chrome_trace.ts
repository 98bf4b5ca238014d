/**
 * Export of trace events to the Chrome Trace Event Format (JSON object form), which
 * chrome://tracing, Perfetto (ui.perfetto.dev) and Chrome DevTools' Performance panel open.
 *
 * @module
 */
import type { TraceEvent } from "../engine/engine.ts";

/**
 * One event of the Chrome Trace Event Format. Times are microseconds.
 *
 * @example
 * ```ts
 * import { type ChromeTraceEvent, exportChromeTrace } from "./chrome_trace.ts";
 * const { traceEvents } = exportChromeTrace([
 *   { id: 1, op: "mm", device: "gpu:0", lane: "compute", queued: 0, start: 1, end: 3, deps: [] },
 * ]);
 * const span: ChromeTraceEvent = traceEvents.find((e) => e.ph === "X")!;
 * console.log(span.name, span.ts, span.dur, span.pid, span.tid); // "mm" 1000 2000 1 1
 * ```
 */
export interface ChromeTraceEvent {
  /** The name shown: the op's, a benchmark's label, "dep" for a flow, or the metadata's kind. */
  name: string;
  /** "X" complete, "M" metadata, "s"/"f" flow start and end. */
  ph: "X" | "M" | "s" | "f";
  /** When it starts, in µs on the main thread's `performance.now()` clock; 0 for metadata. */
  ts: number;
  /** The process: one per device, numbered from 1 in the order of the devices' names. */
  pid: number;
  /** The thread: the lane (1 compute, 2 copy, 3 host), or 0 for a process's metadata. */
  tid: number;
  /** The category, "autopar" for spans and flows. */
  cat?: string;
  /** How long a complete ("X") event lasts, in µs. */
  dur?: number;
  /** The flow's id, the same on its start ("s") and its end ("f"). */
  id?: number;
  /** "e": a flow end binds to the slice that encloses it. */
  bp?: "e";
  /** What the viewer lists with it: the op's id, shape, bytes, flops, deps; a metadata's value. */
  args?: Record<string, unknown>;
}

/**
 * A trace in the Chrome Trace Event Format's object form.
 *
 * @example
 * ```ts
 * import { type ChromeTrace, exportChromeTrace } from "./chrome_trace.ts";
 * const trace: ChromeTrace = exportChromeTrace([
 *   { id: 1, op: "mm", device: "gpu:0", lane: "compute", queued: 0, start: 1, end: 3, deps: [] },
 * ]);
 * console.log(trace.displayTimeUnit, trace.traceEvents.map((e) => e.ph).join("")); // "ms" "MMMMX"
 * ```
 */
export interface ChromeTrace {
  /** Every event: the metadata (names and sort order) first, then spans and flows by `ts`. */
  traceEvents: ChromeTraceEvent[];
  /** The unit viewers show times in; `ts` and `dur` stay in µs. */
  displayTimeUnit: "ms";
}

const LANES: readonly TraceEvent["lane"][] = ["compute", "copy", "host"];
const CAT = "autopar";

/**
 * Converts events to a Chrome trace: one process per device (named by `process_name`
 * metadata), one thread per lane (compute, copy, host; `thread_name`), a complete ("X")
 * event per op with its shape, bytes, flops and device timestamps in `args`, and a flow
 * ("s" at the producer's start, "f" at the consumer's start) per dependency between ops in
 * `events`. Benchmark spans appear on the host lane of "cpu", named by their label. Times
 * are the events' main-thread times, in microseconds. Never throws for well-formed events.
 *
 * @example
 * ```ts
 * import { exportChromeTrace } from "./chrome_trace.ts";
 * const trace = exportChromeTrace([
 *   { id: 1, op: "mm", device: "gpu:0", lane: "compute", queued: 0, start: 1, end: 3, deps: [], shape: [4, 4] },
 *   { id: 2, op: "copy", device: "gpu:0", lane: "copy", queued: 0, start: 3, end: 4, deps: [1] },
 * ]);
 * console.log(trace.traceEvents.filter((e) => e.ph === "X").length); // 2
 * // await Deno.writeTextFile("trace.json", JSON.stringify(trace)); // open in ui.perfetto.dev
 * ```
 */
export function exportChromeTrace(events: readonly TraceEvent[]): ChromeTrace {
  const devices = [...new Set(events.map((e) => e.device))].sort();
  const pid = new Map(devices.map((d, i) => [d, i + 1]));
  const meta = metadataEvents(events, pid);
  const spans = spanEvents(events, pid);
  spans.sort((a, b) => a.ts - b.ts);
  return { traceEvents: [...meta, ...spans], displayTimeUnit: "ms" };
}

/** The thread of a lane: 1 compute, 2 copy, 3 host. */
const tid = (lane: TraceEvent["lane"]) => LANES.indexOf(lane) + 1;
/** Milliseconds as microseconds, rounded to the nanosecond. */
const us = (ms: number) => Math.round(ms * 1000 * 1000) / 1000; // ns precision

/** The names and sort order of each device's process (`pid` order) and of its lanes. */
function metadataEvents(
  events: readonly TraceEvent[],
  pid: ReadonlyMap<string, number>,
): ChromeTraceEvent[] {
  const meta: ChromeTraceEvent[] = [];
  for (const [d, p] of pid) {
    meta.push({ name: "process_name", ph: "M", ts: 0, pid: p, tid: 0, args: { name: d } });
    meta.push({
      name: "process_sort_index",
      ph: "M",
      ts: 0,
      pid: p,
      tid: 0,
      args: { sort_index: p },
    });
    for (const lane of new Set(events.filter((e) => e.device === d).map((e) => e.lane))) {
      meta.push({
        name: "thread_name",
        ph: "M",
        ts: 0,
        pid: p,
        tid: tid(lane),
        args: { name: lane },
      });
      meta.push({
        name: "thread_sort_index",
        ph: "M",
        ts: 0,
        pid: p,
        tid: tid(lane),
        args: { sort_index: tid(lane) },
      });
    }
  }
  return meta;
}

/** A complete event per op, each followed by a flow per dependency on an op of `events`. */
function spanEvents(
  events: readonly TraceEvent[],
  pid: ReadonlyMap<string, number>,
): ChromeTraceEvent[] {
  const byId = new Map(events.map((e) => [e.id, e]));
  const spans: ChromeTraceEvent[] = [];
  let flow = 0;
  for (const e of events) {
    spans.push(opSpan(e, pid));
    for (const d of new Set(e.deps)) {
      const from = byId.get(d);
      if (!from) continue;
      flow++;
      spans.push(...depFlow(from, e, { id: flow, pid }));
    }
  }
  return spans;
}

/** The complete ("X") event of one op, with what the viewer lists in `args`. */
function opSpan(e: TraceEvent, pid: ReadonlyMap<string, number>): ChromeTraceEvent {
  const args: Record<string, unknown> = { id: e.id };
  for (
    const k of [
      "shape",
      "bytes",
      "flops",
      "gpuStart",
      "gpuEnd",
      "label",
      "kernels",
      "error",
    ] as const
  ) {
    if (e[k] !== undefined) args[k] = e[k];
  }
  args.queued = e.queued;
  if (e.deps.length > 0) args.deps = e.deps;
  return {
    name: e.op === "benchmark" && e.label ? e.label : e.op,
    cat: CAT,
    ph: "X",
    ts: us(e.start),
    dur: Math.max(0, Math.round((us(e.end) - us(e.start)) * 1000) / 1000),
    pid: pid.get(e.device)!,
    tid: tid(e.lane),
    args,
  };
}

/** The flow start (at the producer's start) and end (at the consumer's) of one dependency. */
function depFlow(
  from: TraceEvent,
  to: TraceEvent,
  flow: { id: number; pid: ReadonlyMap<string, number> },
): [ChromeTraceEvent, ChromeTraceEvent] {
  const { id, pid } = flow;
  // DevTools binds a flow event to the slice with the same ts, pid, tid and cat;
  // catapult and Perfetto to the slice that encloses it: both find the op here.
  return [
    {
      name: "dep",
      cat: CAT,
      ph: "s",
      id,
      ts: us(from.start),
      pid: pid.get(from.device)!,
      tid: tid(from.lane),
    },
    {
      name: "dep",
      cat: CAT,
      ph: "f",
      bp: "e",
      id,
      ts: us(to.start),
      pid: pid.get(to.device)!,
      tid: tid(to.lane),
    },
  ];
}
