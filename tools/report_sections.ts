/**
 * One section of docs/performance.md per benchmark: its tables, generated from the benchmark's
 * JSON in bench/results/, and the prose that explains them. Every number in a section is read
 * from the JSON (or computed from it); the prose holds no figure of its own.
 *
 * @module
 */
import {
  BenchFile,
  field,
  finite,
  fixed,
  num,
  percent,
  renderTable,
  runLine,
  utc,
} from "./report_format.ts";
import { compareCommits, fusion } from "./report_fusion.ts";
import { distributed } from "./report_distributed.ts";

/** A section of the report: the files it reads and how it renders them. */
export interface SectionSpec {
  /** The heading (its GitHub anchor is what other pages link to). */
  title: string;
  /** The JSON files it reads, by name in bench/results/ (`"mlp.json"`). */
  files: string[];
  /** Renders the section's body (without its heading) from the files, in the order of `files`. */
  render(files: BenchFile[]): string;
}

/** "met" or "not met", as a goal reads. */
function met(ok: boolean): string {
  return ok ? "met" : "not met";
}

/** The smallest and largest of numbers, as `"a-b"` formatted with `f`. */
function range(xs: number[], f: (x: number) => string): string {
  return `${f(Math.min(...xs))}-${f(Math.max(...xs))}`;
}

/** The numbers of a list of rows at a path. */
function nums(rows: unknown[], path: string, where: string): number[] {
  return rows.map((r) => finite(field(r, path, where)));
}

const threads = (n: unknown) => `${finite(n)} llvmpipe thread${n === 1 ? "" : "s"} per device`;

// --- bench/two_devices.ts -------------------------------------------------------------------

function twoDevices([f]: BenchFile[]): string {
  const size = f.num("workload.size");
  const row = (name: string, key: string) => [
    name,
    fixed(f.num(`${key}.median.t1`), 3),
    fixed(f.num(`${key}.median.t2`), 3),
    fixed(f.num(`${key}.median.both`), 3),
    fixed(f.num(`${key}.median.ratio`), 3),
  ];
  const ratios = nums(f.list("autopar.runs"), "ratio", f.file);
  const goal = f.num("goals.both/(t1+t2)");
  const overhead = f.num("autoparOverRaw.both");
  const overheadGoal = f.num("goals.autopar/raw");
  return [
    runLine({
      command: "deno run -A bench/two_devices.ts",
      file: f.file,
      date: f.get("date"),
      adapter: f.get("hardware.adapter"),
      cores: f.get("hardware.cores"),
      notes: [threads(f.get("hardware.threadsPerDevice"))],
    }),
    `The chapter's first experiment: ${
      f.num("workload.iters")
    } products of ${size}x${size} on each of ${f.num("workload.devices")} devices, ${
      f.num("workload.reps")
    } repetitions, medians. T1 and T2 are each device alone, T(both) both at once: a ratio T(both)/(T1+T2) of 0.5 means the devices ran fully in parallel, 1.0 one after the other.`,
    renderTable(["", "T1 (s)", "T2 (s)", "T(both) (s)", "T(both)/(T1+T2)"], [
      row("autopar", "autopar"),
      row("the same products on raw WebGPU Workers (Deno's WebGPU)", "raw"),
    ]),
    [
      `- **T(both)/(T1+T2) ≤ ${goal}: ${met(f.num("autopar.median.ratio") <= goal)}**, ${
        fixed(f.num("autopar.median.ratio"), 3)
      }. The per-repetition ratios ranged over ${range(ratios, (x) => fixed(x, 2))}.`,
      `- **The engine's overhead ≤ ${overheadGoal}: ${
        met(overhead <= overheadGoal)
      }**: autopar's T(both) over raw's, as the median of per-repetition ratios, is ${
        fixed(overhead, 3)
      }.`,
    ].join("\n"),
  ].join("\n\n");
}

// --- bench/overlap.ts -------------------------------------------------------------------------

