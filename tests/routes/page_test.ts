import assert from "node:assert/strict";
import { cpu } from "../../mod.ts";
import { createDashboard } from "../../server/app.ts";
import { dashboard, ORIGIN } from "./helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test("the page renders on the server with the chapter's timings table", opts, async () => {
  const d = await dashboard();
  try {
    const response = await d.fetch(new Request(`${ORIGIN}/`));
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /text\/html/);
    assert.match(response.headers.get("content-security-policy") ?? "", /script-src 'self'/);
    const html = await response.text();
    assert.match(html, /^<!DOCTYPE html>/);
    for (
      const line of [
        "GPU1 time",
        "GPU2 time",
        "GPU1 &amp; GPU2",
        "Run on GPU1",
        "Copy to CPU",
        "Run on GPU1 and copy to CPU",
      ]
    ) assert.ok(html.includes(`<td>${line}</td>`), `the table has a line "${line}"`);
    for (const island of ["LiveFigures", "TaskStream", "RunPanel"]) {
      assert.ok(html.includes(`data-island="${island}"`), `the page has the ${island} island`);
    }
    assert.ok(html.includes(`<script type="module" src="/islands/client.js">`));
  } finally {
    await d.close();
  }
});

Deno.test("the page shows the latest timings without JavaScript", opts, async () => {
  const d = await dashboard();
  try {
    const run = d.state.runs.start({ experiment: "gpu1-gpu2", size: 32, iters: 2 });
    await d.state.runs.idle();
    assert.equal(d.state.runs.get(run.id)?.status, "done");
    const html = await (await d.fetch(new Request(`${ORIGIN}/`))).text();
    const both = d.state.hub.timings()["GPU1 & GPU2"];
    assert.ok(both > 0);
    assert.ok(html.includes(`<td class="num">${both.toFixed(4)}</td>`), "the seconds are shown");
    const speedup = (d.state.hub.timings()["GPU1 time"] + d.state.hub.timings()["GPU2 time"]) /
      both;
    assert.ok(html.includes(`${speedup.toFixed(2)}x</td>`), "the speedup is shown");
  } finally {
    await d.close();
  }
});

Deno.test("labels are rendered escaped", opts, async () => {
  // An adapter's description is text from outside: a hostile one must not become markup.
  const hostile = "<script>alert(1)</script>";
  const d = createDashboard({
    devices: [{
      name: "gpu:0",
      kind: "webgpu",
      index: 0,
      info: { ...cpu().info, adapter: hostile, software: true },
    }],
    bundle: () => Promise.resolve(""),
  });
  try {
    const html = await (await d.fetch(new Request(`${ORIGIN}/`))).text();
    assert.ok(!html.includes(hostile));
    assert.ok(html.includes("&lt;script>alert(1)&lt;/script>"), "the text is shown, escaped");
  } finally {
    await d.close();
  }
});

Deno.test("a request for another host name is refused (DNS rebinding)", opts, async () => {
  const d = await dashboard();
  try {
    const response = await d.fetch(new Request("http://attacker.example:8000/"));
    assert.equal(response.status, 403);
    assert.match((await response.json()).error, /Cannot serve host "attacker.example"/);
  } finally {
    await d.close();
  }
});
