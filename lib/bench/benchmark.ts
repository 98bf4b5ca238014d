/**
 * The Benchmark timer of d2l, for `await using`: prints `label: 0.1234 sec` when the block
 * ends and records the span in the trace.
 *
 * @module
 */
import { engine } from "../engine/engine.ts";

/**
 * A running benchmark block; disposing it stops the clock.
 *
 * @example
 * ```ts
 * import { type Benchmark, benchmark } from "./benchmark.ts";
 * let timer: Benchmark;
 * {
 *   using b = benchmark("step", { print: null });
 *   timer = b;
 *   console.log(timer.label, timer.seconds); // "step" NaN (still running)
 * }
 * console.log(timer.seconds >= 0); // true
 * ```
 */
export interface Benchmark extends AsyncDisposable, Disposable {
  /** The label it prints, for example "GPU1 time". */
  readonly label: string;
  /** Seconds from the start to the end of the block (NaN while it runs). */
  readonly seconds: number;
}

/**
 * Options of {@link benchmark}.
 *
 * @example
 * ```ts
 * import { benchmark, type BenchmarkOptions } from "./benchmark.ts";
 * const lines: string[] = [];
 * const options: BenchmarkOptions = { print: (line) => lines.push(line) };
 * {
 *   using _ = benchmark("noop", options);
 * }
 * console.log(/^noop: \d+\.\d{4} sec$/.test(lines[0])); // true
 * ```
 */
export interface BenchmarkOptions {
  /**
   * Where the line goes; `null` prints nothing.
   * @default {console.log}
   */
  print?: ((line: string) => void) | null;
}

/**
 * Times a block like `d2l.Benchmark`. Synchronise inside the block, or the time is only
 * that of queueing the work.
 *
 * @example
 * ```ts
 * import { benchmark } from "./benchmark.ts";
 * {
 *   await using _ = benchmark("sleep");
 *   await new Promise((r) => setTimeout(r, 10));
 * } // prints "sleep: 0.0100 sec"
 * ```
 */
export function benchmark(label: string, options: BenchmarkOptions = {}): Benchmark {
  if (typeof label !== "string") {
    throw new TypeError(`Cannot benchmark with label ${label}: it must be a string`);
  }
  const print = options.print === undefined ? console.log : options.print;
  const start = performance.now();
  let seconds = NaN;
  const stop = () => {
    if (!Number.isNaN(seconds)) return;
    const end = performance.now();
    seconds = (end - start) / 1000;
    engine().recordSpan("benchmark", start, end, label);
    print?.(`${label}: ${seconds.toFixed(4)} sec`);
  };
  return {
    label,
    get seconds() {
      return seconds;
    },
    [Symbol.dispose]: stop,
    [Symbol.asyncDispose]: () => Promise.resolve(stop()),
  };
}
