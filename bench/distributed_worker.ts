// One rank of bench/distributed.ts, run by the launcher. `--mode allreduce`: for each size,
// times autopar's allReduce on a host Float32Array (ProcessGroup) and on a host tensor, and
// the raw NATS transfer of the bytes a ring moves (no reduction): "blast" publishes every
// chunk of every ring step at once, "forward" forwards each chunk on as it arrives (the
// ring's dependency chain). `--mode mlp`: the chapter's MLP under DistributedDataParallel.
// Prints one JSON line with its times (ms) or samples/s.
//
//   deno task launch --nproc 2 bench/distributed_worker.ts --mode allreduce --sizes 1024,4096
import { parseArgs } from "node:util";
import { connect } from "npm:@nats-io/transport-node@3.4.0";
import {
  allReduce,
  barrier,
  cpu,
  destroyProcessGroup,
  DistributedDataParallel,
  fromArray,
  getRank,
  getWorldSize,
  initProcessGroup,
  SGD,
  synchronize,
  tryGpu,
} from "../mod.ts";
import { defaultGroup } from "../lib/distributed/collectives.ts";
import { mlp } from "../lib/train/trainer.ts";
import { loadMnist, PIXELS } from "../lib/train/mnist.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    mode: { type: "string", default: "allreduce" },
    sizes: { type: "string", default: "1024,4194304" },
    reps: { type: "string", default: "5" },
    "chunk-bytes": { type: "string", default: String(1 << 20) }, // capped by max_payload
    device: { type: "string", default: "gpu" },
    batch: { type: "string", default: "256" },
    steps: { type: "string", default: "20" },
    rounds: { type: "string", default: "3" },
    lr: { type: "string", default: "0.5" },
    "bucket-bytes": { type: "string", default: "262144" },
  },
});

await initProcessGroup({ timeoutMs: 120_000 });
const rank = getRank(), world = getWorldSize();

if (values.mode === "mlp") {
  const device = values.device === "gpu" ? await tryGpu() : cpu();
  const batch = Number(values.batch), steps = Number(values.steps);
  const { train } = loadMnist();
  const model = mlp({ seed: 1 }).to(device);
  const ddp = new DistributedDataParallel(model, { bucketBytes: Number(values["bucket-bytes"]) });
  const opt = new SGD(ddp.parameters(), { lr: Number(values.lr) });
  let next = rank * batch; // rank-strided batches of the training set
  const step = () => {
    if (next + batch > train.count) next = rank * batch;
    const x = fromArray(train.images.subarray(next * PIXELS, (next + batch) * PIXELS), [
      batch,
      PIXELS,
    ], { device });
    const y = fromArray(train.labels.subarray(next, next + batch), [batch], { device });
    next += world * batch;
    opt.zeroGrad();
    ddp.forward(x).crossEntropy(y).backward();
    opt.step();
    x.dispose();
    y.dispose();
  };
  for (let i = 0; i < 3; i++) step(); // compiles kernels
  await synchronize();
  const seconds: number[] = [];
  for (let r = 0; r < Number(values.rounds); r++) {
    await barrier();
    const t = performance.now();
    for (let i = 0; i < steps; i++) step();
    await synchronize();
    seconds.push((performance.now() - t) / 1000);
  }
  await destroyProcessGroup();
  console.log(JSON.stringify({ rank, mode: "mlp", batch, steps, seconds }));
  Deno.exit(0);
}

const pg = defaultGroup("benchmark allReduce");
const sizes = values.sizes.split(",").map(Number);
// One count for every size, or one per size.
const repsOf = values.reps.split(",").map(Number);
const repsFor = (i: number) => repsOf[Math.min(i, repsOf.length - 1)];
const chunkBytes = Math.min(Number(values["chunk-bytes"]), pg.maxPayload - 16);
const chunkFloats = Math.floor(chunkBytes / 4);

// The raw transfer, on a connection of its own to the same server.
const nc = await connect({ servers: pg.url, noEcho: true, name: `bench raw rank ${rank}` });
const subject = (r: number) => `bench.raw.${pg.job}.${r}`;
const next = subject((rank + 1) % world);
// Chunks of a transfer this rank has not started yet wait here (the sender may be ahead).
const early = new Map<number, Uint8Array[]>();
let onRaw: ((data: Uint8Array) => void) | undefined, current = 0;
nc.subscribe(subject(rank), {
  callback: (_err, m) => {
    const t = new DataView(m.data.buffer, m.data.byteOffset, 4).getUint32(0, true);
    if (t === current && onRaw) onRaw(m.data);
    else if (t > current) early.set(t, [...(early.get(t) ?? []), new Uint8Array(m.data)]);
  },
});

