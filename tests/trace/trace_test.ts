import assert from "node:assert/strict";
import * as TraceEngine from "npm:@paulirish/trace_engine@0.0.65";
import {
  configureEngine,
  cpu,
  exportChromeTrace,
  ones,
  rand,
  summarize,
  synchronize,
  type Tensor,
  trace$,
  type TraceEvent,
  tryAllGpus,
} from "../../mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const [gpu0, gpu1] = await tryAllGpus({ count: 2 });
const timestamps = gpu0.info.features.includes("timestamp-query");

async function traced(work: () => Promise<unknown>): Promise<TraceEvent[]> {
  const events: TraceEvent[] = [];
  const sub = trace$().subscribe((e) => events.push(e));
  try {
    await work();
    return events;
  } finally {
    sub.unsubscribe();
  }
}

/** Products, adds, copies to the host and across devices, a host op and a readback. */
async function mixedRun(): Promise<void> {
  const x = rand([128, 128], { device: gpu0, seed: 1 });
  const y = x.mm(x).add(1);
  const h = y.to(cpu(), { nonBlocking: true }).relu();
  const z = y.to(gpu1).mul(2).mm(rand([128, 128], { device: gpu1, seed: 2 }));
  await Promise.all([h.data(), z.data()]);
  await synchronize();
}
// rand x2, mm x2, add, mul, relu; copies: gpu0->cpu, gpu0->gpu1 (a read and a write); data of z
const expected = { rand: 2, mm: 2, add: 1, mul: 1, relu: 1, copy: 3, data: 1 };

const count = (events: TraceEvent[]) =>
  Object.fromEntries(
    Object.keys(expected).map((op) => [op, events.filter((e) => e.op === op).length]),
  );

Deno.test(
  "every op of a real run emits exactly one event, its device times inside its span",
  opts,
  async () => {
    await mixedRun(); // warm-up: compiles the kernels
    const events = await traced(mixedRun);
    assert.deepEqual(count(events), expected);
    assert.equal(events.length, Object.values(expected).reduce((a, b) => a + b));
    assert.equal(new Set(events.map((e) => e.id)).size, events.length, "ids are unique");
    for (const e of events) {
      assert.ok(e.start <= e.end, `${e.op} ${e.id} starts at ${e.start}, after its end ${e.end}`);
      if (e.gpuStart === undefined) continue;
      assert.ok(e.gpuEnd! >= e.gpuStart, `${e.op} ${e.id}: gpuEnd before gpuStart`);
      // 1 us of slack for rounding between the clocks
      assert.ok(
        e.gpuEnd! - e.gpuStart <= (e.end - e.start) * 1e6 + 1e3,
        `${e.op} ${e.id}: ${e.gpuEnd! - e.gpuStart} ns on the device, ${
          e.end - e.start
        } ms on the wall`,
      );
    }
    const mm = events.find((e) => e.op === "mm")!;
    assert.deepEqual(mm.shape, [128, 128]);
    assert.equal(mm.flops, 2 * 128 ** 3);
    if (timestamps) {
      for (
        const e of events.filter((e) =>
          e.lane === "compute" || e.op === "copy" && e.label === "gpu:0->cpu"
        )
      ) {
        assert.notEqual(e.gpuStart, undefined, `${e.op} ${e.id} on ${e.device} has device times`);
      }
    }
  },
);

Deno.test(
  "ops in one batch get spans of their own with device timing, and the batch's without",
  opts,
  async () => {
    const x = rand([128, 128], { device: gpu0, seed: 1 });
    await synchronize();
    const chain = async () => {
      let y: Tensor = x;
      for (let i = 0; i < 4; i++) y = y.mm(x);
      await synchronize();
    };
    configureEngine({ deviceTiming: false });
    let untimed: TraceEvent[];
    try {
      untimed = await traced(chain);
    } finally {
      configureEngine({ deviceTiming: true });
    }
    assert.ok(untimed.every((e) => e.gpuStart === undefined && e.gpuEnd === undefined));
    if (!timestamps) return;
    const timed = (await traced(chain)).sort((a, b) => a.id - b.id);
    assert.equal(timed.length, 4);
    for (let i = 1; i < timed.length; i++) {
      assert.ok(timed[i].start >= timed[i - 1].end, "a chain's products run one after the other");
      assert.ok(timed[i].gpuStart! >= timed[i - 1].gpuEnd!);
    }
  },
);