function overlap([f]: BenchFile[]): string {
  const row = (name: string, key: string, goal?: number) => {
    const ratio = f.num(`${key}.median.overlapRatio`);
    return [
      name,
      fixed(f.num(`${key}.median.run`), 3),
      fixed(f.num(`${key}.median.copy`), 3),
      fixed(f.num(`${key}.median.both`), 3),
      fixed(ratio, 2) + (goal === undefined ? "" : ` (goal ≤ ${goal}: ${met(ratio <= goal)})`),
    ];
  };
  const c = "chapter.workload";
  const h = "copyHeavy.workload";
  const mib = (bytes: number) => fixed(bytes / 2 ** 20, 0);
  return [
    runLine({
      command: "deno run -A bench/overlap.ts",
      file: f.file,
      date: f.get("date"),
      adapter: f.get("hardware.adapter"),
      cores: f.get("hardware.cores"),
      notes: [threads(f.get("hardware.threadsPerDevice"))],
    }),
    `The chapter's second experiment (run on GPU1, copy to the CPU) and a copy-heavy stream, ${
      f.num("chapter.reps")
    } repetitions each. The last column is T(run and copy) over the longer of T(run) and T(copy), as the median of per-repetition ratios: 1.0 means the copies hid entirely under the computation.`,
    renderTable(["workload", "T(run) (s)", "T(copy) (s)", "T(run and copy) (s)", "ratio"], [
      row(
        `chapter: ${f.num(`${c}.iters`)} products of ${f.num(`${c}.size`)}x${
          f.num(`${c}.size`)
        }, blocking copies, then run + non-blocking copies`,
        "chapter",
      ),
      row(
        `copy-heavy stream: ${f.num(`${h}.items`)} tensors of ${f.num(`${h}.size`)}x${
          f.num(`${h}.size`)
        }, one add each, \`copyTo(cpu())\``,
        "copyHeavy",
        f.num("goals.copyHeavyOverlapRatio"),
      ),
    ]),
    [
      "- On lavapipe a copy is a memcpy on the same cores as the adds, so the copy-heavy stream's copies cannot hide under them entirely.",
      `- **Memory stays flat** (goal: ${f.get("goals.memory")}): a stream of ${
        fixed(f.num("memory.large.n"), 0)
      } tensors peaked at ${f.num("memory.large.peakBuffers")} live device buffers, a stream of ${
        f.num("memory.small.n")
      } at ${f.num("memory.small.peakBuffers")}. Process RSS peaked at ${
        mib(f.num("memory.large.peakRss"))
      } MiB against ${mib(f.num("memory.small.peakRss"))} MiB (${
        fixed(f.num("memory.peakRssRatio"), 2)
      }x).`,
    ].join("\n"),
  ].join("\n\n");
}

// --- bench/backends.ts, bench/exit_runs.ts --------------------------------------------------

interface Metric {
  name: string;
  unit: string;
  better?: "lower" | "higher";
  deno: { median: number; rounds: number[] };
  dawn: { median: number; rounds: number[] };
  dawnOverDeno: number;
}

function metrics(f: BenchFile): Metric[] {
  const figures = f.get("figures") as Record<string, unknown>;
  return Object.keys(figures).flatMap((k) => f.list(`figures.${k}.metrics`) as Metric[]);
}

function metric(f: BenchFile, name: string): Metric {
  const m = metrics(f).find((m) => m.name.trim() === name);
  if (m === undefined) throw new Error(`Cannot find the figure "${name}" in ${f.file}`);
  return m;
}

function backends([f, exits]: BenchFile[]): string {
  const all = metrics(f);
  const rows = all.map((m) => [
    (m.name.startsWith(" ") ? "↳ " : "") + m.name.trim() + (m.unit ? ` (${m.unit})` : ""),
    num(m.deno.median),
    num(m.dawn.median),
    fixed(m.dawnOverDeno, 3),
  ]);
  const top = all.filter((m) => !m.name.startsWith(" "));
  const worse = top.filter((m) =>
    m.better === "lower" ? m.dawnOverDeno > 1.05 : m.better === "higher" && m.dawnOverDeno < 0.95
  );
  const better = top.filter((m) =>
    m.better === "lower" ? m.dawnOverDeno < 0.95 : m.better === "higher" && m.dawnOverDeno > 1.05
  );
  const readback = metric(f, "await y.data(), y = x.add(x) of 1024 floats");
  const ratio = metric(f, "T(both)/(T1+T2)");
  const twoOverOne = metric(f, "two / one, staleness 0");
  const cpuUse = metric(f, "CPU use, 20 x mm 512 on one device, 1 thread(s)");
  const lead = (m: Metric) =>
    m.better === "lower" ? `${fixed(1 / m.dawnOverDeno, 1)}x` : `${fixed(m.dawnOverDeno, 2)}x`;
  const failed = Object.keys(f.get("cannotStart") as Record<string, unknown>);
  const exitLine = (b: string) =>
    `${exits.num(`results.${b}.clean`)} of ${exits.num(`results.${b}.runs`)} on ${b}`;
  return [
    runLine({
      command: "deno run -A bench/backends.ts",
      file: f.file,
      date: f.get("date"),
      adapter: f.get("adapter"),
      cores: f.get("cores"),
      notes: [threads(f.get("threadsPerDevice.dawn"))],
    }),
    `Each device Worker runs Dawn (\`npm:webgpu\`, the default) or Deno's built-in WebGPU (wgpu) behind one device contract. bench/backends.ts runs each measurement in a fresh process (${
      f.get("order")
    }) for ${
      f.num("rounds")
    } rounds; the figures are medians over the rounds. A figure marked ↳ belongs to the one above it (a ratio, or its parts).${
      failed.length > 0 ? ` Could not start: ${failed.join(", ")}.` : ""
    }`,
    renderTable(["figure", "deno", "dawn", "dawn/deno"], rows),
    [
      `- **A blocking readback of a small result ≤ 1 ms on Dawn: ${
        met(readback.dawn.median <= 1)
      }**, ${num(readback.dawn.median)} ms (rounds ${
        range(readback.dawn.rounds, num)
      }); Deno's backend: ${
        num(readback.deno.median)
      } ms. Every \`mapAsync\` and \`onSubmittedWorkDone\` of Deno's backend resolves only after its map loop has polled the device and slept (\`ext/webgpu/buffer.rs\`), so the engine never waits between ops; Dawn's waits have no such floor.`,
      `- **The two-device ratio ≤ 0.55 on both backends: ${
        met(ratio.deno.median <= 0.55 && ratio.dawn.median <= 0.55)
      }** (${fixed(ratio.deno.median, 3)} on deno, ${fixed(ratio.dawn.median, 3)} on dawn).`,
      `- **The MLP's two devices over one, synchronous, at batch 256 ≥ 1.5: ${
        met(twoOverOne.dawn.median >= 1.5)
      }**, ${fixed(twoOverOne.dawn.median, 2)} on Dawn (${
        fixed(twoOverOne.deno.median, 2)
      } on deno): the gradients' round trip through the host is fixed per step, and the devices wait for it (see [Training the MLP](#training-the-mlp)).`,
      `- **The default no more than 5% worse than the other backend on any top-level figure: ${
        met(worse.length === 0)
      }.**${
        worse.length > 0
          ? ` Dawn trails on ${
            worse.map((m) => `${m.name.trim()} (${fixed(m.dawnOverDeno, 2)})`).join(", ")
          }.`
          : ""
      } It leads by more than 5% on ${
        better.map((m) => `${m.name.trim()} (${lead(m)})`).join(", ")
      }.`,
      `- CPU use while one device is busy with one llvmpipe thread: ${
        num(cpuUse.dawn.median)
      } cores on Dawn, ${
        num(cpuUse.deno.median)
      } on deno. While a promise of dawn.node is pending, the binding polls the device by calling \`setImmediate\` again and again; the Worker replaces its \`setImmediate\` (\`lib/devices/dawn_polling.ts\`) so that polls run back to back for a moment after a wait starts, then sleep (\`Atomics.wait\`) a growing share of the time waited. Deno's waits block the Worker's thread, so its Workers wait only right before a submission and when idle (\`lib/devices/drains.ts\`); Dawn's do not, so its Workers ask at once (\`lib/devices/eager_waits.ts\`).`,
      `- No crash at exit: \`deno run -A bench/exit_runs.ts\` ran a two-device script ${
        exits.num("results.dawn.runs")
      } times per backend (${
        exits.has("date") ? `run of ${utc(exits.get("date"))}, ` : ""
      }[${exits.file}](../${exits.file})): ${exitLine("deno")} and ${
        exitLine("dawn")
      } ended cleanly.`,
    ].join("\n"),
  ].join("\n\n");
}

