// The small-op chain and the MLP's training step, this working tree against an earlier commit,
// in the same run (issue 22: "no slower than the commit before, within noise"). The base is
// checked out in a temporary git worktree; round after round, each tree runs as child
// processes (`deno run -A`, cwd in that tree, AUTOPAR_WEBGPU=dawn), the tree that goes first
// alternating, so a noisy machine slows both alike:
//   - small ops: `bench/small_ops.ts --backend dawn --rounds 1` (its child mode, which prints
//     one JSON line and writes nothing): autopar's and the captured chain's us per op;
//   - MLP: a script in the temporary folder that imports the tree's lib/train by absolute path
//     and trains batches of 256 on one device with `new Trainer(mlp({ seed: 1 }), [gpu],
//     { lr: 0.1 })`, the step run anew and captured, after a warm-up: samples per second.
// Per metric: each round's ratio current / base and their median (us per op: lower is better;
// samples/s: higher is better). Prints a table and writes bench/results/compare_commits.json.
//
//   deno run -A bench/compare_commits.ts [--base REV] [--rounds N] [--only small-ops|mlp]
import { parseArgs } from "node:util";
import { median } from "../lib/experiments/section.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    base: { type: "string", default: "b554e30" },
    rounds: { type: "string", default: "5" },
    only: { type: "string" },
  },
});
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1) {
  console.error(`Cannot run ${values.rounds} rounds: --rounds must be a whole number >= 1`);
  Deno.exit(2);
}
const PARTS = ["small-ops", "mlp"] as const;
type Part = typeof PARTS[number];
if (values.only !== undefined && !PARTS.includes(values.only as Part)) {
  console.error(`Cannot run only "${values.only}": --only must be "small-ops" or "mlp"`);
  Deno.exit(2);
}
const parts: Part[] = values.only ? [values.only as Part] : [...PARTS];

const METRICS = {
  smallOpsAutopar: { part: "small-ops", unit: "us/op", higherIsBetter: false },
  smallOpsCaptured: { part: "small-ops", unit: "us/op", higherIsBetter: false },
  mlpAnew: { part: "mlp", unit: "samples/s", higherIsBetter: true },
  mlpCaptured: { part: "mlp", unit: "samples/s", higherIsBetter: true },
} as const;
type Metric = keyof typeof METRICS;
const TREES = ["current", "base"] as const;
type Tree = typeof TREES[number];

/** The MLP's batches: a warm-up, then timed slices taking turns in each child. */
const MLP = { batch: 256, warmupBatches: 3, batchesPerSlice: 16, slices: 3 };
/** Seconds a child may run before it is stopped. */
const CHILD_TIMEOUT_S = 240;

const repo = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const decoder = new TextDecoder();

/** Runs git in this repository; throws with its stderr when it fails. */
function git(...args: string[]): string {
  const out = new Deno.Command("git", { args, cwd: repo, stdout: "piped", stderr: "piped" })
    .outputSync();
  if (!out.success) {
    throw new Error(`Cannot run git ${args.join(" ")}: ${decoder.decode(out.stderr).trim()}`);
  }
  return decoder.decode(out.stdout).trimEnd(); // not trimStart: porcelain lines start with a space
}

/** The MLP child: argv[0] is the tree's root; prints one JSON line of samples per second. */
const MLP_SCRIPT = `
const root = "file://" + Deno.args[0] + "/";
const { closeDevices, synchronize, tryAllGpus } = await import(root + "mod.ts");
const { mlp, Trainer } = await import(root + "lib/train/trainer.ts");
const { loadMnist } = await import(root + "lib/train/mnist.ts");
const { trainEpoch } = await import(root + "lib/train/epoch.ts");
const [batch, warmup, perSlice, slices] = Deno.args.slice(1).map(Number);
const gpus = await tryAllGpus({ count: 1 });
if (gpus.length < 1 || gpus[0].info.backend !== "dawn") {
  console.log(JSON.stringify({ error: "no dawn device: " + gpus.map((d) => d.info.backend) }));
  Deno.exit(1);
}
const { train } = loadMnist();
const ways = {
  anew: new Trainer(mlp({ seed: 1 }), [gpus[0]], { lr: 0.1 }),
  captured: new Trainer(mlp({ seed: 1 }), [gpus[0]], { lr: 0.1, capture: true }),
};
const names = Object.keys(ways);
for (const n of names) await trainEpoch(ways[n], train, { batch, limit: warmup * batch, seed: 0 });
await synchronize();
const speeds = { anew: [], captured: [] };
for (let s = 0; s < slices; s++) {
  for (const n of s % 2 ? [...names].reverse() : names) {
    const r = await trainEpoch(ways[n], train, { batch, limit: perSlice * batch, seed: s + 1 });
    speeds[n].push(r.samplesPerSecond);
  }
}
const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(JSON.stringify({
  adapter: gpus[0].info.adapter,
  anew: med(speeds.anew),
  captured: med(speeds.captured),
  slices: speeds,
}));
for (const t of Object.values(ways)) t.dispose();
await closeDevices().catch(() => {});
Deno.exit(0);
`;

