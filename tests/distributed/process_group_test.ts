import assert from "node:assert/strict";
import fc from "fast-check";
import { connect } from "npm:@nats-io/transport-node@3.4.0";
import { Kvm } from "npm:@nats-io/kv@3.4.0";
import {
  allReduce,
  broadcast,
  destroyProcessGroup,
  DistributedError,
  fromArray,
  getRank,
  getWorldSize,
  initProcessGroup,
  isInitialized,
} from "../../mod.ts";
import { jobToken, resolveOptions } from "../../lib/distributed/options.ts";
import { ProcessGroup, type ReduceOp } from "../../lib/distributed/process_group.ts";
import { startNatsServer } from "./nats_server.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test("options default from the environment as torch's env:// does", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  const o = resolveOptions(
    {},
    env({ RANK: "2", WORLD_SIZE: "4", LOCAL_RANK: "0", MASTER_ADDR: "h", MASTER_PORT: "7" }),
  );
  assert.deepEqual(
    [o.rank, o.worldSize, o.localRank, o.url, o.job, o.timeoutMs],
    [2, 4, 0, "nats://h:7", "default", 60_000],
  );
  const p = resolveOptions(
    { rank: 0, timeoutMs: 5 },
    env({ WORLD_SIZE: "1", AUTOPAR_NATS_URL: "nats://x:1", MASTER_ADDR: "h", AUTOPAR_JOB: "j" }),
  );
  assert.deepEqual([p.rank, p.url, p.job, p.timeoutMs, p.localRank], [0, "nats://x:1", "j", 5, 0]);
  assert.throws(() => resolveOptions({}, env({ WORLD_SIZE: "2" })), TypeError);
  assert.throws(() => resolveOptions({ rank: 2, worldSize: 2 }, env({})), RangeError);
  assert.throws(() => resolveOptions({ rank: 0, worldSize: 0 }, env({})), RangeError);
  assert.throws(
    () => resolveOptions({ rank: 0, worldSize: 1, timeoutMs: -1 }, env({})),
    RangeError,
  );
});

Deno.test("job ids become subject tokens that cannot add levels or wildcards and stay distinct", () => {
  fc.assert(fc.property(fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), (a, b) => {
    assert.match(jobToken(a), /^[A-Za-z0-9_-]+$/);
    if (a !== b) assert.notEqual(jobToken(a), jobToken(b));
  }));
});

Deno.test("an unreachable server is an error naming its URL", opts, async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const url = `nats://127.0.0.1:${(l.addr as Deno.NetAddr).port}`;
  l.close();
  await assert.rejects(
    initProcessGroup({ rank: 0, worldSize: 1, url, timeoutMs: 2000 }),
    (e: Error) => e instanceof DistributedError && e.message.includes(url),
  );
  assert.equal(isInitialized(), false);
});

Deno.test("a server that accepts and never answers is an error naming its URL", opts, async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const url = `nats://127.0.0.1:${(l.addr as Deno.NetAddr).port}`;
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of l) held.push(c);
  })().catch(() => {});
  try {
    await assert.rejects(
      initProcessGroup({ rank: 0, worldSize: 1, url, timeoutMs: 500 }),
      (e: Error) => e instanceof DistributedError && e.message.includes(url),
    );
  } finally {
    l.close();
    for (const c of held) c.close();
    await accepting;
  }
});

Deno.test(
  "a stale registration of a dead process does not count in the rendezvous",
  opts,
  async () => {
    const server = await startNatsServer();
    try {
      const nc = await connect({ servers: server.url });
      const kv = await new Kvm(nc).create(`autopar_${jobToken("stale")}`, {
        history: 1,
        storage: "memory",
      });
      await kv.put("rank.1", JSON.stringify({ rank: 1, nonce: "from-a-dead-run" }));
      await nc.close();
      await assert.rejects(
        ProcessGroup.create({
          rank: 0,
          worldSize: 2,
          url: server.url,
          job: "stale",
          timeoutMs: 800,
        }),
        (e: Error) =>
          e instanceof DistributedError && /rank 1 of 2 did not register/.test(e.message) &&
          (e as DistributedError).ranks[0] === 1,
      );
    } finally {
      await server.stop();
    }
  },
);