// --- bench/op_profile.ts ----------------------------------------------------------------------

interface Profile {
  backend: string;
  mode: string;
  enqueueUsPerOp: number;
  totalUsPerOp: number;
  workerUsPerOp: Record<string, number>;
  workerOps: number;
  workerUsPerReplayedKernel?: number;
  buffers: { created: number; reused: number };
  bindGroupsCached: number;
}

function opProfile([f]: BenchFile[]): string {
  const results = f.list("results") as Profile[];
  const names = [...new Set(results.map((r) => r.backend))];
  const pick = (mode: string) =>
    names.map((b) => {
      const r = results.find((r) => r.backend === b && r.mode === mode);
      if (r === undefined) throw new Error(`Cannot find ${b} ${mode} in ${f.file}`);
      return r;
    });
  const opByOp = pick("op by op");
  const captured = pick("captured");
  const sum = (r: Profile) => Object.values(r.workerUsPerOp).reduce((a, b) => a + b, 0);
  const phases = Object.keys(opByOp[0].workerUsPerOp).sort((a, b) =>
    opByOp[0].workerUsPerOp[b] - opByOp[0].workerUsPerOp[a]
  );
  const first = opByOp[0];
  return [
    runLine({
      command: "deno run -A bench/op_profile.ts",
      file: f.file,
      date: f.get("date"),
      adapter: Object.fromEntries(
        results.map((r) => [r.backend, (r as unknown as { adapter: string }).adapter]),
      ),
      cores: f.get("cores"),
    }),
    `A chain of ${
      fixed(f.num("ops"), 0)
    } adds of 1,024 floats (\`y = y.add(x)\`), timed end to end; the main thread's share (creating the ops: Tensor checks, autograd's hook, the engine's records); and the device Worker's phases (\`AUTOPAR_PROFILE=1\`: a \`performance.now()\` per phase, which itself costs a little). Microseconds per op:`,
    renderTable(["where", ...names], [
      ["end to end", ...opByOp.map((r) => num(r.totalUsPerOp))],
      ["main thread: creating the op", ...opByOp.map((r) => num(r.enqueueUsPerOp))],
      ...phases.map((p) => [`Worker: ${p}`, ...opByOp.map((r) => num(r.workerUsPerOp[p] ?? 0))]),
      ["Worker, all phases", ...opByOp.map((r) => num(sum(r)))],
    ]),
    `On ${first.backend}, the Worker built ${fixed(first.bindGroupsCached, 0)} bind groups for ${
      fixed(first.workerOps, 0)
    } ops (they are cached by pipeline and buffers) and took ${
      percent(first.buffers.reused / (first.buffers.reused + first.buffers.created))
    } of its output buffers from its pool. The rest of the end-to-end time is the device running the dispatches, the engine's scheduling and the messages to the Worker, and on Deno's backend the floor of the final readback.`,
    `The same chain captured and replayed is one engine op for its ${
      fixed(f.num("ops"), 0)
    } kernels:`,
    renderTable(["captured chain", ...names], [
      ["end to end (µs/op)", ...captured.map((r) => num(r.totalUsPerOp))],
      ["main thread: `step.replay(x)` (µs/op)", ...captured.map((r) => num(r.enqueueUsPerOp))],
      [
        "Worker: encoding a replayed kernel (µs)",
        ...captured.map((r) => num(r.workerUsPerReplayedKernel ?? NaN)),
      ],
      ["Worker, op by op in the same run (µs/op)", ...opByOp.map((r) => num(sum(r)))],
    ]),
    "What is left of a replayed kernel on the Worker is `setBindGroup` and `dispatchWorkgroups` (the pipeline is set once for the chain): the bind group comes from the kernel's own small cache, the uniforms and the buffers were made when the segment was defined.",
  ].join("\n\n");
}

