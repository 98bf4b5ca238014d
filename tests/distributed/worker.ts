/**
 * One rank of a test job, run as a subprocess by the tests of tests/distributed/. The env
 * contract (RANK, WORLD_SIZE, AUTOPAR_NATS_URL, AUTOPAR_JOB) comes from the parent, and
 * SCENARIO picks what to do. Results are printed as `RESULT <json>` lines.
 */
import {
  allGather,
  allReduce,
  barrier,
  broadcast,
  cpu,
  destroyProcessGroup,
  type Device,
  fromArray,
  getRank,
  getWorldSize,
  initProcessGroup,
  type ReduceOp,
  tryAllGpus,
} from "../../mod.ts";

const scenario = Deno.env.get("SCENARIO") ?? "collectives";
const timeoutMs = Number(Deno.env.get("TIMEOUT_MS") ?? "60000");
const seed = Number(Deno.env.get("SEED") ?? "0");

function emit(result: Record<string, unknown>): void {
  console.log(`RESULT ${JSON.stringify(result)}`);
}

/** Rank r's input: the same function in every process, so each can compute the reference. */
export function input(r: number, n: number, s = seed): Float32Array {
  return Float32Array.from(
    { length: n },
    (_, i) => Math.sin(i * 0.37 + r * 1.3 + s) * 4 + r * 0.001 + s,
  );
}

/** FNV-1a over the bytes: equal digests mean equal bits. */
function digest(values: Float32Array): string {
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h.toString(16);
}

function reference(op: ReduceOp, n: number, worldSize: number): Float64Array {
  const xs = Array.from({ length: worldSize }, (_, r) => input(r, n));
  return Float64Array.from({ length: n }, (_, i) => {
    const v = xs.map((x) => x[i]);
    if (op === "max") return Math.max(...v);
    if (op === "min") return Math.min(...v);
    const sum = v.reduce((a, b) => a + b, 0);
    return op === "mean" ? sum / worldSize : sum;
  });
}

function maxErr(got: Float32Array, want: ArrayLike<number>): number {
  let e = 0;
  for (let i = 0; i < got.length; i++) e = Math.max(e, Math.abs(got[i] - want[i]));
  return got.length === want.length ? e : Infinity;
}

async function device(): Promise<Device> {
  if (Deno.env.get("DEVICE") !== "gpu") return cpu();
  const [gpu] = await tryAllGpus({ count: 1 });
  return gpu;
}

const SHAPES: number[][] = JSON.parse(Deno.env.get("SHAPES") ?? "[[1],[7],[3,5],[40003]]");

async function collectives(): Promise<void> {
  const dev = await device();
  const rank = getRank(), N = getWorldSize();
  emit({ check: "device", kind: dev.kind });
  for (const shape of SHAPES) {
    const n = shape.reduce((a, b) => a * b, 1);
    const mine = input(rank, n);
    for (const op of ["sum", "mean", "max", "min"] as const) {
      const t = fromArray(mine, shape, { device: dev });
      await allReduce(t, { op });
      const out = await t.data();
      emit({
        check: `allReduce ${op} [${shape}]`,
        digest: digest(out),
        err: maxErr(out, reference(op, n, N)),
        kept: t.device === dev && !t.disposed,
      });
    }
    const a = fromArray(mine, shape, { device: dev });
    const work = allReduce(a, { op: "sum", async: true });
    await work.wait();
    const aOut = await a.data();
    emit({
      check: `allReduce async [${shape}]`,
      digest: digest(aOut),
      err: maxErr(aOut, reference("sum", n, N)),
      kept: work.isCompleted(),
    });
    const twice = fromArray(mine, shape, { device: dev });
    const w1 = allReduce(twice, { async: true });
    const w2 = allReduce(twice, { async: true }); // reads the result of the first
    await Promise.all([w1.wait(), w2.wait()]);
    const twiceOut = await twice.data();
    emit({
      check: `allReduce twice async [${shape}]`,
      digest: digest(twiceOut),
      err: maxErr(twiceOut, reference("sum", n, N).map((v) => v * N)),
      kept: w1.isCompleted() && w2.isCompleted(),
    });
    const src = N - 1;
    const b = fromArray(mine, shape, { device: dev });
    await broadcast(b, src);
    const bOut = await b.data();
    emit({
      check: `broadcast [${shape}]`,
      digest: digest(bOut),
      err: maxErr(bOut, input(src, n)),
      kept: true,
    });
    const parts = await allGather(fromArray(mine, shape, { device: dev }));
    const gathered = await Promise.all(parts.map((p) => p.data()));
    emit({
      check: `allGather [${shape}]`,
      digest: digest(Float32Array.from(gathered.flatMap((g) => [...g]))),
      err: Math.max(...gathered.map((g, r) => maxErr(g, input(r, n)))),
      kept: parts.length === N && parts.every((p) => p.device === dev),
    });
  }
  await barrier();
  emit({ check: "barrier", digest: "", err: 0, kept: true });
}