Deno.test("the functions check their arguments before anything is sent", opts, async () => {
  assert.throws(() => getRank(), /no process group/);
  assert.throws(() => allReduce(fromArray([1], [1])), /no process group/);
  const server = await startNatsServer();
  try {
    await initProcessGroup({ rank: 0, worldSize: 1, url: server.url, job: "args" });
    await assert.rejects(
      initProcessGroup({ rank: 0, worldSize: 1, url: server.url }),
      /already initialized/,
    );
    assert.deepEqual([getRank(), getWorldSize(), isInitialized()], [0, 1, true]);
    const t = fromArray([1, 2, 3], [3]);
    // @ts-expect-error: not an op
    assert.throws(() => allReduce(t, { op: "prod" }), RangeError);
    assert.throws(() => broadcast(t, 1), RangeError);
    // @ts-expect-error: not a tensor
    assert.throws(() => allReduce([1, 2]), TypeError);
    await allReduce(t, { op: "mean" }); // one rank: its own values
    assert.deepEqual([...await t.data()], [1, 2, 3]);
  } finally {
    await destroyProcessGroup();
    await server.stop();
  }
  assert.equal(isInitialized(), false);
});

Deno.test(
  "allReduce over random sizes with a tiny max_payload gives the same bits on every rank",
  opts,
  async () => {
    const server = await startNatsServer({ maxPayload: 1024 });
    const N = 3;
    const groups = await Promise.all(
      Array.from(
        { length: N },
        (_, rank) =>
          ProcessGroup.create({
            rank,
            worldSize: N,
            url: server.url,
            job: "prop",
            timeoutMs: 20_000,
          }),
      ),
    );
    try {
      assert.equal(groups[0].maxPayload, 1024, "the payload limit is read from the server");
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 1, max: 2000 }),
          fc.constantFrom<ReduceOp>("sum", "mean", "max", "min"),
          fc.integer(),
          async (n, op, seed) => {
            const inputs = groups.map((_, r) =>
              Float32Array.from({ length: n }, (_, i) => Math.sin(seed + i * 7.1 + r) * 1e3)
            );
            const outs = await Promise.all(
              groups.map((g, r) => g.allReduce(inputs[r].slice(), [n], op)),
            );
            for (let i = 0; i < n; i++) {
              const v = inputs.map((x) => x[i]);
              const want = op === "max"
                ? Math.max(...v)
                : op === "min"
                ? Math.min(...v)
                : v.reduce((a, b) => a + b) / (op === "mean" ? N : 1);
              assert.ok(
                Math.abs(outs[0][i] - want) <= (op === "max" || op === "min" ? 0 : 1e-3),
                `${op} at ${i} of ${n}: ${outs[0][i]} vs ${want}`,
              );
              for (const o of outs) assert.ok(Object.is(o[i], outs[0][i]), `${op} bits at ${i}`);
            }
          },
        ),
        { numRuns: 25 },
      );
      // several in flight at once, in call order, like async allReduce calls
      const a = groups.map((g, r) => g.allReduce(Float32Array.of(r), [1], "sum"));
      const b = groups.map((g, r) => g.allReduce(Float32Array.of(10 * r), [1], "max"));
      assert.deepEqual((await Promise.all(a)).map((x) => x[0]), [3, 3, 3]);
      assert.deepEqual((await Promise.all(b)).map((x) => x[0]), [20, 20, 20]);
    } finally {
      await Promise.all(groups.map((g) => g.destroy()));
      await server.stop();
    }
  },
);

Deno.test("ranks that create their job's bucket at the same instant all join", opts, async () => {
  // JetStream lets one of two simultaneous creates of a stream fail ("subjects overlap"):
  // the ranks that lose the race must still join.
  const server = await startNatsServer();
  try {
    for (let job = 0; job < 40; job++) {
      const groups = await Promise.all(
        Array.from({ length: 8 }, (_, rank) =>
          ProcessGroup.create({
            rank,
            worldSize: 8,
            url: server.url,
            job: `race${job}`,
            timeoutMs: 20_000,
          })),
      );
      assert.deepEqual(groups.map((g) => g.rank), [0, 1, 2, 3, 4, 5, 6, 7]);
      await Promise.all(groups.map((g) => g.destroy()));
    }
  } finally {
    await server.stop();
  }
});