// --- bench/small_ops.ts -----------------------------------------------------------------------

const CONTENDERS: [string, string][] = [
  ["autopar", "autopar, op by op"],
  ["autoparCaptured", "autopar, the chain captured and replayed"],
  ["raw", "raw WebGPU, one pass per dispatch"],
  ["rawOnePass", "raw WebGPU, one pass per command buffer"],
  ["tfjs", "tfjs-backend-webgpu"],
];

const RATIOS: [string, string][] = [
  ["autoparOverRaw", "autopar op by op / raw"],
  ["autoparOverRawOnePass", "autopar op by op / raw one pass"],
  ["autoparOverTfjs", "autopar op by op / tfjs"],
  ["capturedOverRawOnePass", "captured / raw one pass"],
  ["capturedOverTfjs", "captured / tfjs"],
];

function smallOps([f]: BenchFile[]): string {
  const names = Object.keys(f.get("backends") as Record<string, unknown>);
  const b = (name: string, path: string) => f.num(`backends.${name}.${path}`);
  const rows = [
    ...CONTENDERS.map(([key, label]) => [
      label,
      ...names.map((n) => num(b(n, `contenders.${key}.usPerOp`))),
    ]),
    ...RATIOS.map(([key, label]) => [
      `${label} (goal ≤ ${f.num(`goals.${key}`)})`,
      ...names.map((n) =>
        `${fixed(b(n, `ratios.${key}`), 2)} ${
          f.get(`backends.${n}.goalsMet.${key}`) ? "met" : "missed"
        }`
      ),
    ]),
  ];
  const floor = names.map((n) =>
    fixed(b(n, "contenders.rawOnePass.usPerOp") / b(n, "contenders.tfjs.usPerOp"), 2)
  );
  const rawRounds = names.map((n) =>
    `${n} ${range(f.list(`backends.${n}.contenders.raw.rounds`) as number[], num)}`
  );
  return [
    runLine({
      command: "deno run -A bench/small_ops.ts",
      file: f.file,
      date: f.get("date"),
      adapter: Object.fromEntries(
        names.map((n) => [n, f.get(`backends.${n}.adapters.autopar`)]),
      ),
      cores: f.get("cores"),
      notes: [`commit ${String(f.get("commit")).slice(0, 7)}`],
    }),
    `The ${
      f.get("workload")
    }, through autopar op by op and captured (the chain as one step, \`capture(...)\`, replayed), raw WebGPU in a Worker on the same backend (${
      f.get("raw")
    }; "one pass per command buffer" puts the ${
      f.num("perCommandBuffer")
    } dispatches of a command buffer in one pass) and tfjs-backend-webgpu on the same adapter, taking turns for ${
      f.num("rounds")
    } rounds. Microseconds per op, medians:`,
    renderTable(["contender", ...names], rows),
    [
      `- Captured, the chain costs about what raw WebGPU costs (${
        names.map((n) => `${fixed(b(n, "ratios.capturedOverRawOnePass"), 2)}x on ${n}`).join(", ")
      } raw with one pass per command buffer, the faster raw variant): a replay is one op of the engine, and the device Worker encodes the dispatches in one pass from bind groups built at the first replay.`,
      "- Op by op, each op is still created, scheduled and encoded on its own.",
      `- The tfjs goals cannot be reached on this adapter, even captured: raw WebGPU's own floor, one pass per command buffer, is ${
        names.map((n, i) => `${floor[i]}x tfjs on ${n}`).join(" and ")
      }.`,
      `- The raw figures swing from round to round (raw one pass per dispatch, µs/op: ${
        rawRounds.join("; ")
      }).`,
    ].join("\n"),
  ].join("\n\n");
}

// --- bench/capture.ts -------------------------------------------------------------------------

interface CaptureRow {
  name: string;
  samplesPerSecond: number;
  rounds: number[];
  issueMsPerStep: number;
  issueUsPerOp: number;
  batchesPerDevicePerStep: number;
}

