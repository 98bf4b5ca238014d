import assert from "node:assert/strict";
import { type NatsServer, startNatsServer } from "./nats_server.ts";
import { type RankRun, result, runRanks } from "./ranks.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
/** Small enough that [40003] (160 KB) and the kill test's tensors span many chunks. */
const MAX_PAYLOAD = 65536;

async function withServer<T>(fn: (s: NatsServer) => Promise<T>): Promise<T> {
  const server = await startNatsServer({ maxPayload: MAX_PAYLOAD });
  try {
    return await fn(server);
  } finally {
    await server.stop();
  }
}

/** Every check gives the same bits on every rank, within `tol` of the reference (exact where 0). */
function assertAgree(runs: RankRun[], device: string): void {
  for (const run of runs) {
    assert.equal(run.code, 0, `rank ${run.rank} exited ${run.code}: ${run.stderr.slice(-2000)}`);
    assert.equal(result(run, "device").kind, device);
  }
  const checks = runs[0].results.filter((r) => r.check !== "device").map((r) => String(r.check));
  assert.ok(checks.length >= 20, `only ${checks.length} checks ran`);
  for (const check of checks) {
    const rs = runs.map((run) => result(run, check));
    const exact = /max|min|broadcast|allGather|barrier/.test(check);
    for (const [rank, r] of rs.entries()) {
      assert.equal(r.digest, rs[0].digest, `${check}: rank ${rank}'s bits differ from rank 0's`);
      const tol = exact ? 0 : check.includes("twice") ? 1e-4 : 1e-5; // twice: N times the sum
      assert.ok(
        (r.err as number) <= tol,
        `${check} on rank ${rank}: error ${r.err}`,
      );
      assert.equal(r.kept, true, `${check} on rank ${rank}: not in place or wrong device`);
    }
  }
}

Deno.test(
  "every collective on host tensors of 3 ranks gives the same bits everywhere, at odd sizes and sizes over max_payload",
  opts,
  () =>
    withServer(async (server) => {
      const runs = await runRanks({ worldSize: 3, url: server.url, job: "host3" });
      assertAgree(runs, "cpu");
    }),
);

Deno.test(
  "every collective on GPU tensors of 2 ranks matches the host reference, the same bits on both",
  opts,
  () =>
    withServer(async (server) => {
      const runs = await runRanks({
        worldSize: 2,
        url: server.url,
        job: "gpu2",
        env: { DEVICE: "gpu" },
      });
      assertAgree(runs, "webgpu");
    }),
);

Deno.test(
  "two jobs on one server at once never see each other",
  opts,
  () =>
    withServer(async (server) => {
      const env = { SHAPES: "[[1],[5],[20001]]" };
      const [a, b] = await Promise.all([
        runRanks({ worldSize: 2, url: server.url, job: "job-a", env: { ...env, SEED: "0" } }),
        runRanks({ worldSize: 2, url: server.url, job: "job-b", env: { ...env, SEED: "1" } }),
      ]);
      assertAgree(a, "cpu");
      assertAgree(b, "cpu");
      const sum = (runs: RankRun[]) => result(runs[0], "allReduce sum [20001]").digest;
      assert.notEqual(sum(a), sum(b), "the jobs had different inputs and must differ");
    }),
);

Deno.test(
  "a shape that differs between ranks is an error on every rank naming both shapes",
  opts,
  () =>
    withServer(async (server) => {
      const runs = await runRanks({
        worldSize: 3,
        url: server.url,
        job: "mismatch",
        env: { SCENARIO: "mismatch" },
      });
      for (const run of runs) {
        const r = result(run, "mismatch");
        assert.match(String(r.error), /allReduce/);
        assert.match(String(r.error), /\[3\] on ranks 0, 2; \[4\] on rank 1/);
        assert.equal(r.kept, true, "the tensor must keep its old value");
        assert.equal(result(run, "after mismatch").value, 3, "the group goes on after it");
      }
    }),
);

for (const kind of ["kill", "stall"] as const) {
  Deno.test(
    `a rank that ${
      kind === "kill" ? "is killed" : "stalls"
    } mid-allReduce makes the others fail within the timeout naming it, values kept`,
    opts,
    () =>
      withServer(async (server) => {
        const timeoutMs = 3000;
        const victim = kind === "kill" ? 1 : 2;
        const runs = await runRanks({
          worldSize: 3,
          url: server.url,
          job: kind,
          env: { SCENARIO: kind, TIMEOUT_MS: String(timeoutMs), VICTIM: String(victim) },
          killAfterMs: 60_000,
        });
        if (kind === "kill") assert.equal(runs[victim].signal, "SIGKILL");
        for (const run of runs.filter((r) => r.rank !== victim)) {
          const r = result(run, "fault");
          assert.equal(r.name, "DistributedError", String(r.error));
          assert.match(String(r.error), /allReduce/);
          assert.match(String(r.error), new RegExp(`rank ${victim}\\b`));
          assert.deepEqual(r.ranks, [victim]);
          assert.equal(r.kept, true, "a failed allReduce must leave the tensor as it was");
        }
      }),
  );
}

Deno.test(
  "a stopped server fails the next collective on every rank naming its URL",
  opts,
  () =>
    withServer(async (server) => {
      let ready = 0;
      const stdins: ((s: string) => void)[] = [];
      const runs = await runRanks({
        worldSize: 2,
        url: server.url,
        job: "stop",
        env: { SCENARIO: "server_stop", TIMEOUT_MS: "5000" },
        killAfterMs: 60_000,
        onResult: (_rank, r, stdin) => {
          if (r.check !== "ready") return;
          stdins.push(stdin);
          if (++ready === 2) server.stop().then(() => stdins.forEach((s) => s("go\n")));
        },
      });
      for (const run of runs) {
        const r = result(run, "server stop");
        assert.ok(String(r.error).includes(server.url), String(r.error));
      }
    }),
);

Deno.test(
  "a rank that never comes makes the rendezvous fail naming it",
  opts,
  () =>
    withServer(async (server) => {
      const runs = await runRanks({
        ranks: [0, 1],
        worldSize: 3,
        url: server.url,
        job: "missing",
        env: { TIMEOUT_MS: "2000" },
        killAfterMs: 60_000,
      });
      for (const run of runs) {
        assert.match(String(result(run, "init").error), /rank 2 of 3 did not register/);
      }
    }),
);
