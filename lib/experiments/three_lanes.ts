/**
 * Exercise 3, "host, device and communication at once": gpu:0 computes, the results stream
 * to the host (`produce` + `copyTo(cpu())`) and the host computes on them, so the compute,
 * copy and host lanes are busy together. Utilisation and overlap come from `summarize`.
 *
 * @module
 */
import { lastValueFrom, mergeMap, toArray } from "npm:rxjs@7.8.2";
import { cpu, type Device } from "../devices/device.ts";
import type { TraceEvent } from "../engine/engine.ts";
import { synchronize } from "../engine/sync.ts";
import { copyTo } from "../streams/copy_to.ts";
import { produce } from "../streams/produce.ts";
import { rand } from "../tensor/creation.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { exportChromeTrace } from "../trace/chrome_trace.ts";
import { summarize, type TraceSummary } from "../trace/summarize.ts";
import { bothBusyMs, captureTrace } from "./capture.ts";
import { laneOf, timelineBars, timelineSpec } from "./plot.ts";
import { describeDevice, fmt, median, type Section } from "./section.ts";

/** Options of {@link threeLanes}. */
export interface ThreeLanesOptions {
  /** Rows and columns of the device's products. */
  size: number;
  /** Items streamed. */
  items: number;
  /** Columns of the host's matrix (the host's work per item is size * size * hostCols). */
  hostCols: number;
  /** Repetitions; the table holds medians. */
  repeats: number;
}

/** One repetition: both wall times, the pipeline's trace summary, all three lanes busy. */
interface LanesRun {
  wall: number;
  stagesWall: number;
  s: TraceSummary;
  all3: number;
}

/** The two ways of doing the same work: streamed through the lanes, or stage by stage. */
interface LanesWork {
  pipeline: () => Promise<number[]>;
  stages: () => Promise<number[]>;
}

/** The medians the reading quotes. */
interface LanesFigures {
  wall: number;
  makespan: number;
  stagesWall: number;
  all3: number;
  hidden: number;
  efficiency: number;
  computeUtil: number;
  copyUtil: number;
  hostUtil: number;
}

/** Runs the pipeline, and the same three stages one after another, and returns the section. */
export async function threeLanes(device: Device, options: ThreeLanesOptions): Promise<Section> {
  const { size, items, hostCols, repeats } = options;
  const x = rand([size, size], { device, seed: 1 });
  const w = rand([size, hostCols], { device: cpu(), seed: 2 });
  const work = lanesWork(device, x, w, items);
  await work.pipeline(); // warm-up
  await work.stages();

  const { runs, last } = await measureLanes(device, work, repeats);
  x.dispose();
  w.dispose();
  await synchronize();

  const laneRows = laneTable(runs);
  const med = (f: (r: LanesRun) => number) => median(runs.map(f));
  const util = (name: string) => (laneRows.find((r) => r[0] === name)?.[3] as number) ?? 0;
  const figures: LanesFigures = {
    makespan: med((r) => r.s.makespan),
    wall: med((r) => r.wall),
    stagesWall: med((r) => r.stagesWall),
    hidden: med((r) => r.s.copy.hiddenFraction),
    all3: med((r) => r.all3),
    efficiency: med((r) => r.s.efficiency),
    hostUtil: util("cpu host"),
    computeUtil: util(`${device.name} compute`),
    copyUtil: util(`${device.name} copy`),
  };
  const { wall, makespan, stagesWall, all3, hidden, efficiency } = figures;
  return {
    title: "3. Host, device and communication at once (exercise 3)",
    question: "In a pipeline where gpu:0 computes, the results stream to the host and the host " +
      "computes on them, are the compute, copy and host lanes busy at the same time?",
    setup: lanesSetup(device, options),
    tables: [
      { columns: ["lane", "ops", "busy (ms)", "utilisation"], rows: laneRows },
      { columns: SUMMARY_COLUMNS, rows: [[wall, makespan, stagesWall, all3, hidden, efficiency]] },
    ],
    plots: [{
      file: "three_lanes.svg",
      title: "Timeline of the pipeline: compute, copy and host lanes",
      spec: timelineSpec(timelineBars(last), {
        title: `gpu computes, copies stream to the host, the host computes (${items} items)`,
        rowHeight: 40,
      }),
    }],
    attachments: [{
      file: "three_lanes.trace.json",
      title: "The same run as a Chrome trace (open in chrome://tracing or Perfetto)",
      content: JSON.stringify(exportChromeTrace(last)),
    }],
    reading: lanesReading(figures),
  };
}

/** The columns of {@link threeLanes}'s second table, the pipeline's summary. */
const SUMMARY_COLUMNS = [
  "pipeline wall (ms)",
  "trace makespan (ms)",
  "stages one after another (ms)",
  "all three lanes busy (ms)",
  "copy hidden under compute",
  "efficiency (ideal / makespan)",
];

