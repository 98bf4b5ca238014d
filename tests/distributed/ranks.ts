/** Runs the ranks of a test job as subprocesses of tests/distributed/worker.ts. */

const WORKER = new URL("./worker.ts", import.meta.url).pathname;

/** What one rank printed and how it ended. */
export interface RankRun {
  rank: number;
  code: number;
  signal: string | null;
  results: Record<string, unknown>[];
  stderr: string;
}

/** Options of {@linkcode runRanks}. */
export interface RunRanksOptions {
  /** Ranks to start; the others of worldSize are left missing. */
  ranks?: number[];
  worldSize: number;
  url: string;
  job: string;
  env?: Record<string, string>;
  /** Called with each RESULT of each rank as it arrives; `stdin` writes to that rank. */
  onResult?: (rank: number, result: Record<string, unknown>, stdin: (s: string) => void) => void;
  /** A safety net, not an assertion: children still running then are killed. */
  killAfterMs?: number;
}

/** Starts the ranks and resolves once every one has exited. */
export async function runRanks(o: RunRanksOptions): Promise<RankRun[]> {
  const ranks = o.ranks ?? [...Array(o.worldSize).keys()];
  const runs = ranks.map(async (rank) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", WORKER],
      env: {
        RANK: String(rank),
        WORLD_SIZE: String(o.worldSize),
        LOCAL_RANK: String(rank),
        AUTOPAR_NATS_URL: o.url,
        AUTOPAR_JOB: o.job,
        LP_NUM_THREADS: "1",
        ...o.env,
      },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    const stdin = (s: string) => void writer.write(new TextEncoder().encode(s)).catch(() => {});
    const results: Record<string, unknown>[] = [];
    const safety = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }, o.killAfterMs ?? 120_000);
    const out = (async () => {
      let rest = "";
      for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) {
        rest += text;
        const lines = rest.split("\n");
        rest = lines.pop()!;
        for (const line of lines) {
          if (!line.startsWith("RESULT ")) continue;
          const r = JSON.parse(line.slice(7));
          results.push(r);
          o.onResult?.(rank, r, stdin);
        }
      }
    })();
    const err = new Response(child.stderr).text();
    const status = await child.status;
    clearTimeout(safety);
    await out;
    await writer.close().catch(() => {});
    return { rank, code: status.code, signal: status.signal, results, stderr: await err };
  });
  return await Promise.all(runs);
}

/** The result named `check` of a rank, or an Error with what the rank printed. */
export function result(run: RankRun, check: string): Record<string, unknown> {
  const r = run.results.find((x) => x.check === check);
  if (!r) {
    throw new Error(
      `rank ${run.rank} (exit ${run.code} ${run.signal ?? ""}) printed no "${check}": ` +
        `${JSON.stringify(run.results).slice(0, 500)}\n${run.stderr.slice(-2000)}`,
    );
  }
  return r;
}
