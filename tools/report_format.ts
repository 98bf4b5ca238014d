/**
 * The pieces docs/performance.md is made of: Markdown tables, numbers, dates and the line that
 * says which run a table comes from. Pure functions of the JSON, so the report is the same every
 * time it is generated from the same files.
 *
 * @module
 */

/** Column alignment of {@link renderTable}. */
export type Align = "left" | "right";

/** Options of {@link renderTable}. */
export interface RenderTableOptions {
  /**
   * The alignment of each column; missing columns are left-aligned.
   * @default {[]}
   */
  align?: Align[];
}

/**
 * Renders a Markdown table, each column padded to its widest cell (as `deno fmt` pads it).
 * Throws a RangeError when a row has another number of cells than the header.
 *
 * @example
 * ```ts
 * import { renderTable } from "./report_format.ts";
 *
 * console.log(renderTable(["size", "GFLOP/s"], [["256", "5.21"]]));
 * // | size | GFLOP/s |
 * // | ---- | ------- |
 * // | 256  | 5.21    |
 * ```
 */
export function renderTable(
  header: string[],
  rows: string[][],
  options: RenderTableOptions = {},
): string {
  for (const row of rows) {
    if (row.length !== header.length) {
      throw new RangeError(
        `Cannot render the table row ${
          JSON.stringify(row)
        }: it has ${row.length} cells, the header ${header.length}`,
      );
    }
  }
  const align = options.align ?? [];
  // A pipe inside a cell (even in a code span) would end the cell.
  header = header.map(escapePipes);
  rows = rows.map((r) => r.map(escapePipes));
  const widths = header.map((h, i) => Math.max(3, width(h), ...rows.map((r) => width(r[i]))));
  const pad = (cell: string, i: number) => {
    const fill = " ".repeat(widths[i] - width(cell));
    return align[i] === "right" ? fill + cell : cell + fill;
  };
  const line = (cells: string[]) => `| ${cells.map(pad).join(" | ")} |`;
  const rule = `| ${
    widths.map((w, i) => align[i] === "right" ? "-".repeat(w - 1) + ":" : "-".repeat(w)).join(
      " | ",
    )
  } |`;
  return [line(header), rule, ...rows.map(line)].join("\n");
}

function escapePipes(cell: string): string {
  return cell.replace(/(?<!\\)\|/g, "\\|");
}

/** The number of characters a cell takes on screen (code points, not UTF-16 units). */
function width(s: string): number {
  return [...s].length;
}

/** Groups the digits of an integer string by thousands: `"4623"` -> `"4,623"`. */
function group(digits: string): string {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/**
 * Formats a measured number with three significant digits, thousands grouped
 * (`4623.4` -> `"4,623"`, `60.676` -> `"60.7"`, `0.56046` -> `"0.560"`).
 * Throws a TypeError for a value that is not a finite number.
 *
 * @example
 * ```ts
 * import { num } from "./report_format.ts";
 *
 * console.log(num(4623.48), num(60.676), num(0.56046)); // 4,623 60.7 0.560
 * ```
 */
export function num(x: unknown): string {
  const v = finite(x);
  if (Math.abs(v) >= 100) return (v < 0 ? "-" : "") + group(String(Math.round(Math.abs(v))));
  return v.toPrecision(3);
}

/**
 * Formats a number with `digits` decimals, thousands grouped. Throws a TypeError for a value
 * that is not a finite number.
 *
 * @example
 * ```ts
 * import { fixed } from "./report_format.ts";
 *
 * console.log(fixed(0.53686, 3), fixed(1234.5, 1)); // 0.537 1,234.5
 * ```
 */
export function fixed(x: unknown, digits: number): string {
  const s = finite(x).toFixed(digits);
  const [int, frac] = s.split(".");
  const sign = int.startsWith("-") ? "-" : "";
  return sign + group(int.replace("-", "")) + (frac === undefined ? "" : `.${frac}`);
}

/**
 * Formats a fraction as a percentage with `digits` decimals (`0.8391` -> `"84%"`).
 *
 * @example
 * ```ts
 * import { percent } from "./report_format.ts";
 *
 * console.log(percent(0.8391), percent(0.951, 1)); // 84% 95.1%
 * ```
 */
export function percent(x: unknown, digits = 0): string {
  return `${fixed(finite(x) * 100, digits)}%`;
}

/**
 * Formats an ISO date as `2026-12-01 11:36 UTC`; a RangeError for anything else.
 *
 * @example
 * ```ts
 * import { utc } from "./report_format.ts";
 *
 * console.log(utc("2026-12-01T11:36:37.164Z")); // 2026-12-01 11:36 UTC
 * ```
 */
export function utc(iso: unknown): string {
  const m = typeof iso === "string" ? /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})/.exec(iso) : null;
  if (m === null) {
    throw new RangeError(`Cannot format the date ${JSON.stringify(iso)}: not ISO 8601`);
  }
  return `${m[1]} ${m[2]} UTC`;
}

