import assert from "node:assert/strict";
import { launch, type OutputLine } from "../../lib/distributed/launch.ts";
import { parseLaunchArgs } from "../../lib/distributed/launch_args.ts";
import { freePort } from "../../lib/distributed/nats_server.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const MOD = new URL("../../mod.ts", import.meta.url).href;

/**
 * Each rank runs host ops and an allReduce with its trace published; rank 0 then reads the
 * launcher's dashboard's event stream until it has seen both ranks' lanes and prints them.
 */
const RANK = `
import { allReduce, barrier, destroyProcessGroup, fromArray, getRank, initProcessGroup,
  synchronize } from ${JSON.stringify(MOD)};
await initProcessGroup({ timeoutMs: 60_000 });
const t = fromArray([getRank(), 1], [2]).mul(2);
await allReduce(t, { op: "sum" });
await synchronize();
await barrier();
if (getRank() === 0) {
  const want = ["rank 0 cpu host", "rank 1 cpu host", "rank 0 comm host allReduce",
    "rank 1 comm host allReduce"];
  const seen = new Set();
  const response = await fetch(new URL("/api/events", Deno.env.get("AUTOPAR_DASHBOARD_URL")));
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const deadline = Date.now() + 40_000;
  while (!want.every((w) => seen.has(w)) && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
    for (let end; (end = text.indexOf("\\n\\n")) >= 0; text = text.slice(end + 2)) {
      const block = text.slice(0, end);
      if (!block.includes("event: batch")) continue;
      const data = block.split("\\n").find((l) => l.startsWith("data: ")).slice(6);
      for (const e of JSON.parse(data).events) {
        seen.add(e.device + " " + e.lane);
        seen.add(e.device + " " + e.lane + " " + e.op);
      }
    }
  }
  await reader.cancel();
  console.log("lanes " + JSON.stringify(want.filter((w) => seen.has(w))));
}
await barrier();
await destroyProcessGroup();
`;

Deno.test(
  "two ranks under launch --dashboard publish events that its dashboard shows as rank lanes",
  opts,
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "autopar_launch_dashboard_" });
    const script = `${dir}/rank.ts`;
    await Deno.writeTextFile(script, RANK);
    const port = freePort();
    const lines: OutputLine[] = [];
    try {
      const result = await launch({
        ...parseLaunchArgs(["--nproc", "2", "--dashboard", "--port", String(port), script]),
        env: { AUTOPAR_DEVICES: "1" },
        timeoutMs: 180_000,
        onLine: (l) => lines.push(l),
      });
      assert.equal(result.dashboard, `http://127.0.0.1:${port}/`);
      const printed = lines.find((l) => l.rank === 0 && l.text.startsWith("lanes "));
      assert.ok(printed, lines.map((l) => `${l.rank} ${l.text}`).join("\n"));
      assert.deepEqual(JSON.parse(printed.text.slice(6)), [
        "rank 0 cpu host",
        "rank 1 cpu host",
        "rank 0 comm host allReduce",
        "rank 1 comm host allReduce",
      ]);
      assert.ok(
        lines.some((l) => l.rank === undefined && l.text.includes(`following job ${result.job}`)),
        "the dashboard follows this job",
      );
      // Stopped at the end: nothing listens on its port any more.
      await assert.rejects(() => Deno.connect({ hostname: "127.0.0.1", port }));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("the launcher's --dashboard and --port flags parse and check", () => {
  const o = parseLaunchArgs(["--dashboard", "--port=9001", "--nproc", "2", "s.ts", "--port", "1"]);
  assert.deepEqual([o.dashboard, o.dashboardPort, o.nproc, o.args], [true, 9001, 2, [
    "--port",
    "1",
  ]]);
  assert.throws(() => parseLaunchArgs(["--dashboard=yes", "s.ts"]), /takes none/);
  return Promise.all([
    assert.rejects(() => launch({ script: "s.ts", dashboardPort: 9001 }), /without --dashboard/),
    assert.rejects(
      () => launch({ script: "s.ts", dashboard: true, dashboardPort: 70000 }),
      RangeError,
    ),
  ]).then(() => {});
});
