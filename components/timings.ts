/**
 * The chapter's timings table as data: its sections, their lines, and the speedup of
 * running both parts at once against running them one after the other.
 *
 * @module
 */
import type { Experiment } from "./protocol.ts";

/** One section of the table: two parts timed alone and both at once. */
export interface TimingSection {
  experiment: Experiment;
  title: string;
  /** The labels of the two parts and of the combined line, as the Benchmark prints them. */
  parts: readonly [string, string];
  combined: string;
}

/** The sections, in the chapter's order. */
export const SECTIONS: readonly TimingSection[] = [
  {
    experiment: "gpu1-gpu2",
    title: "Parallel computation on GPUs",
    parts: ["GPU1 time", "GPU2 time"],
    combined: "GPU1 & GPU2",
  },
  {
    experiment: "run-and-copy",
    title: "Parallel computation and communication",
    parts: ["Run on GPU1", "Copy to CPU"],
    combined: "Run on GPU1 and copy to CPU",
  },
  {
    experiment: "copy-heavy",
    title: "Copy-heavy stream (produce + copyTo)",
    parts: ["Run (copy-heavy stream)", "Copy to CPU (copy-heavy stream)"],
    combined: "Run and copy to CPU (copy-heavy stream)",
  },
];

/** A line of the table. */
export interface TimingRow {
  label: string;
  seconds?: number;
  /** Sum of the parts over the combined time, on the combined line. */
  speedup?: number;
}

/** The labels of an experiment's lines. */
export function labelsOf(experiment: Experiment): string[] {
  const s = SECTIONS.find((x) => x.experiment === experiment);
  return s ? [...s.parts, s.combined] : [];
}

/**
 * The lines of `section` from the latest seconds by label, with the speedup on the
 * combined line once all three are known.
 *
 * @example
 * ```ts
 * import { SECTIONS, timingRows } from "./timings.ts";
 * const rows = timingRows(SECTIONS[0], { "GPU1 time": 1, "GPU2 time": 1, "GPU1 & GPU2": 1.25 });
 * console.log(rows[2].speedup); // 1.6
 * ```
 */
export function timingRows(
  section: TimingSection,
  seconds: Readonly<Record<string, number>>,
): TimingRow[] {
  const [a, b] = section.parts.map((l) => seconds[l]);
  const both = seconds[section.combined];
  const known = a !== undefined && b !== undefined && both !== undefined && both > 0;
  return [
    { label: section.parts[0], seconds: a },
    { label: section.parts[1], seconds: b },
    {
      label: section.combined,
      seconds: both,
      speedup: known ? (a + b) / both : undefined,
    },
  ];
}