interface CaptureSetup {
  setup: string;
  opsPerStep: number;
  rows: CaptureRow[];
}

function captureTable(f: BenchFile): string {
  const rows = (f.list("results") as CaptureSetup[]).flatMap((s) =>
    s.rows.map((r, i) => [
      i === 0 ? `${s.setup} (${s.opsPerStep})` : "",
      r.name,
      num(r.samplesPerSecond),
      `${fixed(r.issueMsPerStep, 2)} ms`,
      `${fixed(r.issueUsPerOp, 1)} µs`,
      String(r.batchesPerDevicePerStep),
    ])
  );
  return renderTable([
    "setup (ops per step)",
    "way",
    "samples/s",
    "issuing a step (main thread)",
    "per op",
    "batches per device per step",
  ], rows);
}

function captureRuns(f: BenchFile): string {
  return runLine({
    command: `deno run -A bench/capture.ts --batch ${f.num("batch")}`,
    file: f.file,
    date: f.get("date"),
    adapter: f.get("adapter"),
    cores: f.get("cores"),
    notes: [`backend ${f.get("backend")}`],
  });
}

function capture([f, f64]: BenchFile[]): string {
  const setups = f.list("results") as CaptureSetup[];
  const row = (s: CaptureSetup, name: string) => {
    const r = s.rows.find((r) => r.name === name);
    if (r === undefined) throw new Error(`Cannot find "${name}" of ${s.setup} in ${f.file}`);
    return r;
  };
  const segments = setups.map((s) => row(s, "replayed in segments"));
  const goalUs = f.num("goals.replayedIssueUsPerOp");
  const worstUs = Math.max(...segments.map((r) => r.issueUsPerOp));
  const spreads = setups.flatMap((s) =>
    s.rows.map((r) => Math.max(...r.rounds) / Math.min(...r.rounds))
  );
  const scale = f.get("twoDevicesNoExchangeOverOne") as Record<string, number>;
  const scaleGoal = f.num("goals.twoDevicesNoExchangeOverOne");
  const two64 = (f64.list("results") as CaptureSetup[]).find((s) => s.setup === "two devices");
  if (two64 === undefined) throw new Error(`Cannot find "two devices" in ${f64.file}`);
  const anew64 = row(two64, "step run anew").samplesPerSecond;
  const seg64 = row(two64, "replayed in segments").samplesPerSecond;
  const op64 = row(two64, "replayed op by op").samplesPerSecond;
  return [
    captureRuns(f),
    `The MLP's training step (batch ${
      f.num("batch")
    }) run anew, replayed op by op (\`capture(fn, { segments: false })\`) and replayed in device segments (the default), taking turns for ${
      f.num("rounds")
    } rounds of ${
      f.num("batchesPerRound")
    } batches, medians; on one device, on two with \`DataParallel\`, and on two whose replicas never exchange gradients. Replaying in segments, the main thread makes one engine op per segment (forward, backward and the optimizer on each device) plus the step's copies and host ops.`,
    captureTable(f),
    [
      `- **A replayed MLP step spends at most ${goalUs} µs of main-thread CPU per op: ${
        met(worstUs <= goalUs)
      }**, ${
        segments.map((r, i) => `${fixed(r.issueUsPerOp, 1)} µs ${setups[i].setup}`).join(", ")
      }.`,
      "- **One command buffer per device per replay on one device**: a replayed step is one batch of uploads and segments (tests/capture/segments_test.ts checks it). With `DataParallel` over two, the optimizer's segment needs the gradients averaged on the host, so a replay is at least two batches per device.",
      `- Samples per second hardly move between the ways: the rounds within this run range over ${
        range(spreads, (x) => `${fixed(x, 1)}x`)
      } (fastest over slowest round).`,
      `- **Two devices with no gradient traffic ≥ ${scaleGoal}x one device: ${
        met(Object.values(scale).every((x) => x >= scaleGoal))
      }**: ${
        Object.entries(scale).map(([k, v]) => `${fixed(v, 2)} ${k}`).join(", ")
      }. On these cores the main thread and the Workers take their time from the devices' llvmpipe threads, and a replay needs less of it.`,
    ].join("\n"),
    `At batch ${
      f64.num("batch")
    }, \`deno task train\`'s, a step computes less and replaying pays more: on two devices ${
      num(seg64)
    } samples/s replayed in segments against ${num(anew64)} run anew (${
      fixed(seg64 / anew64, 2)
    }x), ${num(op64)} replayed op by op.`,
    captureRuns(f64),
    captureTable(f64),
  ].join("\n\n");
}

// --- bench/mlp.ts -----------------------------------------------------------------------------

const MLP_ROWS: [string, string, string?][] = [
  ["host only", "host"],
  ["tfjs-backend-webgpu, one device, tfjs's own gradients", "tfjsWebgpu"],
  ["one device, synchronous SGD", "oneDevice"],
  ["two devices, synchronous SGD", "twoDevices", "twoOverOne"],
  ["one device, staleness 1", "oneDeviceStale"],
  ["two devices, staleness 1", "twoDevicesStale", "twoOverOneStale"],
  [
    "one device, no gradient traffic (`exchange: false`: each replica keeps its gradients)",
    "oneDeviceNoTraffic",
  ],
  ["two devices, no gradient traffic", "twoDevicesNoTraffic", "twoOverOneNoTraffic"],
  ["one device, hand-written gradients (bench/manual_mlp.ts)", "oneDeviceHandWritten"],
  ["two devices, hand-written gradients", "twoDevicesHandWritten", "handWrittenTwoOverOne"],
];