/** One child's figures (missing when it failed) and what it said when it did. */
interface ChildRun {
  values: Partial<Record<Metric, number>>;
  /** Small ops: the largest |y - reference| of each contender (the child's check of its sums). */
  maxError?: Partial<Record<Metric, number>>;
  seconds: number;
  error?: string;
}

/** Runs `args` with deno in `cwd` and parses the last stdout line as JSON. */
async function runJsonChild(cwd: string, args: string[]): Promise<{
  json?: Record<string, unknown>;
  seconds: number;
  error?: string;
}> {
  const t = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...args],
    cwd,
    env: { AUTOPAR_WEBGPU: "dawn", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(CHILD_TIMEOUT_S * 1000),
  }).output();
  const seconds = (performance.now() - t) / 1000;
  const last = decoder.decode(out.stdout).trim().split("\n").at(-1) ?? "";
  try {
    const json = JSON.parse(last) as Record<string, unknown>;
    const error = typeof json.error === "string" ? json.error : undefined;
    return { json, seconds, error };
  } catch {
    const tail = decoder.decode(out.stderr).trim().split("\n").slice(-4).join(" | ");
    return { seconds, error: `no JSON line (exit ${out.code}, ${out.signal}): ${tail}` };
  }
}

/** The small-op chain's child in `root`: autopar's and the captured chain's us per op. */
async function smallOps(root: string): Promise<ChildRun> {
  const r = await runJsonChild(root, ["bench/small_ops.ts", "--backend", "dawn", "--rounds", "1"]);
  const c = r.json?.contenders as
    | Record<string, { usPerOp: number; maxError: number }>
    | undefined;
  return {
    values: { smallOpsAutopar: c?.autopar?.usPerOp, smallOpsCaptured: c?.autoparCaptured?.usPerOp },
    maxError: {
      smallOpsAutopar: c?.autopar?.maxError,
      smallOpsCaptured: c?.autoparCaptured?.maxError,
    },
    seconds: r.seconds,
    error: r.error,
  };
}

/** The MLP child for `root`, from the script in `dir`: samples per second, anew and captured. */
async function mlpStep(root: string, dir: string): Promise<ChildRun> {
  const script = `${dir}/mlp_step.ts`;
  const sizes = [MLP.batch, MLP.warmupBatches, MLP.batchesPerSlice, MLP.slices].map(String);
  const r = await runJsonChild(root, ["--config", `${root}/deno.json`, script, root, ...sizes]);
  const n = (x: unknown) => typeof x === "number" ? x : undefined;
  return {
    values: { mlpAnew: n(r.json?.anew), mlpCaptured: n(r.json?.captured) },
    seconds: r.seconds,
    error: r.error,
  };
}

/** Figures per metric and tree, one entry per round (null where a child failed). */
type Raw = Record<Metric, Record<Tree, (number | null)[]>>;

/** Runs the rounds: each part in both trees, the first tree alternating. */
async function runRounds(roots: Record<Tree, string>, dir: string) {
  const raw = Object.fromEntries(
    Object.keys(METRICS).map((m) => [m, { current: [], base: [] }]),
  ) as unknown as Raw;
  const order: Tree[][] = [];
  const errors: string[] = [];
  let maxError = 0;
  for (let r = 0; r < rounds; r++) {
    const trees: Tree[] = r % 2 === 0 ? ["current", "base"] : ["base", "current"];
    order.push(trees);
    for (const part of parts) {
      for (const tree of trees) {
        const run = part === "mlp" ? await mlpStep(roots[tree], dir) : await smallOps(roots[tree]);
        for (const m of Object.keys(METRICS) as Metric[]) {
          if (METRICS[m].part === part) raw[m][tree].push(run.values[m] ?? null);
        }
        for (const e of Object.values(run.maxError ?? {})) maxError = Math.max(maxError, e ?? 0);
        const note = run.error ? `: ${run.error}` : "";
        console.error(`round ${r + 1} ${part} ${tree}: ${run.seconds.toFixed(1)} s${note}`);
        if (run.error) errors.push(`round ${r + 1} ${part} ${tree}: ${run.error}`);
      }
    }
  }
  return { raw, order, errors, maxError };
}

/** One metric's figures: medians per tree, each round's ratio current / base, their median. */
interface MetricSummary {
  part: Part;
  unit: string;
  higherIsBetter: boolean;
  medianCurrent: number | null;
  medianBase: number | null;
  ratios: (number | null)[];
  medianRatio: number | null;
}