Deno.test(
  "a run of 100,000 small ops loses no event, and a late replay subscriber gets them all",
  opts,
  async () => {
    const n = 100_000;
    const xs = [ones([4], { device: gpu0 }), ones([4], { device: gpu1 })];
    await synchronize();
    // Room for whole chunks in flight: the default limit (64) would make the run wait on
    // completions, each at least ~11.5 ms away on this platform.
    configureEngine({ maxOpsInFlight: 1000 });
    trace$({ replay: true, bufferSize: n }); // keep from here on
    try {
      const live: number[] = [];
      const sub = trace$().subscribe((e) => live.push(e.id));
      for (let done = 0; done < n;) {
        for (const stop = done + 2_000; done < stop; done++) xs[done & 1].add(done).dispose();
        await synchronize();
      }
      sub.unsubscribe();
      assert.equal(live.length, n);
      const kept: TraceEvent[] = [];
      trace$({ replay: true }).subscribe((e) => kept.push(e)).unsubscribe();
      assert.equal(kept.length, n);
      assert.equal(new Set(kept.map((e) => e.id)).size, n);
      assert.ok(kept.every((e) => e.op === "add" && e.start <= e.end));
      assert.deepEqual(kept.map((e) => e.id), live, "kept in the order they came");

      trace$({ replay: true, bufferSize: 10 }); // a smaller buffer keeps the newest
      const newest: number[] = [];
      trace$({ replay: true }).subscribe((e) => newest.push(e.id)).unsubscribe();
      assert.deepEqual(newest, kept.slice(-10).map((e) => e.id));
    } finally {
      trace$({ replay: true, bufferSize: 0 });
      configureEngine({ maxOpsInFlight: 64 });
    }
    assert.throws(() => trace$({ replay: true, bufferSize: -1 }), RangeError);
  },
);

// The export is parsed by Chrome DevTools' own trace parser (npm:@paulirish/trace_engine,
// the Performance panel's engine), which runs under Deno with a DOMRect stand-in.
Deno.test(
  "the exported trace of a two-device run parses and has one process per device",
  opts,
  async () => {
    const events = await traced(async () => {
      const a = rand([128, 128], { device: gpu0, seed: 1 });
      const b = rand([128, 128], { device: gpu1, seed: 2 });
      for (let i = 0; i < 3; i++) {
        a.mm(a).dispose();
        b.mm(b).dispose();
      }
      await a.mm(a).to(cpu()).data();
      await synchronize();
    });
    const trace = JSON.parse(JSON.stringify(exportChromeTrace(events)));
    const names = trace.traceEvents
      .filter((e: { name: string }) => e.name === "process_name")
      .map((e: { args: { name: string } }) => e.args.name);
    assert.deepEqual(names.sort(), ["gpu:0", "gpu:1"]);
    for (const e of trace.traceEvents) {
      for (const field of ["name", "ph", "ts", "pid", "tid"]) {
        assert.ok(
          field in e,
          `${field} in ${e}`,
        );
      }
      if (e.ph === "X") assert.ok(typeof e.dur === "number" && e.dur >= 0);
    }

    const g = globalThis as { DOMRect?: unknown };
    g.DOMRect ??= class DOMRect {
      constructor(public x = 0, public y = 0, public width = 0, public height = 0) {}
    };
    const model = TraceEngine.TraceModel.Model.createWithAllHandlers();
    await model.parse(trace.traceEvents);
    const parsed = model.parsedTrace(0)!.data as unknown as {
      Renderer: {
        processes: Map<number, { threads: Map<number, { name: string; entries: unknown[] }> }>;
      };
      Flows: { flows: unknown[][] };
    };
    const processes = parsed.Renderer.processes;
    assert.equal(processes.size, 2, "one process per device");
    const slices = [...processes.values()].flatMap((p) => [...p.threads.values()])
      .reduce((n, t) => n + t.entries.length, 0);
    assert.equal(slices, events.length, "every op is a slice");
    const threads = [...processes.values()].flatMap((p) =>
      [...p.threads.values()].map((t) => t.name)
    );
    assert.ok(threads.includes("compute") && threads.includes("copy"));
    const deps = events.reduce(
      (n, e) => n + [...new Set(e.deps)].filter((d) => events.some((p) => p.id === d)).length,
      0,
    );
    assert.ok(deps > 0);
    assert.equal(parsed.Flows.flows.length, deps, "every dependency is a flow");
    assert.ok(summarize(events).makespan > 0);
  },
);

Deno.test(
  "a batch of more ops than one query set holds times every op, in order",
  opts,
  async () => {
    if (!timestamps) return;
    const x = ones([4], { device: gpu0 });
    await synchronize();
    configureEngine({ maxOpsInFlight: 5000 });
    try {
      const outs: Tensor[] = [];
      const events = await traced(async () => {
        // 3,000 passes (2 queries each) and 500 copies: over WebGPU's 4,096 queries a set
        for (let i = 0; i < 3000; i++) {
          const y = x.add(i);
          if (i % 6 === 0) outs.push(y.to(cpu(), { nonBlocking: true }));
          y.dispose();
        }
        await synchronize();
      });
      assert.equal(events.length, 3500);
      assert.ok(events.every((e) => e.gpuStart !== undefined), "every op has device times");
      const adds = events.filter((e) => e.op === "add").sort((a, b) => a.id - b.id);
      for (let i = 1; i < adds.length; i++) {
        assert.ok(
          adds[i].gpuStart! >= adds[i - 1].gpuEnd!,
          `add ${i} started before add ${i - 1} ended`,
        );
      }
      assert.deepEqual(await outs[10].data(), new Float32Array([61, 61, 61, 61]));
    } finally {
      configureEngine({ maxOpsInFlight: 64 });
    }
  },
);
