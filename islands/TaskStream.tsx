/**
 * The task stream: one canvas row per device lane (compute, copy, host) and one of
 * benchmark blocks; compute coloured by op, copies red, idle white. Only the visible time
 * range is drawn, and spans narrower than a pixel are summed into pixel columns, so the
 * page stays smooth with hundreds of thousands of events. Hovering shows a span's op,
 * shape (when the event has one), bytes, wall time and device time.
 *
 * @module
 */
import type { VNode } from "npm:preact@10.29.8";
import { useEffect, useRef } from "npm:preact@10.29.8/hooks";
import { useSignal } from "npm:@preact/signals@2.11.4";
import { formatBytes, formatMs } from "../components/format.ts";
import type { Row, Span } from "./task_store.ts";
import { connect, serverNow, store, storeVersion } from "./live.ts";

/** Props of {@link TaskStream}. */
export interface TaskStreamProps {
  /**
   * Milliseconds shown when following the live edge.
   * @default {10_000}
   */
  window?: number;
}

const GUTTER = 118;
const ROW_H = 24;
const AXIS_H = 22;
const PAD = 3;
const COPY = "#d62828";
const IDLE = "#ffffff";
const PALETTE: Record<string, string> = {
  mm: "#1f77b4",
  add: "#2ca02c",
  sub: "#17becf",
  mul: "#9467bd",
  relu: "#bcbd22",
  sum: "#8c564b",
  transpose: "#e377c2",
  rand: "#ff9f1c",
  ones: "#7f7f7f",
  zeros: "#7f7f7f",
  // Training: the loss, backward (autograd labels its ops; "<op> backward" is its colour), and
  // the in-place SGD update.
  crossEntropy: "#393b79",
  softmax_xent: "#393b79",
  "mm backward": "#6baed6",
  "add backward": "#74c476",
  "relu_backward backward": "#8c6d31",
  "sum backward": "#c49c94",
  sub_: "#0b6e69",
  benchmark: "#dde3ea",
};

/** The colour of an op: copies red, benchmarks grey, compute ops from a palette without red. */
export function colourOf(op: string, lane: Row["lane"]): string {
  if (lane === "copy") return COPY;
  const known = PALETTE[op];
  if (known) return known;
  let h = 0;
  for (const ch of op) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return `hsl(${40 + (h % 260)}, 55%, 45%)`; // hues 40..300: never red
}

interface View {
  follow: boolean;
  /** Width of the window in ms; Infinity shows everything. */
  span: number;
  /** Right edge (server ms) when not following. */
  end: number;
}

interface Hover {
  x: number;
  y: number;
  row: Row;
  span: Span;
}