/** Chunks of the ring's segments: the same split as the process group's. */
function ringChunks(n: number): [number, number][][] {
  return Array.from({ length: world }, (_, c) => {
    const a0 = Math.floor((c * n) / world), len = Math.floor(((c + 1) * n) / world) - a0;
    const count = Math.ceil(len / chunkFloats);
    return Array.from({ length: count }, (_, k): [number, number] => [
      a0 + Math.floor((k * len) / count),
      a0 + Math.floor(((k + 1) * len) / count),
    ]);
  });
}

let tag = 0;
/** Moves the ring's 2(N-1) steps of segments to the next rank; `forward`: chunk by chunk. */
function raw(buf: Float32Array, forward: boolean): Promise<void> {
  const steps = 2 * world - 2;
  const cs = ringChunks(buf.length);
  const seg = (s: number) => (((rank - s) % world) + world) % world;
  const me = ++tag;
  const packet = (s: number, k: number, [a, b]: [number, number]) => {
    const p = new Uint8Array(12 + (b - a) * 4);
    const v = new DataView(p.buffer);
    v.setUint32(0, me, true);
    v.setUint32(4, s, true);
    v.setUint32(8, k, true);
    p.set(new Uint8Array(buf.buffer, buf.byteOffset + a * 4, (b - a) * 4), 12);
    return p;
  };
  let expected = 0;
  for (let s = 0; s < steps; s++) expected += cs[seg(s + 1)].length;
  return new Promise((resolve) => {
    let got = 0;
    onRaw = (data) => {
      const s = new DataView(data.buffer, data.byteOffset, 12).getUint32(4, true);
      if (forward && s + 1 < steps) {
        const p = new Uint8Array(data); // what arrived goes on, as the ring's segment would
        new DataView(p.buffer).setUint32(4, s + 1, true);
        nc.publish(next, p);
      }
      if (++got === expected) resolve();
    };
    current = me;
    for (const data of early.get(me) ?? []) onRaw(data);
    early.delete(me);
    const first = forward ? 1 : steps;
    for (let s = 0; s < first; s++) {
      cs[seg(s)].forEach((c, k) => nc.publish(next, packet(s, k, c)));
    }
  });
}

const variants: Record<string, (buf: Float32Array) => Promise<unknown>> = {
  processGroup: (buf) => pg.allReduce(buf, [buf.length], "sum"),
  // The ring the process group used before the direct reduce-scatter (every rank alike).
  processGroupRing: async (buf) => {
    Deno.env.set("AUTOPAR_ALLREDUCE", "ring");
    try {
      await pg.allReduce(buf, [buf.length], "sum");
    } finally {
      Deno.env.delete("AUTOPAR_ALLREDUCE");
    }
  },
  tensor: async (buf) => {
    const t = fromArray(buf, [buf.length]);
    await allReduce(t, { op: "sum" });
    await t.data();
    t.dispose();
  },
  natsBlast: (buf) => raw(buf, false),
  natsForward: (buf) => raw(buf, true),
};
const times: Record<string, Record<string, number[]>> = {};
let exact = true;
for (const [index, bytes] of sizes.entries()) {
  const n = Math.max(1, Math.floor(bytes / 4));
  const row: Record<string, number[]> = {};
  const fill = (buf: Float32Array) => {
    for (let i = 0; i < n; i++) buf[i] = ((i * 7 + rank * 13) % 101) / 8; // exact in float32
  };
  const buf = new Float32Array(n);
  for (const [name, run] of Object.entries(variants)) {
    row[name] = [];
    fill(buf);
    await run(buf); // warm-up
  }
  fill(buf);
  await pg.allReduce(buf, [n], "sum");
  for (let i = 0; i < n; i++) {
    let want = 0;
    for (let r = 0; r < world; r++) want += ((i * 7 + r * 13) % 101) / 8;
    if (buf[i] !== want) exact = false;
  }
  for (let r = 0; r < repsFor(index); r++) {
    const names = Object.keys(variants);
    if (r % 2) names.reverse(); // take turns going first
    for (const name of names) {
      fill(buf);
      await pg.barrier();
      const t = performance.now();
      await variants[name](buf);
      row[name].push(performance.now() - t);
    }
  }
  times[bytes] = row;
}
await nc.drain();
await destroyProcessGroup();
console.log(
  JSON.stringify({ rank, mode: "allreduce", maxPayload: pg.maxPayload, chunkBytes, exact, times }),
);
