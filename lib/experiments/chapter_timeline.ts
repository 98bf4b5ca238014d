/**
 * The chapter's two sections, "GPU1 & GPU2" and "run on GPU1 and copy to CPU", as a
 * timeline picture drawn from the trace: one panel per timed line, lanes on y, time on x.
 *
 * @module
 */
import type { Device } from "../devices/device.ts";
import type { TraceEvent } from "../engine/engine.ts";
import { captureTrace } from "./capture.ts";
import { runAndCopy } from "./copy_overlap.ts";
import { gpu1Gpu2 } from "./gpu1_gpu2.ts";
import { timelineBars, timelineSpec } from "./plot.ts";
import { describeDevice, fmt, median, type Section } from "./section.ts";

/** Options of {@link chapterTimeline}. */
export interface ChapterTimelineOptions {
  /** Rows and columns of the matrices. */
  size: number;
  /** Products per device and line. */
  iters: number;
  /** Repetitions; the table holds medians, the picture shows the last. */
  repeats: number;
}

/** Runs both sections, and draws the last repetition's trace, one panel per timed line. */
export async function chapterTimeline(
  devices: readonly Device[],
  options: ChapterTimelineOptions,
): Promise<Section> {
  const { size, iters, repeats } = options;
  const lines: Record<string, number[]> = {};
  let events: TraceEvent[] = [];
  for (let r = 0; r < repeats; r++) {
    const captured = await captureTrace(async () => {
      const a = await gpu1Gpu2(devices, { size, iters, print: null });
      const b = await runAndCopy(devices[0], { size, iters, print: null });
      return { a, b };
    });
    const { a, b } = captured.result;
    const record = (label: string, s: number) => (lines[label] ??= []).push(s * 1000);
    record("GPU1 time", a.gpu1);
    record("GPU2 time", a.gpu2);
    record("GPU1 & GPU2", a.both);
    record("Run on GPU1", b.run);
    record("Copy to CPU", b.copy);
    record("Run on GPU1 and copy to CPU", b.both);
    events = captured.events;
  }
  const spans = events.filter((e) => e.op === "benchmark");
  const bars = spans.flatMap((span) =>
    timelineBars(
      events.filter((e) => e.op !== "benchmark" && e.queued >= span.start && e.queued <= span.end),
      { origin: span.start, panel: span.label },
    )
  );
  const m = (label: string) => median(lines[label]);
  const gpuSum = m("GPU1 time") + m("GPU2 time");
  const both = m("GPU1 & GPU2");
  const runCopy = m("Run on GPU1") + m("Copy to CPU");
  const runAndCopyMs = m("Run on GPU1 and copy to CPU");
  return {
    title: "5. The chapter's two sections as a timeline",
    question: "What do the chapter's two experiments look like from the trace?",
    setup: [
      ...[...new Set(devices.slice(0, 2))].map(describeDevice),
      `${iters} products of ${size}x${size} per device and line (the chapter: 50 of ` +
      `4000x4000); ${repeats} repetitions; medians; the picture is the last repetition, ` +
      "each panel starting at its benchmark block",
    ],
    tables: [{
      columns: ["line", "ms"],
      rows: Object.keys(lines).map((label) => [label, m(label)]),
    }],
    plots: [{
      file: "chapter_timeline.svg",
      title: "The chapter's two sections, from the trace",
      spec: timelineSpec(bars, {
        title: `The chapter's two sections: ${iters} products of ${size}x${size}`,
        rowHeight: 26,
      }),
    }],
    reading: [
      `GPU1 & GPU2 took ${fmt(both)} ms against ${fmt(gpuSum)} ms for the two devices one ` +
      `after the other (${fmt(gpuSum / both)}x; 2x is perfect): in the picture the two ` +
      "devices' compute lanes run side by side.",
      `Run on GPU1 and copy to CPU took ${fmt(runAndCopyMs)} ms against ${fmt(runCopy)} ms ` +
      `for running, then copying (${fmt(runCopy / runAndCopyMs)}x): the non-blocking copies ` +
      "ride along with the products. Without them each blocking copy waits for its own " +
      'completion, about 11.5 ms each: the "Copy to CPU" panel.',
    ],
  };
}