/** Where a table's figures come from: its run and the command that produces it. */
export interface RunInfo {
  /** The command that writes the JSON. */
  command: string;
  /** The JSON file, relative to the repository root. */
  file: string;
  /** The run's ISO date, when the JSON has one. */
  date?: unknown;
  /** The adapter (or adapters) of the run, when the JSON names it. */
  adapter?: unknown;
  /** The machine's cores, when the JSON has them. */
  cores?: unknown;
  /** Other facts about the run (`"1 llvmpipe thread per device"`). */
  notes?: string[];
}

/**
 * The line under a section's heading: the run's date, adapter and cores where the JSON has
 * them, and the command that produces the JSON.
 *
 * @example
 * ```ts
 * import { runLine } from "./report_format.ts";
 *
 * console.log(runLine({
 *   command: "deno run -A bench/matmul.ts",
 *   file: "bench/results/matmul.json",
 *   date: "2026-12-01T11:37:34.106Z",
 * }));
 * ```
 */
export function runLine(run: RunInfo): string {
  const facts: string[] = [];
  if (run.date !== undefined) facts.push(`run of ${utc(run.date)}`);
  if (run.adapter !== undefined) facts.push(`adapter ${adapterText(run.adapter)}`);
  if (run.cores !== undefined) facts.push(`${finite(run.cores)} cores`);
  facts.push(...(run.notes ?? []));
  const said = facts.length > 0 ? `${capitalise(facts.join("; "))}. ` : "";
  return `${said}From [${run.file}](../${run.file}), written by \`${run.command}\`.`;
}

function adapterText(adapter: unknown): string {
  if (typeof adapter === "string") return `"${adapter}"`;
  if (adapter !== null && typeof adapter === "object") {
    const names = Object.entries(adapter as Record<string, unknown>);
    const distinct = new Set(names.map(([, v]) => v));
    if (distinct.size === 1) return `"${names[0][1]}"`;
    return names.map(([k, v]) => `"${v}" (${k})`).join(", ");
  }
  throw new TypeError(`Cannot name the adapter ${JSON.stringify(adapter)}: not a string or record`);
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** The value, when it is a finite number; a TypeError naming it otherwise. */
export function finite(x: unknown): number {
  if (typeof x !== "number" || !Number.isFinite(x)) {
    throw new TypeError(`Cannot format ${JSON.stringify(x)}: not a finite number`);
  }
  return x;
}

/** The median of numbers (the mean of the middle two for an even count); NaN for none. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** One parsed bench/results/*.json file, read by dotted paths. */
export class BenchFile {
  /** The file, relative to the repository root (`bench/results/mlp.json`). */
  readonly file: string;
  /** The parsed JSON. */
  readonly json: unknown;

  /** Wraps parsed JSON read from `file`. */
  constructor(file: string, json: unknown) {
    this.file = file;
    this.json = json;
  }

  /** Whether the dotted path names a value. */
  has(path: string): boolean {
    return this.#walk(path) !== undefined;
  }

  /** The value at the dotted path (`"samplesPerSecond.host"`); an Error when it is missing. */
  get(path: string): unknown {
    const v = this.#walk(path);
    if (v === undefined) {
      throw new Error(`Cannot read ${path} of ${this.file}: the field is missing`);
    }
    return v;
  }

  /** The finite number at the dotted path; an Error when it is missing or not a number. */
  num(path: string): number {
    const v = this.get(path);
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new TypeError(
        `Cannot read ${path} of ${this.file} as a number: it is ${JSON.stringify(v)}`,
      );
    }
    return v;
  }

  /** The array at the dotted path; an Error when it is missing or not an array. */
  list(path: string): unknown[] {
    const v = this.get(path);
    if (!Array.isArray(v)) {
      throw new TypeError(`Cannot read ${path} of ${this.file} as a list: it is ${typeof v}`);
    }
    return v;
  }

  #walk(path: string): unknown {
    let v: unknown = this.json;
    for (const key of path.split(".")) {
      if (v === null || typeof v !== "object") return undefined;
      v = (v as Record<string, unknown>)[key];
    }
    return v;
  }
}

/** The value at a dotted path of a plain object, for rows inside a list; an Error when missing. */
export function field(row: unknown, path: string, where: string): unknown {
  return new BenchFile(where, row).get(path);
}
