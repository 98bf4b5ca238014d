/**
 * The launcher's dashboard (`deno task launch --dashboard [--port N]`): the live dashboard
 * (main.ts) as a child process, bound to 127.0.0.1, following the job's trace on its NATS
 * server, without an adapter of its own (the ranks get them); the launcher starts it before
 * the ranks and stops it after them. A child, not in-process: lib/ never imports the
 * dashboard's server.
 *
 * @module
 */
import { stopProcess } from "./nats_server.ts";

/** A running dashboard child. */
export interface DashboardChild {
  /** The page's address, such as "http://127.0.0.1:8000/". */
  url: string;
  /** Stops it (SIGTERM, then SIGKILL after `graceMs`); idempotent. */
  stop(graceMs: number): Promise<void>;
}

/** Options of {@link startDashboard}. */
export interface StartDashboardOptions {
  /** The NATS server the ranks publish on. */
  natsUrl: string;
  /** The job to follow. */
  job: string;
  /** The port; 0 picks a free one. */
  port: number;
  /** How long it may take to listen (it bundles the islands first). */
  timeoutMs: number;
  /** Receives each of its output lines. */
  onLine: (text: string, stream: "stdout" | "stderr") => void;
}

const MAIN = new URL("../../main.ts", import.meta.url);
const READY = "autopar dashboard: ";

/**
 * Starts main.ts following `job` and resolves with its URL once it listens. Rejects with an
 * Error ending with its last lines when it exits or does not listen within `timeoutMs`
 * (nothing is left running then).
 *
 * @example
 * ```ts ignore
 * import { startDashboard } from "./launch_dashboard.ts";
 * const d = await startDashboard({
 *   natsUrl: "nats://127.0.0.1:4222", job: "run1", port: 0, timeoutMs: 60_000, onLine: () => {},
 * });
 * console.log(d.url); // "http://127.0.0.1:<port>/"
 * await d.stop(5000);
 * ```
 */
export async function startDashboard(options: StartDashboardOptions): Promise<DashboardChild> {
  const main = MAIN.protocol === "file:" ? decodeURIComponent(MAIN.pathname) : MAIN.href;
  const args = [
    "run",
    "-A",
    main,
    "--nats",
    options.natsUrl,
    "--job",
    options.job,
    "--port",
    String(options.port),
    "--host",
    "127.0.0.1",
    "--no-gpus",
  ];
  const child = new Deno.Command(Deno.execPath(), {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const status = child.status;
  const last: string[] = [];
  const { promise: ready, resolve } = Promise.withResolvers<string>();
  const line = (stream: "stdout" | "stderr") => (text: string) => {
    last.push(text);
    if (last.length > 20) last.shift();
    if (stream === "stdout" && text.startsWith(READY)) resolve(text.slice(READY.length).trim());
    options.onLine(text, stream);
  };
  const pumps = Promise.all([
    lines(child.stdout, line("stdout")),
    lines(child.stderr, line("stderr")),
  ]);
  let stopped: Promise<void> | undefined;
  const stop = (graceMs: number) =>
    stopped ??= (async () => {
      await stopProcess(child, status, graceMs);
      await pumps;
    })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    ready,
    status.then((s) => new Error(`it exited with code ${s.code}`)),
    new Promise<Error>((r) =>
      timer = setTimeout(
        () => r(new Error(`it did not listen within ${options.timeoutMs} ms`)),
        options.timeoutMs,
      )
    ),
  ]);
  clearTimeout(timer);
  if (outcome instanceof Error) {
    await stop(2000);
    throw new Error(
      `Cannot start the dashboard on port ${options.port}: ${outcome.message}; its last lines:\n` +
        last.map((l) => `  ${l}`).join("\n"),
    );
  }
  return { url: outcome, stop };
}

/** Calls `each` for every line of `stream`. */
async function lines(stream: ReadableStream<Uint8Array>, each: (text: string) => void) {
  const decoder = new TextDecoder();
  let pending = "";
  try {
    for await (const bytes of stream) {
      const parts = (pending + decoder.decode(bytes, { stream: true })).split("\n");
      pending = parts.pop()!;
      for (const p of parts) each(p);
    }
  } catch {
    // the process is gone
  }
  if (pending !== "") each(pending);
}