/** The canvas, its view buttons and the hover card. */
export function TaskStream({ window: initialWindow = 10_000 }: TaskStreamProps): VNode {
  const canvasRef = useRef<HTMLCanvasElement>(null);
  const view = useRef<View>({ follow: true, span: initialWindow, end: 0 });
  const hover = useSignal<Hover | null>(null);
  const viewName = useSignal("live");
  const dirty = useRef(true);

  useEffect(() => {
    connect();
    const canvas = canvasRef.current!;
    const ctx = canvas.getContext("2d")!;
    let frame = 0;
    let lastDraw = 0;
    let seenVersion = -1;
    const unsubscribe = storeVersion.subscribe(() => (dirty.current = true));
    const resize = new ResizeObserver(() => (dirty.current = true));
    resize.observe(canvas.parentElement!);
    const tick = (t: number) => {
      frame = requestAnimationFrame(tick);
      const following = view.current.follow && t - lastDraw > 50;
      if (!dirty.current && !following && seenVersion === storeVersion.peek()) return;
      dirty.current = false;
      seenVersion = storeVersion.peek();
      lastDraw = t;
      paint(canvas, ctx, view.current);
    };
    frame = requestAnimationFrame(tick);
    return () => {
      cancelAnimationFrame(frame);
      resize.disconnect();
      unsubscribe();
    };
  }, []);

  const setView = (name: string, span: number, follow = true) => {
    viewName.value = name;
    view.current = { follow, span, end: range(view.current)[1] };
    dirty.current = true;
  };

  const onMove = (e: MouseEvent) => {
    const canvas = canvasRef.current!;
    const box = canvas.getBoundingClientRect();
    const x = e.clientX - box.left;
    const y = e.clientY - box.top;
    const rows = store.rows();
    const row = rows[Math.floor(y / ROW_H)];
    if (!row || x < GUTTER) {
      hover.value = null;
      return;
    }
    const [t0, t1] = range(view.current);
    const scale = (box.width - GUTTER) / (t1 - t0);
    const span = store.hit(row, t0 + (x - GUTTER) / scale, 3 / scale);
    hover.value = span ? { x, y, row, span } : null;
  };

  const onWheel = (e: WheelEvent) => {
    e.preventDefault();
    const box = canvasRef.current!.getBoundingClientRect();
    const [t0, t1] = range(view.current);
    const at = t0 + (t1 - t0) * Math.max(0, (e.clientX - box.left - GUTTER) / (box.width - GUTTER));
    const span = Math.min(Math.max((t1 - t0) * Math.exp(e.deltaY / 400), 0.05), 36e5);
    const follow = view.current.follow && e.deltaY > 0;
    viewName.value = follow ? viewName.value : "zoom";
    view.current = { follow, span, end: follow ? t1 : at + (t1 - at) * span / (t1 - t0) };
    dirty.current = true;
  };

  const drag = useRef<{ x: number; end: number } | null>(null);
  const onDown = (e: MouseEvent) => {
    drag.current = { x: e.clientX, end: range(view.current)[1] };
  };
  const onDrag = (e: MouseEvent) => {
    onMove(e);
    const d = drag.current;
    if (!d || e.buttons !== 1) return;
    const box = canvasRef.current!.getBoundingClientRect();
    const [t0, t1] = range(view.current);
    const shift = (e.clientX - d.x) * (t1 - t0) / (box.width - GUTTER);
    if (Math.abs(e.clientX - d.x) < 2) return;
    viewName.value = "pan";
    view.current = { follow: false, span: t1 - t0, end: d.end - shift };
    dirty.current = true;
  };

  const h = hover.value;
  return (
    <section class="stream" aria-label="Task stream">
      <div class="stream-bar">
        {([["live", 10_000], ["2 s", 2_000], ["60 s", 60_000], ["all", Infinity]] as const).map((
          [name, span],
        ) => (
          <button
            type="button"
            key={name}
            class={viewName.value === name ? "active" : ""}
            onClick={() => setView(name, span)}
          >
            {name}
          </button>
        ))}
        <span class="legend">
          <i class="swatch copy" /> copy <i class="swatch idle" /> idle{" "}
          {Object.entries(PALETTE).filter(([op]) => op !== "benchmark" && op !== "zeros").map((
            [op, colour],
          ) => (
            <span key={op} class="legend-op">
              <i class="swatch" ref={(el) => el?.style.setProperty("background", colour)} /> {op}
            </span>
          ))}
        </span>
      </div>
      <div class="stream-canvas">
        <canvas
          ref={canvasRef}
          id="task-stream"
          onMouseMove={onDrag}
          onMouseDown={onDown}
          onMouseUp={() => (drag.current = null)}
          onMouseLeave={() => {
            drag.current = null;
            hover.value = null;
          }}
          onWheel={onWheel}
        />
        {h ? <HoverCard hover={h} /> : null}
        <noscript>The task stream needs JavaScript; the timings table works without it.</noscript>
      </div>
    </section>
  );
}

function HoverCard({ hover }: { hover: Hover }): VNode {
  const { span, row } = hover;
  const e = span.event;
  const shape = (e as { shape?: unknown } | undefined)?.shape;
  const device = e?.gpuStart !== undefined && e.gpuEnd !== undefined
    ? formatMs((e.gpuEnd - e.gpuStart) / 1e6)
    : "not measured";
  return (
    <div
      class="hover-card"
      id="hover-card"
      ref={(el) => {
        el?.style.setProperty("left", `${Math.min(hover.x + 12, 9999)}px`);
        el?.style.setProperty("top", `${hover.y + 12}px`);
      }}
    >
      <div class="hover-title">
        {span.op}
        {span.count > 1 ? ` ×${span.count} (folded)` : ""}
        {e?.label ? ` – ${e.label}` : ""}
      </div>
      <div>{row.key}</div>
      {Array.isArray(shape) ? <div>shape [{shape.join(", ")}]</div> : null}
      {span.bytes > 0 ? <div>bytes {formatBytes(span.bytes)}</div> : null}
      {span.flops > 0 ? <div>{(span.flops / 1e9).toFixed(3)} GFLOP</div> : null}
      <div>
        wall {formatMs(span.count > 1 ? span.busy : span.end - span.start)}
        {span.count > 1 ? ` busy over ${formatMs(span.end - span.start)}` : ""}
      </div>
      {span.count === 1 ? <div>device {device}</div> : null}
      {e ? <div>queued {formatMs(e.start - e.queued)} before it started</div> : null}
      {e?.error ? <div class="hover-error">error: {e.error}</div> : null}
    </div>
  );
}

