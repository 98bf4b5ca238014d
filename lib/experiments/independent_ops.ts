/**
 * Exercise 1, "independent ops": the products in `run` do not depend on each other. Does
 * autopar run them in parallel? Read off the trace, on one device and spread over two.
 *
 * @module
 */
import type { Device } from "../devices/device.ts";
import type { TraceEvent } from "../engine/engine.ts";
import { synchronize } from "../engine/sync.ts";
import { rand } from "../tensor/creation.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { bothBusyMs, busyMs, captureTrace, maxOpen } from "./capture.ts";
import { type TimelineBar, timelineSpec } from "./plot.ts";
import { describeDevice, fmt, median, type Section } from "./section.ts";

/** Options of {@link independentOps}. */
export interface IndependentOpsOptions {
  /** Rows and columns of the matrices. */
  size: number;
  /** Products per `run(x)`; each configuration runs `run` twice. */
  iters: number;
  /** Repetitions; the table holds medians. */
  repeats: number;
}

interface Repetition {
  wall: number;
  issue: number;
  busy: number[];
  both: number;
  maxOpen: number;
  maxInFlight: number;
  events: TraceEvent[];
}

/** What the helpers of {@link independentOps} share: the devices, sizes and `run`. */
interface IndependentRun {
  d0: Device;
  d1: Device;
  size: number;
  iters: number;
  repeats: number;
  /** `iters` independent products `x.mm(x)`. */
  run: (x: Tensor) => Tensor[];
}

/** The median over a configuration's repetitions of one measure. */
type Median = (name: string, f: (r: Repetition) => number) => number;

/**
 * Runs `run(x1); run(x2)` with both matrices on `devices[0]`, then with x2 on `devices[1]`,
 * and reads from the trace when each product was queued, ran, and how the spans overlap.
 */
export async function independentOps(
  devices: readonly Device[],
  options: IndependentOpsOptions,
): Promise<Section> {
  const { size, iters, repeats } = options;
  const [d0, d1 = d0] = devices;
  const run = (x: Tensor) => Array.from({ length: iters }, () => x.mm(x));
  const ctx: IndependentRun = { d0, d1, size, iters, repeats, run };
  const configs = [
    { name: "one device", on: [d0, d0] },
    { name: "two devices", on: [d0, d1] },
  ];
  const results = new Map<string, Repetition[]>();
  const lastEvents: { name: string; events: TraceEvent[] }[] = [];
  for (const c of configs) {
    const reps = await measureConfig(c.on, ctx);
    results.set(c.name, reps);
    lastEvents.push({ name: c.name, events: reps[reps.length - 1].events });
  }
  await synchronize();

  const med: Median = (name, f) => median(results.get(name)!.map(f));
  const rows = configs.map((c) => [
    c.name,
    2 * iters,
    med(c.name, (r) => r.wall),
    med(c.name, (r) => r.issue),
    med(c.name, (r) => r.busy[0]),
    c.on[1] !== c.on[0] ? med(c.name, (r) => r.busy[1]) : 0,
    med(c.name, (r) => r.both),
    med(c.name, (r) => r.maxInFlight),
    med(c.name, (r) => r.maxOpen),
  ]);
  return {
    title: "1. Independent ops (exercise 1)",
    question: "The products in `run` do not depend on each other. Does autopar run them in " +
      "parallel? We read it off the trace, on one device and spread over two.",
    setup: independentSetup(ctx),
    tables: [{ columns: COLUMNS, rows }],
    plots: [{
      file: "independent_ops.svg",
      title: "Independent products: one bar per product, queued to done",
      spec: timelineSpec(productBars(lastEvents), {
        title: `${2 * iters} independent products of ${size}x${size}: trace spans`,
        rowHeight: 9,
        colorTitle: "state",
      }),
    }],
    reading: independentReading(med, ctx),
  };
}

/** The columns of {@link independentOps}'s table. */
const COLUMNS = [
  "configuration",
  "products",
  "wall (ms)",
  "all queued within (ms)",
  "gpu:0 busy (ms)",
  "gpu:1 busy (ms)",
  "both busy (ms)",
  "most in flight at once (queued to done)",
  "most running at once (start to end)",
];

/** Warms up, then measures `repeats` repetitions with x1 and x2 on the devices `on`. */
async function measureConfig(on: readonly Device[], ctx: IndependentRun): Promise<Repetition[]> {
  const { size, repeats, run } = ctx;
  const [x1, x2] = on.map((device, i) => rand([size, size], { device, seed: i + 1 }));
  const warm = [...run(x1), ...run(x2)];
  await synchronize();
  warm.forEach((t) => t.dispose());
  const reps: Repetition[] = [];
  for (let r = 0; r < repeats; r++) reps.push(await measureRepetition(x1, x2, ctx));
  x1.dispose();
  x2.dispose();
  return reps;
}

