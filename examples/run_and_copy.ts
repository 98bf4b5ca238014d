// The chapter's "Parallel Computation and Communication", translated line by line from its
// PyTorch code, then the same with RxJS streams.
// Run: deno run -A examples/run_and_copy.ts [size] [iters]   (the chapter: 4000 50)
import { lastValueFrom, tap } from "npm:rxjs@7.8.2";
import { benchmark, copyTo, cpu, produce, rand, synchronize, type Tensor, tryGpu } from "../mod.ts";

const size = Number(Deno.args[0] ?? 256); // 4000 on a real GPU; 256 suits a software adapter
const iters = Number(Deno.args[1] ?? 50);

const device = await tryGpu(0);
const run = (x: Tensor) => Array.from({ length: iters }, () => x.mm(x));
const copy_to_cpu = (x: Tensor[], nonBlocking = false) =>
  x.map((y) => y.to(cpu(), { nonBlocking }));

const x_gpu1 = rand([size, size], { device });
copy_to_cpu(run(x_gpu1)); // Warm-up
await synchronize();

let y: Tensor[] = [];
{
  await using _ = benchmark("Run on GPU1");
  y = run(x_gpu1);
  await synchronize();
}

{
  await using _ = benchmark("Copy to CPU");
  copy_to_cpu(y);
  await synchronize();
}

{
  await using _ = benchmark("Run on GPU1 and copy to CPU");
  y = run(x_gpu1);
  copy_to_cpu(y, true);
  await synchronize();
}

// The same with streams: y[i] is emitted once computed, its copy runs while later products
// compute, and the producer waits when copies fall behind (at most 4 + 4 tensors alive).
{
  await using _ = benchmark("Run and copy, as a stream");
  await lastValueFrom(
    produce(iters, () => x_gpu1.mm(x_gpu1), { inFlight: 4 }).pipe(
      copyTo(cpu(), { concurrency: 4 }),
      tap((y_cpu) => y_cpu.dispose()),
    ),
  );
}
