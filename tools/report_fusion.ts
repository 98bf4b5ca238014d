/**
 * The section of docs/performance.md on kernel fusion in captured steps, from
 * bench/results/fusion.json (bench/fusion.ts). Every number is read from the JSON.
 *
 * @module
 */
import { BenchFile, fixed, num, renderTable, runLine } from "./report_format.ts";

const met = (ok: boolean) => ok ? "met" : "missed";

/** The fusion section's body. */
export function fusion([f]: BenchFile[]): string {
  const names = Object.keys(f.get("backends") as Record<string, unknown>);
  const b = (n: string, path: string) => f.num(`backends.${n}.${path}`);
  const goal = (k: string) => f.num(`goals.${k}`);
  const chainRatio = (n: string) => b(n, "chain.usPerOp.fused") / b(n, "chain.usPerOp.tfjs");
  // tfjs's own steady figure, or where it sat the steady run out, its time per op without
  // its readback.
  const tfjsSteady = (n: string) => {
    const own = f.get(`backends.${n}.chainSteady.usPerOp`) as Record<string, number>;
    return own.tfjs ?? b(n, "chain.usPerOp.tfjsWithoutReadback");
  };
  const steadyRatio = (n: string) => b(n, "chainSteady.usPerOp.fused") / tfjsSteady(n);
  const steady = fixed(b(names[0], "chainSteady.chains"), 0);
  const kernels = (n: string, path: string) =>
    `${fixed(b(n, `${path}.fused`), 0)} / ${fixed(b(n, `${path}.unfused`), 0)}`;
  const rows: string[][] = [
    ...["fused", "unfused", "tfjs"].map((c) => [
      `chain of 1,000 adds, µs per op, ${c}`,
      ...names.map((n) => num(b(n, `chain.usPerOp.${c}`))),
    ]),
    [
      `  fused / tfjs (goal ≤ ${goal("chainFusedOverTfjs")})`,
      ...names.map((n) =>
        `${fixed(chainRatio(n), 3)} ${met(chainRatio(n) <= goal("chainFusedOverTfjs"))}`
      ),
    ],
    ["  kernels, fused / unfused", ...names.map((n) => kernels(n, "chain.kernels"))],
    [
      "  tfjs without its readback, µs per op",
      ...names.map((n) => num(b(n, "chain.usPerOp.tfjsWithoutReadback"))),
    ],
    ...["fused", "unfused", "tfjs"].map((c) => [
      `${steady} chains a readback, µs per op, ${c}`,
      ...names.map((n) => {
        const v = (f.get(`backends.${n}.chainSteady.usPerOp`) as Record<string, number>)[c];
        return v === undefined ? "-" : num(v);
      }),
    ]),
    [
      `  fused / tfjs's own (goal ≤ ${goal("chainFusedOverTfjs")})`,
      ...names.map((n) =>
        `${fixed(steadyRatio(n), 3)} ${met(steadyRatio(n) <= goal("chainFusedOverTfjs"))}`
      ),
    ],
    ...["fused", "unfused", "tfjs"].map((c) => [
      `gelu-like chain on 1M floats, ms, ${c}`,
      ...names.map((n) => num(b(n, `gelu.msPerChain.${c}`))),
    ]),
    ["  kernels, fused / unfused", ...names.map((n) => kernels(n, "gelu.kernels"))],
  ];
  for (const opt of ["sgd", "adam"]) {
    const label = opt === "sgd" ? "SGD" : "Adam";
    for (const w of ["anew", "unfused", "fused"]) {
      const way = w === "anew" ? "run anew" : `captured ${w}`;
      rows.push([
        `MLP step with ${label}, samples/s, ${way}`,
        ...names.map((n) => num(b(n, `mlp.${opt}.samplesPerSecond.${w}`))),
      ]);
    }
    rows.push([
      `  kernels per step, fused / unfused`,
      ...names.map((n) => kernels(n, `mlp.${opt}.kernelsPerStep`)),
    ]);
    const speed = (n: string) => b(n, `mlp.${opt}.fusedOverUnfusedSpeed`);
    const kernelRatio = (n: string) => b(n, `mlp.${opt}.fusedOverUnfusedKernels`);
    if (opt === "adam") {
      rows.push([
        `  kernels fused / unfused (goal ≤ ${goal("adamKernelsFusedOverUnfused")})`,
        ...names.map((n) =>
          `${fixed(kernelRatio(n), 2)} ${
            met(kernelRatio(n) <= goal("adamKernelsFusedOverUnfused"))
          }`
        ),
      ]);
    }
    rows.push([
      `  samples/s fused / unfused${opt === "adam" ? ` (goal ≥ ${goal("adamSpeedup")})` : ""}`,
      ...names.map((n) =>
        `${fixed(speed(n), 2)}${opt === "adam" ? ` ${met(speed(n) >= goal("adamSpeedup"))}` : ""}`
      ),
    ]);
  }
  return [
    runLine({
      command: "deno run -A bench/fusion.ts",
      file: f.file,
      date: f.get("date"),
      adapter: Object.fromEntries(names.map((n) => [n, f.get(`backends.${n}.adapter`)])),
      cores: f.get("cores"),
      notes: [`commit ${String(f.get("commit")).slice(0, 7)}`],
    }),
    `Captured steps fuse each device segment's elementwise kernels into generated kernels (lib/capture/fuse.ts); \`capture(fn, { fuse: false })\` turns it off. Side by side in one run per backend, taking turns for ${
      f.num("rounds")
    } rounds, medians: the ${f.get("workloads.chain")}; a gelu-like chain (${
      f.get("workloads.gelu")
    }); the ${
      f.get("workloads.mlp")
    }. tfjs-backend-webgpu 4.22 runs on the same runtime and adapter.`,
    renderTable(["", ...names], rows),
    [
      "- The kernel counts are deterministic (tests/capture/fused_gpu_test.ts asserts the MLP's). The timings are this machine's, a software rasterizer on its CPU cores; on a real GPU each dispatch costs driver time, so the kernel count weighs more.",
      `- The fused chain is one kernel; what is left of its time is the replay and the readback. With one readback a chain, the tfjs goal is ${
        names.map((n) => `${met(chainRatio(n) <= goal("chainFusedOverTfjs"))} on ${n}`).join(", ")
      }: on Deno's backend every \`mapAsync\` sleeps 10 ms in Deno's map loop before it resolves (\`ext/webgpu/buffer.rs\`; see [Both backends side by side](#both-backends-side-by-side)), whatever the work, so the fused chain's ${
        num(b("deno", "chain.usPerOp.fused"))
      } µs per op there are mostly that wait, spread over 1,000 ops. With ${steady} chains a readback (the contenders queue ${steady} chains and read the last, as a training loop reads rarely), the wait is shared and the goal is ${
        names.map((n) => `${met(steadyRatio(n) <= goal("chainFusedOverTfjs"))} on ${n}`).join(", ")
      }. tfjs sits the steady run out on Deno's backend: there its memory grows about 8 KB an op and Deno segfaults after some 70,000 of its ops (\`deno run -A bench/tfjs_deno_leak.ts\`, tfjs alone: its 10-chain runs crashed Deno in the seventh); its own figure there is its time per op without its readback, (chain − one add) / 999, both measured with one readback.`,
      "- A matmul takes the elementwise ops on its product (a layer's bias and activation) as an epilogue; a sum, mean, maximum, softmax, log-softmax or log-sum-exp takes the ops that make its input as a prologue (the gelu-like chain and its sum are one kernel), or else those that read its result as an epilogue. A `detach()` or reshape whose copy only the segment reads is no kernel, and independent groups of any lengths are one dispatch (SGD's four updates are one kernel). The loss takes a prologue too (its labels read as they are). A reduction takes a prologue and an epilogue at once (an RMS is one kernel). The operands of the backward's matmuls take no prologue.",
      "- Fused results equal the unfused ones to the bit: constants are uniforms, as in the unfused kernels, and each member's value passes a select on a uniform the compiler cannot see through, so no shader compiler rewrites arithmetic across members.",
    ].join("\n"),
  ].join("\n\n");
}