async function mismatch(): Promise<void> {
  const rank = getRank();
  const t = fromArray(input(rank, 3 + (rank === 1 ? 1 : 0)), [3 + (rank === 1 ? 1 : 0)]);
  const before = await t.data();
  try {
    await allReduce(t);
    emit({ check: "mismatch", error: null });
  } catch (e) {
    const after = await t.data();
    emit({
      check: "mismatch",
      error: String((e as Error).message),
      kept: digest(after) === digest(before),
    });
  }
  const ok = fromArray([rank], [1]);
  await allReduce(ok); // the ranks agreed on the failure: the group lives on
  emit({ check: "after mismatch", value: (await ok.data())[0] });
}

async function fault(kind: "kill" | "stall"): Promise<void> {
  const rank = getRank();
  const victim = Number(Deno.env.get("VICTIM") ?? "1");
  const n = 1_000_003;
  const t = fromArray(input(rank, n), [n]);
  await allReduce(t); // a first one that succeeds
  const before = await t.data();
  emit({ check: "ready" });
  if (rank === victim) {
    const work = allReduce(t, { async: true });
    work.wait().catch(() => {});
    await new Promise((r) => setTimeout(r, 15));
    if (kind === "kill") Deno.kill(Deno.pid, "SIGKILL");
    const until = performance.now() + timeoutMs + 1500; // stalled: the event loop is held
    while (performance.now() < until) { /* stall */ }
    Deno.exit(3);
  }
  const start = performance.now();
  try {
    for (let i = 0; i < 100; i++) await allReduce(t);
    emit({ check: "fault", error: null });
  } catch (e) {
    const after = await t.data();
    emit({
      check: "fault",
      error: String((e as Error).message),
      name: (e as Error).name,
      ranks: (e as { ranks?: number[] }).ranks,
      ms: performance.now() - start,
      kept: digest(after) === digest(before),
    });
  }
}

async function serverStop(): Promise<void> {
  const t = fromArray([getRank()], [1]);
  await allReduce(t);
  emit({ check: "ready" });
  const buf = new Uint8Array(16);
  await Deno.stdin.read(buf); // the parent stops the server, then says go
  const start = performance.now();
  try {
    await new Promise((r) => setTimeout(r, 100));
    await allReduce(t);
    emit({ check: "server stop", error: null });
  } catch (e) {
    emit({
      check: "server stop",
      error: String((e as Error).message),
      ms: performance.now() - start,
    });
  }
}

try {
  await initProcessGroup({ timeoutMs });
} catch (e) {
  emit({ check: "init", error: String((e as Error).message) });
  Deno.exit(0);
}
if (scenario === "collectives") await collectives();
else if (scenario === "mismatch") await mismatch();
else if (scenario === "kill" || scenario === "stall") await fault(scenario);
else if (scenario === "server_stop") await serverStop();
await destroyProcessGroup();
Deno.exit(0); // GPU workers keep the process alive otherwise
