/**
 * One experiment's write-up as plain data: the question, the setup, a table of medians, the
 * plots beside it and a reading of the numbers; and its Markdown.
 *
 * @module
 */
import type { Device } from "../devices/device.ts";

/** A table: column headers, then rows of cells (numbers are formatted when written). */
export interface Table {
  columns: string[];
  rows: (string | number)[][];
}

/** A plot: a Vega-Lite spec and the SVG file it is written to, beside the Markdown. */
export interface Plot {
  /** File name, for example "small_ops.svg". */
  file: string;
  /** Alt text. */
  title: string;
  /** A Vega-Lite specification (top-level). */
  spec: Record<string, unknown>;
}

/** One experiment's results. */
export interface Section {
  title: string;
  question: string;
  /** Lines of the setup: devices, threads, sizes, repetitions. */
  setup: string[];
  tables: Table[];
  plots: Plot[];
  /** Paragraphs reading the numbers. */
  reading: string[];
  /** Other files written beside the Markdown and linked from it (a Chrome trace). */
  attachments?: { file: string; title: string; content: string }[];
}

/** The median of `xs` (NaN for none). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Formats a number with about four significant digits (integers stay whole). */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (Number.isInteger(x)) return String(x);
  const a = Math.abs(x);
  return a >= 100 ? x.toFixed(1) : a >= 10 ? x.toFixed(2) : a >= 1 ? x.toFixed(3) : x.toFixed(4);
}

/** The table as Markdown. */
export function markdownTable(t: Table): string {
  const cell = (c: string | number) => typeof c === "number" ? fmt(c) : c;
  return [
    `| ${t.columns.join(" | ")} |`,
    `| ${t.columns.map(() => "---").join(" | ")} |`,
    ...t.rows.map((r) => `| ${r.map(cell).join(" | ")} |`),
  ].join("\n");
}

/** The section as Markdown, at heading level 2. */
export function sectionMarkdown(s: Section): string {
  return [
    `## ${s.title}`,
    `**Question.** ${s.question}`,
    `**Setup.**\n\n${s.setup.map((l) => `- ${l}`).join("\n")}`,
    ...s.tables.map(markdownTable),
    ...s.plots.map((p) => `![${p.title}](${p.file})`),
    ...(s.attachments ?? []).map((a) => `[${a.title}](${a.file})`),
    `**Reading.**\n\n${s.reading.join("\n\n")}`,
  ].join("\n\n");
}

/** One line describing a device: adapter, software or hardware, threads. */
export function describeDevice(d: Device): string {
  const threads = d.info.threads
    ? `, ${d.info.threads} thread${d.info.threads === 1 ? "" : "s"}`
    : "";
  return `${d.name}: ${d.info.adapter} (${d.info.software ? "software" : "hardware"}${threads})`;
}
