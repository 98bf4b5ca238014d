/**
 * Plots rendered headless: Vega-Lite compiles a spec, Vega's View renders it to SVG without
 * a browser. And the timeline spec: trace events as bars, lanes on y, time on x.
 *
 * @module
 */
import * as vega from "npm:vega@6.2.0";
import * as vegaLite from "npm:vega-lite@6.4.1";
import type { TraceEvent } from "../engine/engine.ts";

/** Renders a Vega-Lite spec to an SVG string. Throws what Vega throws for a bad spec. */
export async function renderSvg(spec: Record<string, unknown>): Promise<string> {
  // deno-lint-ignore no-explicit-any
  const compiled = vegaLite.compile(spec as any).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** A trace event placed on a timeline: `row` is the lane it is drawn on. */
export interface TimelineBar {
  row: string;
  /** ms from the start of the picture. */
  start: number;
  end: number;
  op: string;
  /** A facet (a panel of its own), for example the section or configuration. */
  panel?: string;
  color?: string;
}

/** The lane of a trace event as drawn: "gpu:0 compute", "gpu:0 copy", "cpu host". */
export function laneOf(e: TraceEvent): string {
  return `${e.device} ${e.lane}`;
}

/**
 * Trace events as bars relative to the first start, leaving out benchmark spans. `row`
 * and `color` pick the lane and the colour of each (default: its lane, its op).
 */
export function timelineBars(
  events: readonly TraceEvent[],
  options: {
    row?: (e: TraceEvent) => string;
    color?: (e: TraceEvent) => string;
    panel?: string;
    origin?: number;
  } = {},
): TimelineBar[] {
  const ops = events.filter((e) => e.op !== "benchmark");
  const origin = options.origin ?? Math.min(...ops.map((e) => e.start));
  return ops.map((e) => ({
    row: (options.row ?? laneOf)(e),
    start: e.start - origin,
    // Zero-length spans (host ops of a few µs) still get a visible sliver.
    end: Math.max(e.end, e.start + 0.05) - origin,
    op: e.op,
    panel: options.panel,
    color: (options.color ?? ((x: TraceEvent) => x.op))(e),
  }));
}

/** A Vega-Lite Gantt chart of `bars`: rows on y, ms on x, one panel per `panel`. */
export function timelineSpec(
  bars: readonly TimelineBar[],
  options: { title: string; width?: number; rowHeight?: number; colorTitle?: string },
): Record<string, unknown> {
  const panelNames = [...new Set(bars.map((b) => b.panel ?? ""))];
  const panels = panelNames.length;
  // Rows of the fullest panel: every panel gets that height.
  const rows = Math.max(
    1,
    ...panelNames.map((p) =>
      new Set(bars.filter((b) => (b.panel ?? "") === p).map((b) => b.row)).size
    ),
  );
  const layer = {
    mark: { type: "bar", opacity: 0.55, stroke: "black", strokeWidth: 0.3 },
    encoding: {
      y: { field: "row", type: "nominal", title: null, sort: null },
      x: { field: "start", type: "quantitative", title: "time (ms)" },
      x2: { field: "end" },
      color: { field: "color", type: "nominal", title: options.colorTitle ?? "op" },
      tooltip: [{ field: "op" }, { field: "start" }, { field: "end" }],
    },
    width: options.width ?? 640,
    height: Math.max(40, rows * (options.rowHeight ?? 22)),
  };
  const data = { values: bars.map((b) => ({ ...b, panel: b.panel ?? "" })) };
  if (panels <= 1) return { title: options.title, data, ...layer };
  return {
    title: options.title,
    data,
    facet: { row: { field: "panel", type: "nominal", title: null, sort: null } },
    spec: layer,
    resolve: { scale: { y: "independent", x: "independent" } },
  };
}