function mlp([f]: BenchFile[]): string {
  const sps = (k: string) => f.num(`samplesPerSecond.${k}`);
  const twoOverOne = (k?: string) =>
    k === undefined
      ? ""
      : k === "handWrittenTwoOverOne"
      ? fixed(sps("twoDevicesHandWritten") / sps("oneDeviceHandWritten"), 2)
      : fixed(f.num(k), 2);
  const scaling = f.list("scaling").map((s) => [
    String(field(s, "batch", f.file)),
    fixed(field(s, "synchronous.twoOverOne", f.file), 2),
    fixed(field(s, "staleness1.twoOverOne", f.file), 2),
  ]);
  const ag = (k: string) => f.num(`autogradOverHandWritten.${k}`);
  const agGoal = f.num("goals.autogradOverHandWritten");
  const acc = (k: string) => f.num(`testAccuracy.${k}.accuracy`);
  const accGoal = f.num("goals.testAccuracy");
  return [
    runLine({
      command: "deno run -A bench/mlp.ts",
      file: f.file,
      date: f.get("date"),
      adapter: f.get("adapter"),
      cores: f.get("cores"),
      notes: [threads(f.get("threadsPerDevice"))],
    }),
    `The chapter's MLP (784 -> 256 -> 10) on MNIST, samples per second, all in one process on the same adapter, trained as \`deno task train\` trains it: \`Linear\` and \`ReLU\` layers, autograd, SGD and \`DataParallel\`. The configurations take turns, ${
      f.num("rounds")
    } rounds at batch ${
      f.num("batch")
    }, and the figures are medians; no trace is recorded while they are timed.`,
    renderTable(
      [`configuration (batch ${f.num("batch")})`, "samples/s", "two over one"],
      MLP_ROWS.map(([label, key, ratio]) => [label, num(sps(key)), twoOverOne(ratio)]),
    ),
    "Two devices over one, same algorithm, by batch (shorter races of their own):",
    renderTable(["batch", "synchronous", "staleness 1"], scaling),
    [
      `- **What autograd costs: samples/s within ${
        percent(1 - agGoal)
      } of the hand-written trainer: ${
        met(ag("oneDevice") >= agGoal && ag("twoDevices") >= agGoal)
      }** in this run: autograd, the layers and \`DataParallel\` ran at ${
        fixed(ag("oneDevice"), 2)
      }x the hand-written gradients on one device and ${
        fixed(ag("twoDevices"), 2)
      }x on two. The ratio is noisy from run to run; the hand-written trainer is kept in bench/manual_mlp.ts for this comparison only.`,
      `- **Two devices against one at batch ${f.num("batch")}: goal ${f.num("goals.twoOverOne")}, ${
        met(f.num("twoOverOne") >= f.num("goals.twoOverOne"))
      }** (${
        fixed(f.num("twoOverOne"), 2)
      }). The no-traffic lines are the ceiling: two devices doing a data-parallel step's work with no gradient ever leaving them ran ${
        fixed(f.num("twoOverOneNoTraffic"), 2)
      }x one device (captured and replayed: see [Capture and replay](#capture-and-replay)). On these cores the host work (the engine, the Workers, the WebGPU implementation) competes with the devices' llvmpipe threads, while one device leaves a core free for it.`,
      `- Below the ceiling, the gradients' round trip through the host costs the rest. The gradients are exchanged in buckets as backward produces them; ${
        percent(f.num("gradientTrafficHidden.synchronous"))
      } of the time gradients were in flight, some device was computing (${
        percent(f.num("gradientTrafficHidden.staleness1"))
      } with staleness 1). The round trip is fixed per step, so the ratio grows with the batch.`,
      `- Two devices against tfjs: ${fixed(f.num("twoOverTfjs"), 2)} (goal ${
        f.num("goals.twoOverTfjs")
      }, ${
        met(f.num("twoOverTfjs") >= f.num("goals.twoOverTfjs"))
      }). tfjs trains the same model with its own gradients (\`optimizer.minimize\`): its ES modules' gradient registry does not load under Deno (extensionless imports), but its CommonJS bundles do, and share one tfjs-core. tfjs's test accuracy after 3 epochs: ${
        percent(f.num("tfjsTestAccuracyAfter3Epochs"), 2)
      }.`,
      `- **Test accuracy after ${f.num("testAccuracy.synchronous.epochs")} epochs on ${
        f.num("testAccuracy.synchronous.devices")
      } devices ≥ ${percent(accGoal)}: ${
        met(acc("synchronous") >= accGoal && acc("staleness1") >= accGoal)
      }**, with \`deno task train\`'s settings (batch ${
        f.num("testAccuracy.synchronous.batch")
      }, lr ${f.num("testAccuracy.synchronous.lr")}): ${
        percent(acc("synchronous"), 2)
      } synchronous and ${percent(acc("staleness1"), 2)} with staleness 1, at ${
        num(f.num("testAccuracy.synchronous.samplesPerSecond"))
      } and ${
        num(f.num("testAccuracy.staleness1.samplesPerSecond"))
      } samples per second. The layers start from PyTorch's default initialisation (uniform in ±1/sqrt(fan-in)).`,
      "- `Linear` stores its weight `[out, in]`, like PyTorch's, and autograd's rule for `x W^T` computes `dW = gy^T x`: on llvmpipe that form is much faster than `h^T dz2` with 10 columns.",
    ].join("\n"),
  ].join("\n\n");
}

