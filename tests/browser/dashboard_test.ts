// The dashboard in headless Chromium (Debian's /usr/bin/chromium): load the page, start
// experiments with the buttons, see the task stream fill with rows and the timings table
// fill, train the MLP and see its epoch's line, and save a screenshot under tests/artifacts/.
import assert from "node:assert/strict";
import puppeteer from "npm:puppeteer-core@25.16.0";
import { tryAllGpus } from "../../mod.ts";
import { serveDashboard } from "../../server/serve.ts";

const CHROMIUM = "/usr/bin/chromium";
const hasChromium = await Deno.stat(CHROMIUM).then(() => true, () => false);
const artifacts = new URL("../artifacts/", import.meta.url);

Deno.test({
  name: "a click starts an experiment; the task stream and the timings table fill",
  ignore: !hasChromium,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await serveDashboard({
      devices: await tryAllGpus(),
      port: 0,
      trainSamples: 1024,
    });
    const profile = await Deno.makeTempDir({ prefix: "autopar-chromium-" });
    const browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        `--user-data-dir=${profile}`,
      ],
    });
    try {
      const page = await browser.newPage();
      await page.setViewport({ width: 1280, height: 900 });
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(String(e)));
      await page.goto(server.url, { waitUntil: "load" });
      await page.waitForSelector("#connection.conn-live", { timeout: 20_000 });

      const start = async (experiment: string, size: number, iters: number) => {
        const form = `form:has(button[data-experiment="${experiment}"])`;
        for (const [name, value] of [["size", size], ["iters", iters]] as const) {
          await page.$eval(`${form} input[name=${name}]`, (el, v) => {
            el.value = v;
            el.dispatchEvent(new Event("input", { bubbles: true }));
          }, String(value));
        }
        await page.click(`button[data-experiment="${experiment}"]`);
      };
      const idle = () =>
        page.waitForFunction(
          () => !document.querySelector<HTMLButtonElement>("button[data-experiment]")?.disabled,
          { timeout: 60_000 },
        );
      const run = async (experiment: string, size: number, iters: number, last: string) => {
        await start(experiment, size, iters);
        await page.waitForFunction(
          (label) =>
            [...document.querySelectorAll("#timings tr[data-timed=yes] td:first-child")]
              .some((td) => td.textContent === label),
          { timeout: 60_000 },
          last,
        );
        await idle();
      };
      await run("gpu1-gpu2", 128, 8, "GPU1 & GPU2");
      await run("run-and-copy", 128, 8, "Run on GPU1 and copy to CPU");

      const timed = await page.$$eval(
        "#timings tr[data-timed=yes] td:first-child",
        (tds) => tds.map((td) => td.textContent),
      );
      for (const line of ["GPU1 time", "GPU2 time", "GPU1 & GPU2", "Run on GPU1", "Copy to CPU"]) {
        assert.ok(timed.includes(line), `the table has a time for "${line}"`);
      }
      const speedups = await page.$$eval(
        "#timings td.num",
        (tds) => tds.map((td) => td.textContent ?? "").filter((t) => /^\d+\.\d\dx$/.test(t)),
      );
      assert.ok(speedups.length >= 2, "speedups are shown");

      await page.click(".stream-bar button:last-of-type"); // the whole history
      await page.waitForFunction(
        () => Number(document.querySelector<HTMLCanvasElement>("#task-stream")?.dataset.rows) >= 4,
        { timeout: 10_000 },
      );
      const canvas = await page.$eval("#task-stream", (c) => ({ ...(c as HTMLElement).dataset }));
      assert.ok(Number(canvas.events) > 0, "events reached the page");
      assert.ok(Number(canvas.rows) >= 4, `rows with work: ${canvas.rows}`);
      const status = await page.$eval("#run-status", (el) => el.textContent ?? "");
      assert.match(status, /run-and-copy, 128x128, 8 iters\): done/);

      // A training run: its epochs fill a table of their own.
      await start("train", 128, 2);
      await page.waitForSelector('#train-epochs tr[data-epoch="2"]', { timeout: 120_000 });
      await idle();
      const epochs = await page.$$eval(
        "#train-epochs tbody tr",
        (trs) => trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent ?? "")),
      );
      assert.equal(epochs.length, 2);
      for (const [, loss, , testAcc] of epochs) {
        assert.ok(Number(loss) > 0, `loss ${loss}`);
        assert.match(testAcc, /^\d+\.\d%$/);
      }
      assert.ok(Number(epochs[1][1]) < Number(epochs[0][1]), "the loss went down");
      assert.match(
        await page.$eval("#run-status", (el) => el.textContent ?? ""),
        /train, batch 128, 2 epochs\): done/,
      );

      // Hovering a compute span shows its op.
      const box = (await (await page.$("#task-stream"))!.boundingBox())!;
      for (let x = box.x + 130; x < box.x + box.width; x += 4) {
        await page.mouse.move(x, box.y + 24 + 12);
        if (await page.$("#hover-card")) break;
      }
      const card = await page.$eval("#hover-card", (el) => el.textContent ?? "").catch(() => "");
      assert.match(card, /gpu:0 compute/);

      await Deno.mkdir(artifacts, { recursive: true });
      await page.screenshot({ path: new URL("dashboard.png", artifacts).pathname, fullPage: true });
      assert.deepEqual(errors, [], "no script errors on the page");
    } finally {
      await browser.close(); // first: an open event stream would hold the shutdown
      await server.shutdown();
      await Deno.remove(profile, { recursive: true });
    }
  },
});