/** The pipeline (produce, copyTo, the host's work) and the same work as three stages. */
function lanesWork(device: Device, x: Tensor, w: Tensor, items: number): LanesWork {
  const onHost = async (yc: Tensor) => {
    const z = yc.mm(w).relu().sum();
    yc.dispose();
    const v = await z.data();
    z.dispose();
    return v[0];
  };
  const pipeline = () =>
    lastValueFrom(
      produce(items, () => x.mm(x), { inFlight: 2 }).pipe(
        copyTo(cpu(), { concurrency: 2 }),
        mergeMap(onHost, 2),
        toArray(),
      ),
    );
  const stages = async () => {
    const ys = Array.from({ length: items }, () => x.mm(x));
    await synchronize(device);
    const ycs = ys.map((y) => y.to(cpu(), { nonBlocking: true }));
    ys.forEach((y) => y.dispose());
    await synchronize();
    return await Promise.all(ycs.map(onHost));
  };
  return { pipeline, stages };
}

/** Times `repeats` pipelines (traced) and stage runs; returns them and the last trace. */
async function measureLanes(
  device: Device,
  work: LanesWork,
  repeats: number,
): Promise<{ runs: LanesRun[]; last: TraceEvent[] }> {
  const runs: LanesRun[] = [];
  let last: TraceEvent[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    const { events } = await captureTrace(work.pipeline);
    const wall = performance.now() - t0;
    const t1 = performance.now();
    await work.stages();
    const stagesWall = performance.now() - t1;
    const lane = (name: string) => events.filter((e) => laneOf(e) === name);
    runs.push({
      wall,
      stagesWall,
      s: summarize(events),
      all3: bothBusyMs(
        lane(`${device.name} compute`),
        lane(`${device.name} copy`),
        lane("cpu host"),
      ),
    });
    last = events;
  }
  return { runs, last };
}

/** A row per lane seen in any run: its name and the medians of ops, busy ms, utilisation. */
function laneTable(runs: readonly LanesRun[]): (string | number)[][] {
  const laneNames = [
    ...new Set(runs.flatMap((r) => r.s.lanes.map((l) => `${l.device} ${l.lane}`))),
  ];
  return laneNames.map((name) => {
    const per = runs.map((r) => r.s.lanes.find((l) => `${l.device} ${l.lane}` === name));
    const m = (f: (l: NonNullable<(typeof per)[number]>) => number) =>
      median(per.map((l) => (l ? f(l) : 0)));
    return [name, m((l) => l.ops), m((l) => l.busy), m((l) => l.utilisation)];
  });
}

/** The setup lines: the devices, the pipeline, the stages it is compared with. */
function lanesSetup(device: Device, options: ThreeLanesOptions): string[] {
  const { size, items, hostCols, repeats } = options;
  return [
    describeDevice(device),
    describeDevice(cpu()) + ": host ops run the kernels' CPU twins on the main thread",
    `${items} items: y = x.mm(x) of ${size}x${size} on ${device.name} ` +
    "(`produce(n, make, { inFlight: 2 })`), streamed by `copyTo(cpu(), { concurrency: 2 })`, " +
    `then on the host y.mm(w).relu().sum() with w ${size}x${hostCols} and data()`,
    `against the same three stages one after another (all products, then all copies, then ` +
    `the host's work); ${repeats} repetitions after a warm-up; medians; lanes from ` +
    "`summarize(events)` of lib/trace/summarize.ts",
  ];
}

/** The reading: how long all three lanes were busy at once, and why not longer. */
function lanesReading(figures: LanesFigures): string[] {
  const { wall, makespan, stagesWall, all3, hidden, efficiency } = figures;
  const { computeUtil, copyUtil, hostUtil } = figures;
  return [
    `All three lanes are busy at once for ${fmt(all3)} ms of a ${fmt(makespan)} ms ` +
    `makespan. Utilisation: compute ${fmt(computeUtil * 100)}%, copy ` +
    `${fmt(copyUtil * 100)}%, host ${fmt(hostUtil * 100)}%; ${fmt(hidden * 100)}% of the ` +
    `copy time is hidden under compute. The pipeline took ${fmt(wall)} ms against ` +
    `${fmt(stagesWall)} ms for the stages one after another ` +
    `(${fmt(stagesWall / wall)}x).`,
    "Why not more: a copy's span is mostly the completion floor (a readback is reported " +
    "no sooner than ~11.5 ms after it is submitted), not bytes moving, so the copy lane " +
    "looks busy while little happens; a device has one in-order queue, so a copy submitted " +
    "behind a product waits for it; and the host's work runs on the main thread, which " +
    "also runs the engine and receives the Workers' replies, on the same cores as the " +
    "software adapter, so the host lane and the device compete for the CPU here. " +
    `The trace's efficiency (the busiest lane or the critical path over the makespan) ` +
    `is ${fmt(efficiency)}.`,
  ];
}