const METRICS: [key: string, label: string][] = [
  ["smallOpsAutopar", "1,000 small adds, op by op"],
  ["smallOpsCaptured", "1,000 small adds, captured"],
  ["mlpAnew", "MLP training step, run anew"],
  ["mlpCaptured", "MLP training step, captured"],
];

/** The section comparing the current tree with the commit before the redesign (issue 22). */
export function compareCommits([f]: BenchFile[]): string {
  const s = (k: string, path: string) => f.num(`summary.${k}.${path}`);
  const rows = METRICS.map(([k, label]) => [
    `${label} (${f.get(`summary.${k}.unit`)})`,
    num(s(k, "medianBase")),
    num(s(k, "medianCurrent")),
    fixed(s(k, "medianRatio"), 3),
    (f.list(`summary.${k}.ratios`) as number[]).map((r) => fixed(r, 2)).join(", "),
  ]);
  return [
    runLine({
      command: "deno run -A bench/compare_commits.ts",
      file: f.file,
      date: f.get("date"),
      cores: f.get("cores"),
      notes: [
        `base ${String(f.get("base.commit")).slice(0, 7)}`,
        `current ${String(f.get("current.commit")).slice(0, 7)}`,
        `backend ${f.get("backend")}`,
      ],
    }),
    `The commit before the redesign of issue 22 and the current tree, in worktrees side by side, taking turns (which goes first alternates) for ${
      f.num("rounds")
    } rounds: ${f.get("smallOps")}; ${f.get("mlp")}.`,
    renderTable(["metric", "base", "current", "median ratio", "per round"], rows),
    "- The ratio is current over base (µs per op: lower is better; samples/s: higher is better). The captured figures of the current tree include kernel fusion, which the base does not have.",
  ].join("\n\n");
}
