/**
 * Exercise 2, "small ops": when each op is small, does parallelism help, even on one
 * device? A sweep of the matrix size, one logical device against two on the same adapter,
 * with batching on (ops issued together go out as one command buffer) and off (one op in
 * flight per device: `configureEngine({ maxOpsInFlight: 1 })`).
 *
 * @module
 */
import type { Device } from "../devices/device.ts";
import { engine } from "../engine/engine.ts";
import { configureEngine } from "../engine/configure.ts";
import { synchronize } from "../engine/sync.ts";
import { rand } from "../tensor/creation.ts";
import { describeDevice, fmt, median, type Section } from "./section.ts";

/** Options of {@link smallOps}. */
export interface SmallOpsOptions {
  /** Matrix sides to sweep, small to large. */
  sizes: number[];
  /** Products per measurement (split evenly over the devices). */
  ops: number;
  /** Repetitions; the table holds medians. */
  repeats: number;
}

/** Milliseconds of `ops` products of `size` spread round-robin over `devices`. */
async function timeProducts(devices: readonly Device[], size: number, ops: number) {
  const xs = devices.map((device, i) => rand([size, size], { device, seed: i + 1 }));
  await synchronize();
  const t0 = performance.now();
  for (let i = 0; i < ops; i++) {
    const x = xs[i % xs.length];
    x.mm(x).dispose();
  }
  await synchronize();
  const ms = performance.now() - t0;
  xs.forEach((x) => x.dispose());
  return ms;
}

/** A point of the speedup plot. */
interface SpeedupPoint {
  size: number;
  speedup: number;
  comparison: string;
}

/** Runs the sweep and returns the section with its table and speedup plot. */
export async function smallOps(
  devices: readonly Device[],
  options: SmallOpsOptions,
): Promise<Section> {
  const { sizes, ops, repeats } = options;
  const [d0, d1 = d0] = devices;
  const defaultInFlight = engine().maxOpsInFlight;
  const { rows, points } = await sweep(devices, options, defaultInFlight);
  return {
    title: "2. Small ops (exercise 2)",
    question: "When each op is small, does parallelism help, even on one device? We sweep the " +
      "matrix size from tiny to large, one logical device against two on the same adapter, " +
      "with batching on and off.",
    setup: [
      ...[...new Set([d0, d1])].map(describeDevice),
      `${ops} independent products x.mm(x) per measurement, round-robin over the devices; ` +
      `sizes ${sizes.join(", ")}`,
      "batching on: the engine's default, ops issued in the same tick go to a device as one " +
      `batch, up to ${defaultInFlight} ops in flight per device; batching off: ` +
      "`configureEngine({ maxOpsInFlight: 1 })`, one op per batch and each waits for the " +
      "previous one's completion on its device",
      `${repeats} repetitions after a warm-up; medians`,
    ],
    tables: [{
      columns: [
        "size",
        "1 device, on (ms)",
        "2 devices, on (ms)",
        "1 device, off (ms)",
        "2 devices, off (ms)",
        "ms per product (1 device, on: wall / products)",
        "speedup 2/1, on",
        "speedup 2/1, off",
        "speedup on/off, 1 device",
      ],
      rows,
    }],
    plots: [{
      file: "small_ops.svg",
      title: "Speedup against matrix size",
      spec: speedupSpec(points, ops),
    }],
    reading: smallOpsReading(rows, ops),
  };
}

