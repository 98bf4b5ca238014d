import assert from "node:assert/strict";
import { connect } from "npm:@nats-io/transport-node@3.4.0";
import type { Batch, TraceEvent } from "../../components/protocol.ts";
import { startNatsServer } from "../../lib/distributed/nats_server.ts";
import { type TraceMessage, traceSubject } from "../../lib/distributed/trace_publisher.ts";
import { createDashboard } from "../../server/app.ts";
import { TraceFollower } from "../../server/trace_follower.ts";
import { messages, ORIGIN } from "./helpers.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const encoder = new TextEncoder();

function event(id: number, device: string, lane: TraceEvent["lane"], op: string): TraceEvent {
  return { id, op, device, lane, queued: 10, start: 11, end: 12, deps: [], bytes: 64 };
}

function message(job: string, rank: number, seq: number, events: TraceEvent[]): TraceMessage {
  const devices = [...new Set(events.map((e) => e.device))];
  // The rank's clock started 1 s after this process's: its times shift by 1000 ms.
  const timeOrigin = performance.timeOrigin + 1000;
  return { job, rank, worldSize: 2, devices, seq, dropped: 0, timeOrigin, events };
}

/** Reads batches from the dashboard's event stream until `enough` holds; the events read. */
async function readUntil(
  stream: ReturnType<typeof messages>,
  enough: (events: TraceEvent[]) => boolean,
): Promise<TraceEvent[]> {
  const events: TraceEvent[] = [];
  while (!enough(events)) {
    const m = await stream.next();
    assert.ok(m, "the stream stays open");
    if (m.event === "batch") events.push(...(JSON.parse(m.data) as Batch).events);
  }
  return events;
}

Deno.test(
  "trace events published on a rank's NATS subject reach the event stream as that rank's lanes",
  opts,
  async () => {
    await using server = await startNatsServer();
    const follow = await TraceFollower.connect({ url: server.url, job: "run-a" });
    const dashboard = createDashboard({
      devices: [],
      follow,
      bundle: () => Promise.resolve(""),
      hub: { frameMs: 20 },
    });
    const publisher = await connect({ servers: server.url });
    const response = await dashboard.fetch(new Request(`${ORIGIN}/api/events`));
    const stream = messages(response.body!);
    try {
      assert.equal((await stream.next())?.event, "hello");
      const publish = (subject: string, m: TraceMessage) =>
        publisher.publish(subject, encoder.encode(JSON.stringify(m)));
      // Another job on the same server, which this dashboard does not follow.
      publish(
        traceSubject("run-b", 0),
        message("run-b", 0, 1, [event(1, "gpu:0", "compute", "mm")]),
      );
      publish(
        traceSubject("run-a", 1),
        message("run-a", 1, 1, [
          event(1, "gpu:0", "compute", "mm"),
          event(2, "comm", "host", "allReduce"),
        ]),
      );
      publish(traceSubject("run-a", 0), message("run-a", 0, 1, [event(1, "cpu", "host", "add")]));
      publisher.publish(traceSubject("run-a", 0), encoder.encode("not a trace message"));
      await publisher.flush();

      const events = await readUntil(stream, (es) => es.length >= 3);
      const lanes = events.map((e) => `${e.device} ${e.lane} ${e.op}`).sort();
      assert.deepEqual(lanes, [
        "rank 0 cpu host add",
        "rank 1 comm host allReduce",
        "rank 1 gpu:0 compute mm",
      ]);
      for (const e of events) {
        assert.ok(Math.abs(e.start - 1011) < 1e-6, "times move onto the dashboard's clock");
        assert.ok(Math.abs(e.end - 1012) < 1e-6);
      }
      assert.deepEqual(
        follow.ranks().map((r) => [r.job, r.rank, r.devices, r.events, r.missed]),
        [["run-a", 0, ["cpu"], 1, 0], ["run-a", 1, ["gpu:0", "comm"], 2, 0]],
      );
      assert.equal(follow.malformed, 1);

      // A message lost on the way shows as a gap in the rank's sequence.
      publish(
        traceSubject("run-a", 1),
        message("run-a", 1, 3, [event(3, "gpu:0", "copy", "copy")]),
      );
      await publisher.flush();
      const more = await readUntil(stream, (es) => es.length >= 1);
      assert.deepEqual(more.map((e) => `${e.device} ${e.lane}`), ["rank 1 gpu:0 copy"]);
      assert.equal(follow.ranks()[1].missed, 1);
    } finally {
      await stream.cancel();
      await publisher.close();
      await dashboard.close();
    }
    assert.equal(follow.ranks().length, 2, "closing keeps what it saw");
  },
);

Deno.test("a dashboard that follows every job names each lane's job too", opts, async () => {
  await using server = await startNatsServer();
  const follow = await TraceFollower.connect({ url: server.url });
  const seen: TraceEvent[] = [];
  const sub = follow.events$.subscribe((e) => seen.push(e));
  const publisher = await connect({ servers: server.url });
  try {
    for (const job of ["run-a", "run.b"]) {
      publisher.publish(
        traceSubject(job, 0),
        encoder.encode(JSON.stringify(message(job, 0, 1, [event(1, "cpu", "host", "add")]))),
      );
    }
    await publisher.flush();
    for (let i = 0; i < 200 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(seen.map((e) => e.device).sort(), ["run-a rank 0 cpu", "run.b rank 0 cpu"]);
  } finally {
    sub.unsubscribe();
    await publisher.close();
    await follow.close();
  }
});

Deno.test("following a NATS server that is not there fails naming its URL", opts, async () => {
  const server = await startNatsServer();
  const url = server.url;
  await server.stop();
  await assert.rejects(
    () => TraceFollower.connect({ url, timeoutMs: 2000 }),
    (e: Error) => e.message.includes(`Cannot follow the trace at the NATS server at ${url}`),
  );
});
