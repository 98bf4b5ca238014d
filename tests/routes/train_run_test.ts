import assert from "node:assert/strict";
import type { Batch, RunRecord, State, TraceEvent } from "../../components/protocol.ts";
import { assertBadRequests, dashboard, messages, ORIGIN, post } from "./helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test("bad training parameters get 400 with a message that names the value", opts, async () => {
  const d = await dashboard({ trainSamples: 256 });
  try {
    const devices = d.state.runs.devices.length;
    const cases: [unknown, RegExp][] = [
      [{ experiment: "train", size: devices - 1, iters: 1 }, new RegExp(`>= ${devices}`)],
      [{ experiment: "train", size: 257, iters: 1 }, /size 257: size must be at most 256/],
      [{ experiment: "train", size: 64, iters: 101 }, /iters 101: iters must be at most 100/],
      [{ experiment: "train", size: 64, iters: 1.5 }, /iters 1.5/],
    ];
    await assertBadRequests(d, cases);
  } finally {
    await d.close();
  }
});

Deno.test(
  "a training run streams its ops live and records loss and accuracy per epoch",
  opts,
  async () => {
    const d = await dashboard({ trainSamples: 256 });
    const response = await d.fetch(new Request(`${ORIGIN}/api/events`));
    const stream = messages(response.body!);
    try {
      const started = await d.fetch(post("/api/runs", { experiment: "train", size: 64, iters: 2 }));
      assert.equal(started.status, 202);
      const { id } = await started.json();
      // While the run goes: the training's ops arrive in batches, and the run's state.
      const live: TraceEvent[] = [];
      let running = false;
      const seen = (op: string) => live.some((e) => e.op === op);
      while (!(running && seen("crossEntropy") && seen("sub_"))) {
        const m = await stream.next();
        assert.ok(m, "the stream stays open");
        if (m.event === "batch") live.push(...(JSON.parse(m.data) as Batch).events);
        if (m.event === "state") {
          running ||= (JSON.parse(m.data) as State).run?.status === "running";
        }
      }
      await d.state.runs.idle();
      const run: RunRecord = await (await d.fetch(new Request(`${ORIGIN}/api/runs/${id}`))).json();
      assert.equal(run.status, "done", run.error ?? "");
      assert.equal(run.epochs?.length, 2);
      const [first, second] = run.epochs!;
      assert.ok(second.loss < first.loss, `loss ${first.loss} then ${second.loss}`);
      // 8 steps on 256 digits: far from trained, well above chance (10%) on the test digits.
      assert.ok(second.testAccuracy > 0.3, `test accuracy ${second.testAccuracy}`);
      for (const e of run.epochs!) {
        assert.ok(e.seconds > 0 && e.samplesPerSecond > 0);
        assert.ok(e.gradientHidden === null || (e.gradientHidden >= 0 && e.gradientHidden <= 1));
      }
      assert.equal(run.epochs!.every((e) => e.gradientHidden !== null), devices(d) > 1);
    } finally {
      await stream.cancel();
      await d.close();
    }
  },
);

function devices(d: Awaited<ReturnType<typeof dashboard>>): number {
  return d.state.runs.devices.filter((x) => x.kind !== "cpu").length;
}