// --- bench/memory.ts --------------------------------------------------------------------------

function memory([f]: BenchFile[]): string {
  const goal = f.num("goal.growthFromStep100");
  const rows = ["uncaptured", "captured"].flatMap((way) =>
    f.list(`${way}.samples`).map((s, i) => [
      i === 0 ? way : "",
      fixed(field(s, "step", f.file), 0),
      fixed(field(s, "rssMiB", f.file), 1),
      fixed(field(s, "heapMiB", f.file), 1),
      String(field(s, "deviceBuffers", f.file)),
      fixed(finite(field(s, "deviceBytes", f.file)) / 2 ** 20, 3),
      String(field(s, "hostValues", f.file)),
    ])
  );
  const growth = (way: string, k: string) => f.num(`${way}.growthFromStep100.${k}`);
  const ok = ["uncaptured", "captured"].every((w) =>
    ["rss", "heap", "deviceBytes"].every((k) => growth(w, k) <= goal)
  );
  return [
    runLine({
      command: "deno run -A bench/memory.ts",
      file: f.file,
      date: f.get("date"),
      adapter: f.get("adapter"),
      cores: f.get("cores"),
    }),
    `The chapter's MLP (batch ${f.num("batch")}) trained for ${
      fixed(f.num("steps"), 0)
    } steps on one device, uncaptured and captured, sampled after a collection:`,
    renderTable([
      "way",
      "step",
      "RSS (MiB)",
      "heap (MiB)",
      "device buffers",
      "device memory (MiB)",
      "host values",
    ], rows),
    `**Growth from the first sample ≤ ${percent(goal)}: ${met(ok)}**: RSS ${
      percent(growth("uncaptured", "rss"), 1)
    } uncaptured and ${percent(growth("captured", "rss"), 1)} captured, the heap ${
      percent(growth("uncaptured", "heap"), 1)
    } and ${percent(growth("captured", "heap"), 1)}, device memory ${
      percent(growth("uncaptured", "deviceBytes"), 1)
    } and ${
      percent(growth("captured", "deviceBytes"), 1)
    }. \`tests/train/memory_test.ts\` holds training to the same bound.`,
  ].join("\n\n");
}

// --- bench/trace.ts ---------------------------------------------------------------------------

function trace([f]: BenchFile[]): string {
  const row = (label: string, key: string, goal?: number) => {
    const r = f.num(`${key}.ratio.timestamps`);
    return [
      label,
      fixed(f.num(`${key}.median.off`), 3),
      fixed(f.num(`${key}.median.timestamps`), 3),
      fixed(f.num(`${key}.median.noTimestamps`), 3),
      `${fixed(r, 2)}x` + (goal === undefined ? "" : ` (goal ≤ ${goal}x: ${met(r <= goal)})`),
      `${fixed(f.num(`${key}.ratio.noTimestamps`), 2)}x`,
    ];
  };
  return [
    runLine({
      command: "deno run -A bench/trace.ts",
      file: f.file,
      date: f.get("date"),
      adapter: f.get("hardware.adapter"),
      cores: f.get("hardware.cores"),
      notes: [threads(f.get("hardware.threadsPerDevice"))],
    }),
    `"off": ${f.get("modes.off")}; "timestamps": ${f.get("modes.timestamps")}; "no timestamps": ${
      f.get("modes.noTimestamps")
    }. Seconds are medians; the ratios over "off" are medians of per-repetition ratios.`,
    renderTable(
      [
        "workload",
        "off (s)",
        "timestamps (s)",
        "no timestamps (s)",
        "timestamps/off",
        "no timestamps/off",
      ],
      [
        row(
          `${fixed(f.num("smallOps.workload.ops"), 0)} small ops (${
            f.get("smallOps.workload.op")
          })`,
          "smallOps",
        ),
        row(
          `the chapter's workload (${f.num("chapter.workload.iters")} products of ${
            f.num("chapter.workload.size")
          }x${f.num("chapter.workload.size")})`,
          "chapter",
          f.num("goals.chapterTimestampsRatio"),
        ),
      ],
    ),
    "Timed ops take a compute pass each (for their timestamps), untimed ones share the batch's pass, so timestamps cost most where the ops are small.",
  ].join("\n\n");
}

// --- bench/dashboard.ts -----------------------------------------------------------------------

