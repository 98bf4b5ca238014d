// tfjs-backend-webgpu 4.22 alone on Deno's WebGPU: runs of 10 chains of 1,000 adds of 1,024
// floats, one readback a run (bench/fusion.ts's steady protocol), printing the process's
// RSS after each run. On this project's build machine (llvmpipe, 2026-12-03) RSS grew by
// about 8 KB an op and Deno segfaulted during the seventh run (some 70,000 ops): the
// reason tfjs sits out bench/fusion.ts's steady run on Deno's backend. No autopar involved.
//
//   deno run -A bench/tfjs_deno_leak.ts [runs]        (exit 139: the segfault)
import type * as TF from "npm:@tensorflow/tfjs-core@4.22.0";
import { startTfjs } from "./tfjs_webgpu.ts";

const runs = Number(Deno.args[0] ?? 40);
const { tf } = await startTfjs("deno");
const x = tf.tensor1d(new Float32Array(1024).fill(0.5));
const chain = () => {
  let y: TF.Tensor = x;
  for (let i = 0; i < 1000; i++) {
    const next = tf.add(y, x);
    if (y !== x) y.dispose();
    y = next;
  }
  return y;
};
for (let r = 0; r < runs; r++) {
  let y = chain();
  for (let i = 1; i < 10; i++) {
    y.dispose();
    y = chain();
  }
  await y.data();
  y.dispose();
  console.log(`run ${r + 1}: ${(r + 1) * 10_000} ops, RSS ${Deno.memoryUsage().rss >> 20} MiB`);
}
console.log(`${runs} runs: no crash`);
Deno.exit(0);
