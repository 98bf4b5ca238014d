"""One rank of PyTorch's own all-reduce (torch.distributed, gloo backend), for
bench/distributed.ts: for each size, a warm-up, then `reps` times a barrier and a timed
all_reduce (sum) of a float32 tensor. Prints one JSON line with its times in ms.

    python3 bench/gloo_allreduce.py --rank 0 --world 2 --port 29500 --sizes 1024,4096 --reps 5
"""

import argparse
import json
import time

import torch
import torch.distributed as dist

parser = argparse.ArgumentParser()
parser.add_argument("--rank", type=int, required=True)
parser.add_argument("--world", type=int, required=True)
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--sizes", default="1024,4194304")
parser.add_argument("--reps", default="5", help="one count, or one per size")
args = parser.parse_args()

torch.set_num_threads(1)  # the machine's cores are shared by the ranks
dist.init_process_group(
    "gloo",
    init_method=f"tcp://127.0.0.1:{args.port}",
    rank=args.rank,
    world_size=args.world,
)
times = {}
exact = True
reps = [int(r) for r in args.reps.split(",")]
for i, nbytes in enumerate(int(s) for s in args.sizes.split(",")):
    n = max(1, nbytes // 4)
    base = (torch.arange(n, dtype=torch.float32) * 7 + args.rank * 13).remainder(101) / 8
    t = base.clone()
    dist.all_reduce(t)  # warm-up
    want = sum((torch.arange(n, dtype=torch.float32) * 7 + r * 13).remainder(101) / 8
               for r in range(args.world))
    exact = exact and bool(torch.equal(t, want))
    row = []
    for _ in range(reps[min(i, len(reps) - 1)]):
        t.copy_(base)
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(t)
        row.append((time.perf_counter() - start) * 1000)
    times[str(nbytes)] = row
dist.destroy_process_group()
print(json.dumps({"rank": args.rank, "torch": torch.__version__, "exact": exact,
                  "times": times}), flush=True)