/** Runs `run(x1); run(x2)` once under a trace capture and reads its products' spans. */
async function measureRepetition(
  x1: Tensor,
  x2: Tensor,
  ctx: IndependentRun,
): Promise<Repetition> {
  const { d0, d1, run } = ctx;
  const t0 = performance.now();
  const { events } = await captureTrace(async () => {
    const ys = [...run(x1), ...run(x2)];
    await synchronize();
    ys.forEach((y) => y.dispose());
  });
  const wall = performance.now() - t0;
  const products = events.filter((e) => e.op === "mm");
  const onDevice = (d: Device) => products.filter((e) => e.device === d.name);
  const distinct = [d0, d1].filter((d, i) => i === 0 || d !== d0);
  return {
    wall,
    issue: Math.max(...products.map((e) => e.queued)) -
      Math.min(...products.map((e) => e.queued)),
    busy: distinct.map((d) => busyMs(onDevice(d))),
    both: distinct.length > 1 ? bothBusyMs(onDevice(d0), onDevice(d1)) : 0,
    maxOpen: maxOpen(products),
    maxInFlight: maxOpen(products.map((e) => ({ start: e.queued, end: e.end }))),
    events: products,
  };
}

/** The picture: a row per product, waiting (queued to start) then running (start to end). */
function productBars(
  lastEvents: readonly { name: string; events: TraceEvent[] }[],
): TimelineBar[] {
  return lastEvents.flatMap(({ name, events }) => {
    const origin = Math.min(...events.map((e) => e.queued));
    return events.flatMap((e, k) => {
      const row = `${e.device} mm #${String(k + 1).padStart(2, "0")}`;
      const bar = { row, op: e.op, panel: name };
      return [
        { ...bar, start: e.queued - origin, end: e.start - origin, color: "queued, waiting" },
        { ...bar, start: e.start - origin, end: e.end - origin, color: `running on ${e.device}` },
      ];
    });
  });
}

/** The setup lines: the devices, the products, the repetitions. */
function independentSetup(ctx: IndependentRun): string[] {
  const { d0, d1, size, iters, repeats } = ctx;
  return [
    ...[...new Set([d0, d1])].map(describeDevice),
    `run(x) = ${iters} products x.mm(x) of ${size}x${size}; each configuration runs ` +
    `run(x1); run(x2) (${2 * iters} products), x1 and x2 on gpu:0 ("one device") or on ` +
    `gpu:0 and ${d1.name} ("two devices")`,
    `${repeats} repetitions after a warm-up; medians. Spans are the engine's trace events ` +
    "(main-thread clock; per-op device times where the adapter has timestamp queries, " +
    "else every op of a batch carries the batch's span)",
  ];
}

/** The reading: queued at once, one at a time on one device, overlapping on two. */
function independentReading(med: Median, ctx: IndependentRun): string[] {
  const { d0, d1, iters } = ctx;
  const one = med("one device", (r) => r.wall);
  const two = med("two devices", (r) => r.wall);
  const speedup = one / two;
  const bothMs = med("two devices", (r) => r.both);
  const openOne = med("one device", (r) => r.maxOpen);
  const inFlightOne = med("one device", (r) => r.maxInFlight);
  const busyOne = med("one device", (r) => r.busy[0]);
  const busyTwo = med("two devices", (r) => r.busy[0]);
  const issueOne = med("one device", (r) => r.issue);
  const twoDistinct = d1 !== d0;
  return [
    `autopar treats them as independent: all ${2 * iters} products were queued within ` +
    `${fmt(issueOne)} ms (no op waits for another) and up to ${fmt(inFlightOne)} were in ` +
    "flight at once on one device. " +
    (openOne <= 1
      ? "But on one device they do not run at the same time: at most one product's span " +
        "is open at any instant. A device has one in-order queue, so its products run one " +
        "after another, and the wall time is about the sum of their compute times."
      : `The trace shows up to ${fmt(openOne)} spans open at once on one device, but that ` +
        "is the batch's span shared by its ops: a device has one in-order queue, so they " +
        "run one after another within it."),
    twoDistinct
      ? `Spread over two devices the spans of gpu:0 and gpu:1 really overlap: both were ` +
        `busy for ${fmt(bothMs)} ms of ${fmt(two)} ms, and the wall time fell from ` +
        `${fmt(one)} ms to ${fmt(two)} ms, a speedup of ${fmt(speedup)}x (2x is the ` +
        "ceiling with two devices)." + (speedup < 1.5
          ? ` Far from 2x: next to gpu:1, gpu:0 was busy ${fmt(busyTwo)} ms for half the ` +
            `products that took it ${fmt(busyOne)} ms alone. The two logical devices are ` +
            "one software adapter on the machine's cores, shared with the main thread, the " +
            "Workers and the OS, so each computes slower while the other runs."
          : " The logical devices share the adapter's cores, one thread each here.")
      : "Only one device was found, so both configurations ran on the same device.",
  ];
}