/** Measures every size with one device and two, batching on and off: table rows and points. */
async function sweep(
  devices: readonly Device[],
  options: SmallOpsOptions,
  defaultInFlight: number,
): Promise<{ rows: (string | number)[][]; points: SpeedupPoint[] }> {
  const { sizes, ops, repeats } = options;
  const [d0, d1 = d0] = devices;
  const one = [d0];
  const two = d1 === d0 ? [d0] : [d0, d1];
  const measure = async (size: number, devs: Device[], batching: boolean) => {
    configureEngine({ maxOpsInFlight: batching ? defaultInFlight : 1 });
    try {
      await timeProducts(devs, size, Math.min(ops, 2 * devs.length)); // warm-up
      const ms: number[] = [];
      for (let r = 0; r < repeats; r++) ms.push(await timeProducts(devs, size, ops));
      return median(ms);
    } finally {
      configureEngine({ maxOpsInFlight: defaultInFlight });
    }
  };
  const rows: (string | number)[][] = [];
  const points: SpeedupPoint[] = [];
  for (const size of sizes) {
    const oneOn = await measure(size, one, true);
    const twoOn = await measure(size, two, true);
    const oneOff = await measure(size, one, false);
    const twoOff = await measure(size, two, false);
    const perOp = oneOn / ops;
    rows.push([
      size,
      oneOn,
      twoOn,
      oneOff,
      twoOff,
      perOp,
      oneOn / twoOn,
      oneOff / twoOff,
      oneOff / oneOn,
    ]);
    points.push(
      { size, speedup: oneOn / twoOn, comparison: "two devices over one, batching on" },
      { size, speedup: oneOff / twoOff, comparison: "two devices over one, batching off" },
      { size, speedup: oneOff / oneOn, comparison: "batching on over off, one device" },
    );
  }
  return { rows, points };
}

/** The Vega-Lite spec of the speedups against the matrix size, both axes log 2. */
function speedupSpec(points: SpeedupPoint[], ops: number): Record<string, unknown> {
  return {
    title: `Speedup against matrix size (${ops} products)`,
    width: 520,
    height: 300,
    data: { values: points },
    layer: [
      {
        mark: { type: "line", point: true },
        encoding: {
          x: { field: "size", type: "quantitative", scale: { type: "log", base: 2 } },
          y: { field: "speedup", type: "quantitative", scale: { type: "log", base: 2 } },
          color: {
            field: "comparison",
            type: "nominal",
            legend: { orient: "bottom", columns: 1, labelLimit: 600 },
          },
        },
      },
      { mark: { type: "rule", strokeDash: [4, 4] }, encoding: { y: { datum: 1 } } },
    ],
  };
}

/** The reading: tiny ops gain from batching, large ones from the second device. */
function smallOpsReading(rows: (string | number)[][], ops: number): string[] {
  const first = rows[0];
  const best = rows.reduce((a, r) => ((r[6] as number) > (a[6] as number) ? r : a));
  const last = rows[rows.length - 1];
  const col = (r: (string | number)[], i: number) => r[i] as number;
  return [
    `Tiny ops (size ${first[0]}): ${ops} products take ${fmt(col(first, 1))} ms on one ` +
    "device with batching, about one completion wait (Deno resolves mapAsync and " +
    "onSubmittedWorkDone no sooner than about 11.5 ms) plus dispatch. A second device " +
    (col(first, 6) < 1.2
      ? `does not help (${fmt(col(first, 6))}x): each device still pays the floor once.`
      : `gives ${fmt(col(first, 6))}x.`) +
    ` What helps on one device is batching: ${fmt(col(first, 8))}x over one op per ` +
    `batch, which pays the floor once per op (${fmt(col(first, 3) / ops)} ms per op).`,
    `Without batching, two devices give ${fmt(col(first, 7))}x on tiny ops: not because ` +
    "they compute at once, but because they wait for their completions at once. That is " +
    "latency hiding, and batching on one device does it better.",
    `Large ops (size ${last[0]}): ${fmt(col(last, 5))} ms per product on one device; two ` +
    `devices give ${fmt(col(last, 6))}x with batching and ${fmt(col(last, 7))}x without, ` +
    `and batching is worth ${fmt(col(last, 8))}x. The best two-device speedup with ` +
    `batching was ${fmt(best[6] as number)}x, at size ${best[0]}; the ratios jump from ` +
    "size to size more than the work does, which is this noisy 2-core machine, not a " +
    "trend. The ceiling is 2x: the two logical " +
    "devices are one adapter split over the machine's cores (one llvmpipe thread each on a " +
    "software adapter), and whatever else runs on those cores (the main thread's engine, " +
    "the OS) eats into it.",
  ];
}
