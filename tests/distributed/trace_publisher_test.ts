import assert from "node:assert/strict";
import {
  allReduce,
  destroyProcessGroup,
  fromArray,
  initProcessGroup,
  ones,
  synchronize,
  TracePublisher,
} from "../../mod.ts";
import { startNatsServer } from "../../lib/distributed/nats_server.ts";
import { TraceFollower } from "../../server/trace_follower.ts";
import type { TraceEvent } from "../../lib/trace/trace.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** Waits until `done()` holds, polling; fails after `ms` instead of hanging. */
async function until(done: () => boolean, what: string, ms = 20_000): Promise<void> {
  for (const end = performance.now() + ms; !done();) {
    if (performance.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test(
  "initProcessGroup({ trace: true }) publishes the rank's ops and collectives on its subject",
  opts,
  async () => {
    await using server = await startNatsServer();
    const follow = await TraceFollower.connect({ url: server.url, job: "traced" });
    const seen: TraceEvent[] = [];
    const sub = follow.events$.subscribe((e) => seen.push(e));
    try {
      await initProcessGroup({
        rank: 0,
        worldSize: 1,
        url: server.url,
        job: "traced",
        trace: true,
      });
      const t = fromArray([1, 2, 3], [3]);
      t.add(1);
      await allReduce(t, { op: "sum" });
      await synchronize();
      await destroyProcessGroup(); // flushes what is pending
      await until(() => seen.some((e) => e.op === "allReduce"), "the allReduce event");
      const reduce = seen.find((e) => e.op === "allReduce")!;
      assert.equal(`${reduce.device} ${reduce.lane}`, "rank 0 comm host");
      assert.deepEqual(reduce.shape, [3]);
      assert.equal(reduce.bytes, 12);
      assert.ok(seen.some((e) => e.op === "add" && e.device === "rank 0 cpu"));
      assert.deepEqual(follow.ranks()[0].devices.sort(), ["comm", "cpu"]);
    } finally {
      sub.unsubscribe();
      await destroyProcessGroup();
      await follow.close();
    }
  },
);

Deno.test("without trace the process group publishes nothing", opts, async () => {
  await using server = await startNatsServer();
  const follow = await TraceFollower.connect({ url: server.url, job: "quiet" });
  try {
    await initProcessGroup({ rank: 0, worldSize: 1, url: server.url, job: "quiet", trace: false });
    ones([2]).add(1);
    await allReduce(ones([2]));
    await synchronize();
    await destroyProcessGroup();
    await new Promise((r) => setTimeout(r, 500)); // two frames' time for anything to arrive
    assert.deepEqual(follow.ranks(), []);
  } finally {
    await destroyProcessGroup();
    await follow.close();
  }
});

Deno.test("a publisher that is behind drops its oldest events and counts them", opts, async () => {
  await using server = await startNatsServer();
  const follow = await TraceFollower.connect({ url: server.url, job: "busy" });
  let received = 0;
  const sub = follow.events$.subscribe(() => received++);
  // No frame comes during the test: everything waits in the 10-event buffer until close().
  const p = await TracePublisher.start({
    url: server.url,
    job: "busy",
    rank: 3,
    worldSize: 4,
    frameMs: 600_000,
    maxPending: 10,
  });
  try {
    let t = ones([1]);
    for (let i = 0; i < 50; i++) t = t.add(1);
    await synchronize();
    await p.close();
    assert.ok(p.dropped > 0, "the buffer overflowed");
    assert.ok(p.published <= 10 && p.published > 0, `published ${p.published}`);
    await until(() => received === p.published, "the published events");
    assert.equal(follow.ranks()[0].dropped, p.dropped, "each message carries the count");
    assert.equal(follow.ranks()[0].rank, 3);
  } finally {
    sub.unsubscribe();
    await p.close();
    await follow.close();
  }
});

Deno.test("a frame larger than max_payload goes out as several messages", opts, async () => {
  await using server = await startNatsServer({ maxPayload: 8192 });
  const follow = await TraceFollower.connect({ url: server.url, job: "big" });
  let received = 0;
  const sub = follow.events$.subscribe(() => received++);
  const p = await TracePublisher.start({
    url: server.url,
    job: "big",
    rank: 0,
    worldSize: 1,
    frameMs: 600_000,
  });
  try {
    let t = ones([1]);
    for (let i = 0; i < 300; i++) t = t.add(1);
    await synchronize();
    await p.close();
    assert.equal(p.dropped, 0);
    assert.equal(p.failed, 0, "no message was over max_payload");
    assert.ok(p.published >= 300);
    await until(() => received === p.published, "every event");
    assert.equal(follow.ranks()[0].missed, 0);
  } finally {
    sub.unsubscribe();
    await p.close();
    await follow.close();
  }
});

Deno.test("TracePublisher.start rejects bad options before connecting", async () => {
  const base = { url: "nats://127.0.0.1:1", job: "j", rank: 0, worldSize: 1 };
  await assert.rejects(() => TracePublisher.start({ ...base, frameMs: 0 }), RangeError);
  await assert.rejects(() => TracePublisher.start({ ...base, maxPending: 0 }), RangeError);
  await assert.rejects(
    () => TracePublisher.start({ ...base, timeoutMs: 1000 }),
    /Cannot publish the trace of rank 0 to the NATS server at nats:\/\/127\.0\.0\.1:1/,
  );
});