function dashboard([f]: BenchFile[]): string {
  const rows = f.list("results").map((r) => [
    String(field(r, "workload", f.file)),
    String(field(r, "reps", f.file)),
    fixed(field(r, "eventsPerRun", f.file), 0),
    fixed(field(r, "medianSeconds.noClient", f.file), 3),
    fixed(field(r, "medianSeconds.stalledClient", f.file), 3),
    fixed(field(r, "ratio", f.file), 2),
    String(field(r, "droppedBatches", f.file)),
  ]);
  return [
    runLine({
      command: "deno run -A bench/dashboard.ts",
      file: f.file,
      adapter: f.get("adapter"),
      notes: [`devices ${(f.list("devices") as string[]).join(" and ")}`],
    }),
    `The ${f.get("note")} (goal: ${
      f.get("goal.ratio")
    }). A slow or vanished client never holds the engine back: each client reads a bounded shared history from its own position, and what it misses is counted.`,
    renderTable([
      "workload",
      "runs",
      "events per run",
      "no client (s)",
      "stalled client (s)",
      "ratio",
      "dropped batches",
    ], rows),
  ].join("\n\n");
}

// --- bench/matmul.ts --------------------------------------------------------------------------

function matmul([f]: BenchFile[]): string {
  const t = (k: string) => f.num(`tiling.${k}`);
  const rows = f.list("rows").map((r) => [
    String(field(r, "size", f.file)),
    `${fixed(field(r, "matmul", f.file), 1)} GFLOP/s`,
    `${fixed(field(r, "reference", f.file), 1)} GFLOP/s`,
    `${fixed(field(r, "ratio", f.file), 2)}x`,
    String(field(r, "reps", f.file)),
  ]);
  const variants = f.list("variants").map((v) => [
    String(field(v, "shape", f.file)),
    `\`${field(v, "variant", f.file)}\``,
    `${fixed(field(v, "gflops", f.file), 1)} GFLOP/s`,
  ]);
  return [
    runLine({
      command: "deno run -A bench/matmul.ts",
      file: f.file,
      date: f.get("date"),
      adapter: f.get("adapter"),
      notes: [`LP_NUM_THREADS ${f.get("lpNumThreads")}`, `timed with ${f.get("timing")}`],
    }),
    `The matmul kernel (tiling \`${t("tm")}x${t("tn")}@${t("wx")}x${
      t("wy")
    }\`) against a reference register-blocked kernel (4x4 outputs per invocation, vec4 loads, no shared memory), side by side in one run, on Deno's WebGPU on the main thread.`,
    renderTable(["size", "autopar matmul", "reference", "ratio", "repetitions"], rows),
    "Other shapes of 512 and 511, with the kernel variant each one ran (transposed operands are read in place):",
    renderTable(["shape", "variant", "autopar matmul"], variants),
  ].join("\n\n");
}

/** The report's sections, in order. A JSON file none of them reads gets a generic section. */
export const SECTIONS: SectionSpec[] = [
  { title: "Two devices at once", files: ["two_devices.json"], render: twoDevices },
  { title: "Running and copying at once", files: ["overlap.json"], render: overlap },
  {
    title: "Both backends side by side",
    files: ["backends.json", "exit_runs.json"],
    render: backends,
  },
  { title: "One small op's path", files: ["op_profile.json"], render: opProfile },
  { title: "Small ops against raw WebGPU and tfjs", files: ["small_ops.json"], render: smallOps },
  { title: "Capture and replay", files: ["capture.json", "capture_batch64.json"], render: capture },
  { title: "Kernel fusion in captured steps", files: ["fusion.json"], render: fusion },
  {
    title: "Against the commit before the redesign",
    files: ["compare_commits.json"],
    render: compareCommits,
  },
  { title: "Training the MLP", files: ["mlp.json"], render: mlp },
  { title: "Across processes on NATS", files: ["distributed.json"], render: distributed },
  { title: "Memory over time", files: ["memory.json"], render: memory },
  { title: "What tracing costs", files: ["trace.json"], render: trace },
  { title: "The dashboard with a stalled client", files: ["dashboard.json"], render: dashboard },
  { title: "The matmul kernel", files: ["matmul.json"], render: matmul },
];

/**
 * A section for a JSON file no template reads: its scalar fields, two levels deep, as a table.
 * It keeps a new benchmark's figures in the report until it gets a template of its own.
 */
export function genericSection(f: BenchFile): string {
  const rows: string[][] = [];
  const walk = (v: unknown, path: string, depth: number) => {
    if (v === null || typeof v !== "object") {
      rows.push([`\`${path}\``, typeof v === "number" ? num(v) : String(v)]);
    } else if (!Array.isArray(v) && depth < 2) {
      for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k, depth + 1);
    }
  };
  walk(f.json, "", 0);
  const name = f.file.replace(/^.*\//, "").replace(/\.json$/, "");
  return [
    runLine({
      command: `deno run -A bench/${name}.ts`,
      file: f.file,
      date: f.has("date") ? f.get("date") : undefined,
    }),
    "This file has no template in tools/report_sections.ts yet; its fields as they are:",
    renderTable(["field", "value"], rows),
  ].join("\n\n");
}