/** Per metric: medians per tree, each round's ratio current / base, their median. */
function summarize(raw: Raw): Record<Metric, MetricSummary> {
  const ok = (xs: (number | null)[]) => xs.filter((x): x is number => x !== null);
  const med = (xs: number[]) => xs.length > 0 ? median(xs) : null;
  const entries = (Object.keys(METRICS) as Metric[]).map((m): [Metric, MetricSummary] => {
    const { current, base } = raw[m];
    const ratios = current.map((c, i) => c !== null && base[i] !== null ? c / base[i]! : null);
    return [m, {
      ...METRICS[m],
      medianCurrent: med(ok(current)),
      medianBase: med(ok(base)),
      ratios,
      medianRatio: med(ok(ratios)),
    }];
  });
  return Object.fromEntries(entries) as Record<Metric, MetricSummary>;
}

/** Prints one row per metric that ran. */
function printTable(summary: Record<Metric, MetricSummary>, base: string): void {
  const fmt = (x: number | null, digits = 1) => x === null ? "-" : x.toFixed(digits);
  console.log(`\ncurrent (working tree) vs base ${base}, ${rounds} rounds, dawn, one device`);
  console.log(
    "metric".padEnd(20) + "unit".padEnd(11) + "base".padStart(9) + "current".padStart(9) +
      "  ratio c/b per round".padEnd(32) + "median",
  );
  for (const [m, s] of Object.entries(summary)) {
    if (!parts.includes(s.part)) continue;
    const better = s.higherIsBetter ? "higher" : "lower";
    console.log(
      m.padEnd(20) + s.unit.padEnd(11) + fmt(s.medianBase).padStart(9) +
        fmt(s.medianCurrent).padStart(9) + "  " +
        s.ratios.map((r) => fmt(r, 3)).join(" ").padEnd(30) +
        `${fmt(s.medianRatio, 3)} (${better} is better)`,
    );
  }
}

/** Makes the base's worktree and the MLP script; runs; removes the worktree. */
async function main(): Promise<void> {
  const baseRev = git("rev-parse", `${values.base}^{commit}`);
  const headRev = git("rev-parse", "HEAD");
  const libUncommitted = git("status", "--porcelain", "lib").split("\n").filter((l) => l !== "");
  const loadAverageAtStart = Deno.loadavg();
  const dir = await Deno.makeTempDir({ prefix: "autopar_compare_" });
  const baseRoot = `${dir}/base`;
  git("worktree", "add", "--detach", baseRoot, baseRev);
  const cleanUp = () => {
    try {
      git("worktree", "remove", "--force", baseRoot);
    } catch (e) {
      console.error(e instanceof Error ? e.message : String(e));
    }
    Deno.removeSync(dir, { recursive: true });
  };
  const onSignal = () => {
    cleanUp();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  const started = performance.now();
  let run: Awaited<ReturnType<typeof runRounds>>;
  try {
    await Deno.writeTextFile(`${dir}/mlp_step.ts`, MLP_SCRIPT);
    run = await runRounds({ current: repo, base: baseRoot }, dir);
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    cleanUp();
  }
  const summary = summarize(run.raw);
  printTable(summary, values.base!);
  const result = {
    benchmark: "compare_commits",
    date: new Date().toISOString(),
    deno: Deno.version.deno,
    cores: navigator.hardwareConcurrency,
    loadAverageAtStart,
    base: { rev: values.base, commit: baseRev },
    current: { commit: headRev, libUncommitted },
    backend: "dawn",
    rounds,
    parts,
    order: run.order,
    smallOps: "bench/small_ops.ts --backend dawn --rounds 1 in each tree: usPerOp of autopar " +
      "and autoparCaptured (1,000 adds of 1,024 floats, median of 5 chains)",
    mlp: `Trainer(mlp({ seed: 1 }), [gpu], { lr: 0.1 }) on MNIST, batch ${MLP.batch}, ` +
      `${MLP.warmupBatches} warm-up batches, then ${MLP.slices} slices of ` +
      `${MLP.batchesPerSlice} batches taking turns (anew, captured: { capture: true }); ` +
      "the median slice's samples/s",
    raw: run.raw,
    /** The largest |y - reference| of the small-op chains over every child (a wrong sum shows). */
    smallOpsMaxError: run.maxError,
    summary,
    errors: run.errors,
    seconds: (performance.now() - started) / 1000,
  };
  const path = new URL("./results/compare_commits.json", import.meta.url);
  await Deno.mkdir(new URL("./results/", import.meta.url), { recursive: true });
  await Deno.writeTextFile(path, JSON.stringify(result, null, 2) + "\n");
  console.log(`\nwrote ${path.pathname}`);
}

await main();
