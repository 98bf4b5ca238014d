// Benchmark: does a dashboard client that never reads its event stream slow a run down?
// Times the same run through the dashboard with no client connected and with one stalled
// client (a socket that sent GET /api/events and reads nothing), interleaved, and reports
// the ratio of the medians, plus the batches the stalled client missed. Writes
// bench/results/dashboard.json.
//
//   deno run -A bench/dashboard.ts [--reps N]
import { parseArgs } from "node:util";
import { tryAllGpus } from "../mod.ts";
import type { RunRequest } from "../components/protocol.ts";
import { createDashboard } from "../server/app.ts";

const { values } = parseArgs({ args: Deno.args, options: { reps: { type: "string" } } });
const reps = Number(values.reps ?? 7);
const devices = await tryAllGpus();
const software = devices[0]?.info.software ?? true;
// A run of few large products, and one of many small ones (many trace events a second).
const workloads: RunRequest[] = software
  ? [
    { experiment: "gpu1-gpu2", size: 256, iters: 20 },
    { experiment: "gpu1-gpu2", size: 32, iters: 1000 },
  ]
  : [
    { experiment: "gpu1-gpu2", size: 4000, iters: 50 },
    { experiment: "gpu1-gpu2", size: 64, iters: 1000 },
  ];

const dashboard = createDashboard({ devices, bundle: () => Promise.resolve("") });
const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, dashboard.fetch);
const port = server.addr.port;

/** A client that asks for the event stream and never reads a byte of it. */
async function stalledClient(): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const request = `GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
    `Accept: text/event-stream\r\n\r\n`;
  await conn.write(new TextEncoder().encode(request));
  while (dashboard.state.hub.clients === 0) await new Promise((r) => setTimeout(r, 10));
  return conn;
}

async function timeRun(request: RunRequest): Promise<number> {
  const run = dashboard.state.runs.start(request);
  await dashboard.state.runs.idle();
  const done = dashboard.state.runs.get(run.id)!;
  if (done.status !== "done") throw new Error(`run failed: ${done.error}`);
  return done.seconds!;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const results = [];
for (const w of workloads) {
  await timeRun(w); // warm-up
  const alone: number[] = [];
  const stalled: number[] = [];
  let events = 0;
  const droppedBefore = dashboard.state.hub.droppedTotal;
  for (let r = 0; r < reps; r++) {
    alone.push(await timeRun(w));
    const conn = await stalledClient();
    const before = dashboard.state.hub.stats().eventsTotal;
    stalled.push(await timeRun(w));
    await new Promise((r) => setTimeout(r, 300)); // the last frames reach the stalled client
    events = dashboard.state.hub.stats().eventsTotal - before;
    conn.close();
    while (dashboard.state.hub.clients > 0) await new Promise((r) => setTimeout(r, 10));
  }
  const row = {
    workload: `${w.experiment} ${w.size}x${w.size}, ${w.iters} iters`,
    reps,
    eventsPerRun: events,
    medianSeconds: { noClient: median(alone), stalledClient: median(stalled) },
    ratio: median(stalled) / median(alone),
    droppedBatches: dashboard.state.hub.droppedTotal - droppedBefore,
    runs: { noClient: alone, stalledClient: stalled },
  };
  results.push(row);
  console.log(
    `${row.workload.padEnd(34)} no client ${row.medianSeconds.noClient.toFixed(4)} s   ` +
      `stalled client ${row.medianSeconds.stalledClient.toFixed(4)} s   ratio ${
        row.ratio.toFixed(3)
      }   (${events} events a run, ${row.droppedBatches} batches dropped)`,
  );
}

await dashboard.close();
await server.shutdown();
const result = {
  bench: "dashboard",
  adapter: devices[0]?.info.adapter ?? "host CPU",
  devices: devices.map((d) => d.name),
  note: "time of a run with one client that never reads /api/events over the time with none; " +
    "medians of interleaved runs",
  goal: { ratio: "about 1.0" },
  results,
};
await Deno.mkdir(new URL("./results/", import.meta.url), { recursive: true });
await Deno.writeTextFile(
  new URL("./results/dashboard.json", import.meta.url),
  JSON.stringify(result, null, 2) + "\n",
);
