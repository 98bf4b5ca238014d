import assert from "node:assert/strict";
import { assertBadRequests, dashboard, ORIGIN, post } from "./helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test("bad run parameters get 400 with a message that names the value", opts, async () => {
  const d = await dashboard();
  try {
    const max = d.state.runs.limits.maxSize;
    const cases: [unknown, RegExp][] = [
      [{ experiment: "gpu3", size: 64, iters: 2 }, /experiment "gpu3".*"gpu1-gpu2"/],
      [{ experiment: "gpu1-gpu2", size: 64.5, iters: 2 }, /size 64.5: size must be a whole number/],
      [{ experiment: "gpu1-gpu2", size: "64", iters: 2 }, /size "64"/],
      [{ experiment: "run-and-copy", size: 64, iters: 0 }, /iters 0/],
      [
        { experiment: "run-and-copy", size: 64, iters: 1e6 },
        /iters 1000000: iters must be at most/,
      ],
      [
        { experiment: "gpu1-gpu2", size: max + 1, iters: 2 },
        /maxStorageBufferBindingSize of \d+ bytes \(largest size: \d+\)/,
      ],
      [[1, 2], /send a JSON object/],
      ["{not json", /not JSON/],
    ];
    await assertBadRequests(d, cases);
  } finally {
    await d.close();
  }
});

Deno.test("a POST from a foreign Origin gets 403", opts, async () => {
  const d = await dashboard();
  try {
    const body = { experiment: "gpu1-gpu2", size: 32, iters: 2 };
    for (const origin of ["http://evil.example", "http://127.0.0.1:9999", "null"]) {
      const response = await d.fetch(post("/api/runs", body, { origin }));
      assert.equal(response.status, 403, origin);
      assert.match((await response.json()).error, /Cannot accept a POST from origin/);
    }
    const crossSite = await d.fetch(
      new Request(`${ORIGIN}/api/runs`, {
        method: "POST",
        headers: { "content-type": "application/json", "sec-fetch-site": "cross-site" },
        body: JSON.stringify(body),
      }),
    );
    assert.equal(crossSite.status, 403);
    await crossSite.body?.cancel();
    assert.equal(d.state.runs.busy, false, "no run started");
  } finally {
    await d.close();
  }
});

Deno.test("request bodies over the limit get 413; other content types 415", opts, async () => {
  const d = await dashboard();
  try {
    const big = JSON.stringify({
      experiment: "gpu1-gpu2",
      size: 32,
      iters: 2,
      pad: "x".repeat(20_000),
    });
    const response = await d.fetch(post("/api/runs", big));
    assert.equal(response.status, 413);
    assert.match((await response.json()).error, /over 16384 bytes/);
    const form = await d.fetch(post("/api/runs", "size=3", { "content-type": "text/plain" }));
    assert.equal(form.status, 415);
    await form.body?.cancel();
  } finally {
    await d.close();
  }
});

Deno.test(
  "a run starts with 202, is 409 while busy, and GET /api/runs/:id has its timings",
  opts,
  async () => {
    const d = await dashboard();
    try {
      const started = await d.fetch(
        post("/api/runs", { experiment: "run-and-copy", size: 32, iters: 2 }),
      );
      assert.equal(started.status, 202);
      const run = await started.json();
      assert.equal(started.headers.get("location"), `/api/runs/${run.id}`);
      assert.equal(run.status, "running");
      const again = await d.fetch(
        post("/api/runs", { experiment: "gpu1-gpu2", size: 32, iters: 2 }),
      );
      assert.equal(again.status, 409);
      assert.match((await again.json()).error, /still running/);
      await d.state.runs.idle();
      const done = await (await d.fetch(new Request(`${ORIGIN}/api/runs/${run.id}`))).json();
      assert.equal(done.status, "done");
      assert.deepEqual(Object.keys(done.timings), [
        "Run on GPU1",
        "Copy to CPU",
        "Run on GPU1 and copy to CPU",
      ]);
      for (const s of Object.values(done.timings)) assert.ok((s as number) > 0);
      const missing = await d.fetch(new Request(`${ORIGIN}/api/runs/r999`));
      assert.equal(missing.status, 404);
      await missing.body?.cancel();
    } finally {
      await d.close();
    }
  },
);

Deno.test("GET /api/trace.json is the Chrome trace of the latest run", opts, async () => {
  const d = await dashboard();
  try {
    const none = await d.fetch(new Request(`${ORIGIN}/api/trace.json`));
    assert.equal(none.status, 404);
    await none.body?.cancel();
    await d.fetch(post("/api/runs", { experiment: "run-and-copy", size: 32, iters: 2 }));
    await d.state.runs.idle();
    const response = await d.fetch(new Request(`${ORIGIN}/api/trace.json`));
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-disposition") ?? "", /attachment/);
    const trace = await response.json();
    const names = trace.traceEvents.filter((e: { ph: string }) => e.ph === "X")
      .map((e: { name: string }) => e.name);
    assert.ok(names.includes("mm") && names.includes("copy"), "products and copies are there");
    assert.ok(names.includes("Run on GPU1 and copy to CPU"), "so are the benchmark spans");
    const run = d.state.runs.latest()!;
    assert.ok(run.summary!.makespan > 0, "the run has a summary of its combined line");
  } finally {
    await d.close();
  }
});
