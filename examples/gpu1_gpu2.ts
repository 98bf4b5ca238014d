// The chapter's "Parallel Computation on GPUs", translated line by line from its PyTorch code.
// Run: deno run -A examples/gpu1_gpu2.ts [size] [iters]   (the chapter: 4000 50)
import { benchmark, rand, synchronize, type Tensor, tryAllGpus } from "../mod.ts";

const size = Number(Deno.args[0] ?? 256); // 4000 on a real GPU; 256 suits a software adapter
const iters = Number(Deno.args[1] ?? 50);

const devices = await tryAllGpus();
if (devices.length < 2) {
  console.log(`This example needs two devices; found ${devices.length}.`);
  Deno.exit(0);
}
const run = (x: Tensor) => Array.from({ length: iters }, () => x.mm(x));

const x_gpu1 = rand([size, size], { device: devices[0] });
const x_gpu2 = rand([size, size], { device: devices[1] });

run(x_gpu1);
run(x_gpu2); // Warm-up all devices
await synchronize(devices[0]);
await synchronize(devices[1]);

{
  await using _ = benchmark("GPU1 time");
  run(x_gpu1);
  await synchronize(devices[0]);
}

{
  await using _ = benchmark("GPU2 time");
  run(x_gpu2);
  await synchronize(devices[1]);
}

{
  await using _ = benchmark("GPU1 & GPU2");
  run(x_gpu1);
  run(x_gpu2);
  await synchronize();
}
