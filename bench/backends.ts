// Both WebGPU backends side by side: Deno's navigator.gpu ("deno") and Dawn from npm:webgpu
// ("dawn"). Only one backend can run per process, so each measurement is a fresh process
// (bench/backend_probe.ts: one figure on one backend, one JSON line); the backends take
// turns, figure by figure, round after round, so a noisy machine slows both alike, and the
// figures are medians over the rounds. Prints a table and writes
// bench/results/backends.json (figures not run this time keep their earlier entries).
//
//   deno run -A bench/backends.ts [--figures readback,copy,...] [--rounds N] [--timeout S]
//
// Figures: readback, copy, two_devices, chapter, matmul, cpu, small_ops, mlp (see
// bench/backend_probe.ts for what each measures).
import { parseArgs } from "node:util";
import { FIGURES, type Metric, type ProbeReport } from "./backend_probe.ts";

const BACKENDS = ["deno", "dawn"] as const;
type Backend = typeof BACKENDS[number];

const { values } = parseArgs({
  args: Deno.args,
  options: {
    figures: { type: "string" },
    rounds: { type: "string", default: "3" },
    timeout: { type: "string", default: "300" },
  },
});
const rounds = Number(values.rounds);
const timeoutS = Number(values.timeout);
for (const [name, n] of [["rounds", rounds], ["timeout", timeoutS]] as const) {
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--${name} must be a whole number >= 1, got "${values[name]}"`);
    Deno.exit(2);
  }
}
const figures = values.figures === undefined
  ? [...FIGURES]
  : values.figures.split(",").map((f) => f.trim()).filter((f) => f !== "");
const unknown = figures.filter((f) => !(FIGURES as readonly string[]).includes(f));
if (unknown.length > 0 || figures.length === 0) {
  console.error(
    `Cannot run figures "${values.figures}": each must be one of ${FIGURES.join(", ")}`,
  );
  Deno.exit(2);
}

/** One probe process: its report, and how it ended. */
interface Run {
  round: number;
  figure: string;
  backend: Backend;
  /** Wall seconds of the whole process, start-up included. */
  seconds: number;
  exitCode: number;
  signal: string | null;
  report?: ProbeReport;
  /** The last lines of stderr, without the noise every Dawn process prints. */
  stderrTail?: string[];
}

/** Lines every healthy process prints on stderr: Dawn's limit warnings, Deno's npm notice. */
const NOISE = [
  /artificially reduced from \d+ to \d+/,
  /^\[[a-z]+ [a-z_]+\] /, // the probe's own progress line
  /[╭╰│]|Ignored build scripts|npm:webgpu@|Lifecycle scripts|nodeModulesDir|deno config file/,
];

const root = new URL("..", import.meta.url);
async function probe(round: number, figure: string, backend: Backend): Promise<Run> {
  const t = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "bench/backend_probe.ts", "--backend", backend, "--figure", figure],
    cwd: root,
    env: { NO_COLOR: "1" }, // plain stderr, to filter and to show
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutS * 1000),
  }).output();
  const seconds = (performance.now() - t) / 1000;
  const text = new TextDecoder();
  const last = text.decode(out.stdout).trim().split("\n").at(-1) ?? "";
  let report: ProbeReport | undefined;
  try {
    report = JSON.parse(last) as ProbeReport;
  } catch {
    report = undefined;
  }
  const stderr = text.decode(out.stderr).split("\n")
    .filter((l) => l.trim() !== "" && !NOISE.some((re) => re.test(l)));
  return {
    round,
    figure,
    backend,
    seconds,
    exitCode: out.code,
    signal: out.signal,
    report,
    stderrTail: stderr.length > 0 ? stderr.slice(-8) : undefined,
  };
}

const fmt = (x: number) =>
  !Number.isFinite(x)
    ? String(x)
    : Math.abs(x) >= 100
    ? x.toFixed(0)
    : Math.abs(x) >= 10
    ? x.toFixed(1)
    : Math.abs(x) >= 1
    ? x.toFixed(2)
    : x.toFixed(3);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const started = performance.now();
const runs: Run[] = [];
const cannotStart = new Map<Backend, string>();
console.log(
  `backends: ${BACKENDS.join(" vs ")}, figures ${figures.join(", ")}; ${rounds} round(s), ` +
    `a fresh process per measurement, the backends in turn`,
);
for (let round = 1; round <= rounds; round++) {
  for (const figure of figures) {
    for (const backend of BACKENDS) {
      if (cannotStart.has(backend)) continue;
      const run = await probe(round, figure, backend);
      runs.push(run);
      const r = run.report;
      const head = `[${round}/${rounds}] ${figure.padEnd(11)} ${backend.padEnd(4)}`;
      if (!r || r.error) {
        const why = r?.error ??
          `no report (exit ${run.exitCode}${run.signal ? `, ${run.signal}` : ""})`;
        console.log(`${head}  failed: ${why}`);
        for (const l of run.stderrTail ?? []) console.log(`    ${l}`);
        if (r?.startFailed) {
          cannotStart.set(backend, r.error ?? "cannot start");
          console.log(`    ${backend} cannot start; it is left out of the remaining figures`);
        }
        continue;
      }
      const first = r.metrics[0];
      const exit = run.exitCode !== 0
        ? `; exited with ${run.exitCode}${run.signal ? ` (${run.signal})` : ""} after reporting`
        : "";
      console.log(
        `${head}  ${fmt(first.value)} ${first.unit}  (${run.seconds.toFixed(1)} s${exit})`,
      );
    }
  }
}

/** One metric of a figure, per backend: the median over rounds and every round's value. */
interface MetricSummary {
  name: string;
  unit: string;
  better?: Metric["better"];
  deno?: { median: number; rounds: number[] };
  dawn?: { median: number; rounds: number[] };
  dawnOverDeno?: number;
}
/** A figure's results: when, over how many rounds, on which adapters. */
interface FigureSummary {
  date: string;
  rounds: number;
  adapter: Partial<Record<Backend, string>>;
  metrics: MetricSummary[];
}
const summaries: Record<string, FigureSummary> = {};
for (const figure of figures) {
  const metrics: MetricSummary[] = [];
  for (const run of runs) {
    if (run.figure !== figure || !run.report || run.report.error) continue;
    for (const m of run.report.metrics) {
      let s = metrics.find((x) => x.name === m.name);
      if (!s) metrics.push(s = { name: m.name, unit: m.unit, better: m.better });
      (s[run.backend] ??= { median: NaN, rounds: [] }).rounds.push(m.value);
    }
  }
  for (const s of metrics) {
    for (const b of BACKENDS) if (s[b]) s[b]!.median = median(s[b]!.rounds);
    if (s.deno && s.dawn) s.dawnOverDeno = s.dawn.median / s.deno.median;
  }
  const adapter: Partial<Record<Backend, string>> = {};
  for (const run of runs) {
    if (run.figure === figure && run.report?.adapter) adapter[run.backend] ??= run.report.adapter;
  }
  summaries[figure] = { date: new Date().toISOString(), rounds, adapter, metrics };
}

/** Which backend did better on a metric, when they differ by more than 5%. */
function verdict(s: MetricSummary): string {
  if (!s.better || s.dawnOverDeno === undefined || !Number.isFinite(s.dawnOverDeno)) return "";
  if (Math.abs(s.dawnOverDeno - 1) <= 0.05) return "level";
  const dawnHigher = s.dawnOverDeno > 1;
  return dawnHigher === (s.better === "higher") ? "dawn" : "deno";
}

const adapters: Partial<Record<Backend, string>> = {};
const software: Partial<Record<Backend, boolean>> = {};
const threads: Partial<Record<Backend, number | null>> = {};
for (const run of runs) {
  if (!run.report?.adapter) continue;
  adapters[run.backend] ??= run.report.adapter;
  software[run.backend] ??= run.report.software;
  threads[run.backend] ??= run.report.threadsPerDevice ?? null;
}

console.log("");
for (const b of BACKENDS) {
  console.log(
    `${b}: ${adapters[b] ?? `did not run (${cannotStart.get(b) ?? "no report"})`}` +
      (adapters[b] ? `, ${threads[b] ?? "?"} thread(s) per device` : ""),
  );
}
console.log(`medians of ${rounds} round(s); "better": the backend ahead by more than 5%\n`);
const W = 56;
console.log(
  `${"figure".padEnd(12)}${"metric".padEnd(W)}${"deno".padStart(10)}${"dawn".padStart(10)}` +
    `${"dawn/deno".padStart(11)}  better`,
);
for (const figure of figures) {
  for (const [i, s] of summaries[figure].metrics.entries()) {
    const label = `${s.name}${s.unit ? ` (${s.unit})` : ""}`;
    const cell = (x?: { median: number }) => (x ? fmt(x.median) : "-").padStart(10);
    console.log(
      `${(i === 0 ? figure : "").padEnd(12)}${label.slice(0, W - 1).padEnd(W)}` +
        `${cell(s.deno)}${cell(s.dawn)}` +
        `${(s.dawnOverDeno === undefined ? "-" : fmt(s.dawnOverDeno)).padStart(11)}  ${verdict(s)}`,
    );
  }
  if (summaries[figure].metrics.length === 0) console.log(`${figure.padEnd(12)}(no results)`);
}
const failed = runs.filter((r) => !r.report || r.report.error);
const exitCrashes = runs.filter((r) => r.report && !r.report.error && r.exitCode !== 0);
if (exitCrashes.length > 0) {
  console.log(
    `\n${exitCrashes.length} process(es) exited with an error after reporting: ` +
      exitCrashes.map((r) => `${r.figure}/${r.backend} round ${r.round} (${r.exitCode})`)
        .join(", "),
  );
}
if (failed.length > 0) console.log(`${failed.length} measurement(s) failed; see above`);
console.log(`\ntook ${((performance.now() - started) / 1000).toFixed(0)} s`);

const resultsUrl = new URL("./results/backends.json", import.meta.url);
let previous: Record<string, unknown> = {};
try {
  previous = JSON.parse(await Deno.readTextFile(resultsUrl)).figures ?? {};
} catch {
  previous = {};
}
const result = {
  benchmark: "backends",
  date: new Date().toISOString(),
  cores: navigator.hardwareConcurrency,
  rounds,
  order: "each figure in turn, deno then dawn, round after round; a fresh process each",
  adapter: adapters,
  software,
  threadsPerDevice: threads,
  cannotStart: Object.fromEntries(cannotStart),
  figures: { ...previous, ...summaries },
  runs: runs.map((r) => ({
    round: r.round,
    figure: r.figure,
    backend: r.backend,
    seconds: r.seconds,
    exitCode: r.exitCode,
    signal: r.signal,
    figureSeconds: r.report?.seconds,
    error: r.report ? r.report.error : "no report",
    stderrTail: r.stderrTail,
  })),
};
await Deno.mkdir(new URL("./results/", import.meta.url), { recursive: true });
await Deno.writeTextFile(resultsUrl, JSON.stringify(result, null, 2) + "\n");
