// Where one small op's microseconds go, on each backend: a chain of 1,000 adds of 1,024
// floats (`y = y.add(x)`), timed end to end; the main thread's share (creating the ops and
// the engine's bookkeeping, until the loop returns); and the device Worker's phases
// (AUTOPAR_PROFILE: bind groups, uniforms, passes, submit, ...). Then the same chain captured
// (`capture(...)`) and replayed: end to end, the main thread's replay() call, and the Worker's
// encoding of each replayed kernel (the phase "replay"). Writes bench/results/op_profile.json.
//
//   deno run -A bench/op_profile.ts
import { capture, closeDevices, rand, synchronize, type Tensor, tryAllGpus } from "../mod.ts";
import type { PhaseTotals } from "../lib/devices/phase_clock.ts";

const OPS = 1000;
const ROUNDS = 5;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

if (Deno.args[0] === "--child") {
  const [device] = await tryAllGpus({ count: 1 });
  const x = rand([1024], { device, seed: 1 });
  const step = capture((x: Tensor) => {
    let y = x.mul(1);
    for (let i = 0; i < OPS; i++) {
      const next = y.add(x);
      y.dispose();
      y = next;
    }
    return y;
  });
  const captured = async () => {
    const t0 = performance.now();
    const y = step.replay(x);
    const enqueued = performance.now() - t0;
    await y.data();
    const total = performance.now() - t0;
    y.dispose();
    return { enqueued, total };
  };
  const chain = Deno.args[1] === "captured" ? captured : async () => {
    let y = x.mul(1);
    const t0 = performance.now();
    for (let i = 0; i < OPS; i++) {
      const next = y.add(x);
      y.dispose();
      y = next;
    }
    const enqueued = performance.now() - t0;
    await y.data();
    const total = performance.now() - t0;
    y.dispose();
    return { enqueued, total };
  };
  await chain(); // compiles the kernel (captured: runs the step)
  if (chain === captured) await chain(), await chain(); // records; defines the segment
  await synchronize();
  const runs = [];
  for (let r = 0; r < ROUNDS; r++) runs.push(await chain());
  console.log(JSON.stringify({
    backend: device.info.backend,
    mode: Deno.args[1] ?? "op by op",
    adapter: device.info.adapter,
    enqueueUsPerOp: median(runs.map((r) => r.enqueued)) * 1000 / OPS,
    totalUsPerOp: median(runs.map((r) => r.total)) * 1000 / OPS,
  }));
  await closeDevices();
  Deno.exit(0);
}

interface Profile {
  backend: string;
  mode: string;
  adapter: string;
  enqueueUsPerOp: number;
  totalUsPerOp: number;
  /** Worker µs per op by phase, over every op the Worker ran (warm-up included). */
  workerUsPerOp: Record<string, number>;
  workerBatches: number;
  workerOps: number;
  /** Captured: the Worker's µs to encode one kernel of a replayed segment. */
  workerUsPerReplayedKernel?: number;
  /** Storage buffers the pool made and reused, and bind groups cached at the end. */
  buffers: { created: number; reused: number };
  bindGroupsCached: number;
}

const results: Profile[] = [];
for (const [backend, mode] of ["dawn", "deno"].flatMap((b) => [[b, ""], [b, "captured"]])) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", import.meta.filename!, "--child", ...(mode ? [mode] : [])],
    env: { AUTOPAR_WEBGPU: backend, AUTOPAR_PROFILE: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout).trim().split("\n").pop()!;
  const line = new TextDecoder().decode(out.stderr).split("\n").find((l) =>
    l.startsWith("AUTOPAR_PROFILE ")
  );
  if (!out.success || !line) {
    console.log(`${backend}: no profile (exit ${out.code})`);
    continue;
  }
  const totals: PhaseTotals & { created: number; reused: number; bindGroups: number } = JSON
    .parse(line.slice("AUTOPAR_PROFILE ".length));
  const main = JSON.parse(stdout);
  const perOp = Object.fromEntries(
    Object.entries(totals.ms).map(([k, v]) => [k, (v * 1000) / totals.ops]),
  );
  results.push({
    ...main,
    workerUsPerOp: perOp,
    workerBatches: totals.batches,
    workerOps: totals.ops,
    workerUsPerReplayedKernel: totals.replayed > 0
      ? (totals.ms.replay * 1000) / totals.replayed
      : undefined,
    buffers: { created: totals.created, reused: totals.reused },
    bindGroupsCached: totals.bindGroups,
  });
}
for (const r of results) {
  if (r.workerUsPerReplayedKernel !== undefined) {
    // The Worker's other phases also hold the warm-up and the recording, run op by op.
    console.log(
      `${r.backend}, captured: ${r.totalUsPerOp.toFixed(1)} us/op end to end; main thread ` +
        `replay() ${r.enqueueUsPerOp.toFixed(2)} us/op; Worker encoding a replayed kernel ` +
        `${r.workerUsPerReplayedKernel.toFixed(2)} us`,
    );
    continue;
  }
  const worker = Object.values(r.workerUsPerOp).reduce((a, b) => a + b, 0);
  console.log(
    `${r.backend}: ${r.totalUsPerOp.toFixed(1)} us/op end to end; main thread enqueue ` +
      `${r.enqueueUsPerOp.toFixed(1)}; Worker busy ${worker.toFixed(1)} ` +
      `(${(r.workerOps / r.workerBatches).toFixed(1)} ops per command buffer; buffers ` +
      `${r.buffers.created} made, ${r.buffers.reused} reused; ${r.bindGroupsCached} bind groups ` +
      `cached for ${r.workerOps} ops)`,
  );
  for (const [phase, us] of Object.entries(r.workerUsPerOp).sort((a, b) => b[1] - a[1])) {
    console.log(`    ${phase.padEnd(22)} ${us.toFixed(2)} us/op`);
  }
}
await Deno.mkdir(new URL("./results/", import.meta.url), { recursive: true });
await Deno.writeTextFile(
  new URL("./results/op_profile.json", import.meta.url),
  JSON.stringify(
    { date: new Date().toISOString(), cores: navigator.hardwareConcurrency, ops: OPS, results },
    null,
    2,
  ) + "\n",
);