/** The time range [t0, t1] (server ms) the view shows now. */
function range(v: View): [number, number] {
  const now = serverNow();
  if (v.span === Infinity) {
    const first = Number.isFinite(store.first) ? store.first : now - 1000;
    const last = v.follow ? Math.max(store.last, now) : v.end;
    return [first, Math.max(last, first + 1)];
  }
  const end = v.follow ? now : v.end;
  return [end - v.span, end];
}

function paint(canvas: HTMLCanvasElement, ctx: CanvasRenderingContext2D, v: View): void {
  const rows = store.rows();
  const width = canvas.parentElement!.clientWidth;
  const height = rows.length * ROW_H + AXIS_H;
  const dpr = globalThis.devicePixelRatio || 1;
  if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    canvas.style.setProperty("width", `${width}px`);
    canvas.style.setProperty("height", `${height}px`);
  }
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = "#eef0f3";
  ctx.fillRect(0, 0, width, height);
  const [t0, t1] = range(v);
  const plot = Math.max(1, width - GUTTER);
  const scale = plot / (t1 - t0);
  const columns = new Float32Array(Math.ceil(plot));
  const columnColour: string[] = new Array(columns.length);
  let drawn = 0;
  let busyRows = 0;
  ctx.font = "12px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  rows.forEach((row, r) => {
    const y = r * ROW_H + PAD;
    const h = ROW_H - 2 * PAD;
    ctx.fillStyle = "#333";
    ctx.fillText(row.key, 6, y + h / 2, GUTTER - 10);
    ctx.fillStyle = IDLE;
    ctx.fillRect(GUTTER, y, plot, h);
    columns.fill(0);
    let runColour = "";
    let runX0 = 0;
    let runX1 = -1;
    const flush = () => {
      if (runX1 > runX0) {
        ctx.fillStyle = runColour;
        ctx.fillRect(GUTTER + runX0, y, runX1 - runX0, h);
      }
      runX1 = -1;
    };
    const benchmarks = row.lane === "benchmark";
    store.visible(row, t0, t1, (s) => {
      drawn++;
      const x0 = Math.max(0, (s.start - t0) * scale);
      const x1 = Math.min(plot, (s.end - t0) * scale);
      // Backward ops (labelled so by autograd) get a colour of their own.
      const op = s.event?.label === "backward" ? `${s.op} backward` : s.op;
      const colour = s.event?.error ? "#000000" : colourOf(op, row.lane);
      if (benchmarks) {
        ctx.fillStyle = colour;
        ctx.fillRect(GUTTER + x0, y, Math.max(1, x1 - x0), h);
        ctx.strokeStyle = "#8a96a3";
        ctx.strokeRect(GUTTER + x0 + 0.5, y + 0.5, Math.max(1, x1 - x0) - 1, h - 1);
        if (x1 - x0 > 30 && s.event?.label) {
          // Clipped, not squeezed: a label wider than its block is cut at the block's end.
          ctx.save();
          ctx.beginPath();
          ctx.rect(GUTTER + x0 + 2, y, x1 - x0 - 4, h);
          ctx.clip();
          ctx.fillStyle = "#223";
          ctx.fillText(s.event.label, GUTTER + x0 + 4, y + h / 2);
          ctx.restore();
        }
      } else if (x1 - x0 >= 1) {
        if (colour === runColour && x0 <= runX1 + 0.5) runX1 = Math.max(runX1, x1);
        else {
          flush();
          runColour = colour;
          runX0 = x0;
          runX1 = x1;
        }
      } else {
        const c = Math.min(columns.length - 1, Math.floor(x0));
        columns[c] += Math.max(x1 - x0, 0.2);
        columnColour[c] = colour;
      }
    });
    flush();
    for (let c = 0; c < columns.length; c++) {
      if (columns[c] === 0) continue;
      ctx.globalAlpha = Math.min(1, 0.35 + columns[c]);
      ctx.fillStyle = columnColour[c];
      ctx.fillRect(GUTTER + c, y, 1, h);
    }
    ctx.globalAlpha = 1;
    if (row.spans.length > 0) busyRows++;
  });
  // The time axis, in seconds of the server's clock.
  const axisY = rows.length * ROW_H;
  const step = niceStep((t1 - t0) / Math.max(2, plot / 90));
  ctx.fillStyle = "#555";
  ctx.strokeStyle = "#bbb";
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    const x = GUTTER + (t - t0) * scale;
    ctx.beginPath();
    ctx.moveTo(x + 0.5, 0);
    ctx.lineTo(x + 0.5, axisY + 4);
    ctx.stroke();
    ctx.fillText(`${(t / 1000).toFixed(step < 1000 ? 2 : 0)} s`, x + 3, axisY + AXIS_H / 2);
  }
  canvas.dataset.rows = String(busyRows);
  canvas.dataset.drawn = String(drawn);
  canvas.dataset.events = String(store.events);
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}
