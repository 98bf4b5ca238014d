/**
 * The launcher, like torchrun: starts `nproc` copies of a script on this node with the
 * environment the process group reads (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
 * MASTER_PORT, AUTOPAR_NATS_URL, AUTOPAR_JOB), a NATS server when none is given, an adapter
 * per child where the machine has several, each output line prefixed with its rank; when one
 * child fails, it stops the others and fails with that child's error. It owns processes and
 * nothing else.
 *
 * @module
 */
import { parseNatsAddress, probeNats, startNatsServer, stopProcess } from "./nats_server.ts";
import type { NatsServer } from "./nats_server.ts";
import { type AdapterPlan, findLocalGpus, hasDeviceSelectLayer, planAdapters } from "./adapters.ts";
import {
  ChildFailedError,
  formatLine,
  LaunchError,
  type LaunchOptions,
  type LaunchResult,
  type OutputLine,
} from "./launch_types.ts";
import { type DashboardChild, startDashboard } from "./launch_dashboard.ts";

export { ChildFailedError, formatLine, LaunchError } from "./launch_types.ts";
export type { LaunchOptions, LaunchResult, OutputLine } from "./launch_types.ts";

const encoder = new TextEncoder();

/** Writes a whole line at once, so that lines of different ranks never interleave. */
function writeLine(line: OutputLine): void {
  const out = line.stream === "stdout" ? Deno.stdout : Deno.stderr;
  let bytes = encoder.encode(formatLine(line) + "\n");
  while (bytes.length > 0) bytes = bytes.subarray(out.writeSync(bytes));
}

/** Lines of stderr kept per child for the error. */
const LAST_LINES = 20;
/** How long output may still arrive after a child has exited (a grandchild may hold it). */
const DRAIN_MS = 2000;

interface Resolved {
  script: string;
  args: string[];
  nproc: number;
  nnodes: number;
  nodeRank: number;
  master?: string;
  job: string;
  killTimeoutMs: number;
  startTimeoutMs: number;
  timeoutMs: number;
  env: Record<string, string>;
  onLine: (line: OutputLine) => void;
  dashboardPort: number | undefined;
}

function count(value: unknown, what: string, min: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
    throw new RangeError(`Cannot use ${what} ${value}: it must be a whole number >= ${min}`);
  }
  return value;
}

function duration(value: unknown, what: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !(value > 0)) {
    throw new RangeError(`Cannot use ${what} ${value}: it must be a number of ms > 0`);
  }
  return value;
}

/** Checks every option and fills in the defaults; throws RangeError/TypeError. */
function resolveLaunchOptions(options: LaunchOptions): Resolved {
  if (typeof options.script !== "string" || options.script === "") {
    throw new TypeError(`Cannot launch script ${JSON.stringify(options.script)}: name a file`);
  }
  const nproc = count(options.nproc ?? 1, "--nproc", 1);
  const nnodes = count(options.nnodes ?? 1, "--nnodes", 1);
  const nodeRank = count(options.nodeRank ?? 0, "--node-rank", 0);
  if (nodeRank >= nnodes) {
    throw new RangeError(
      `Cannot use --node-rank ${nodeRank} with --nnodes ${nnodes}: it must be 0 to ${nnodes - 1}`,
    );
  }
  if (nnodes > 1 && options.master === undefined) {
    throw new RangeError(
      `Cannot launch ${nnodes} nodes without --master: every node must reach one NATS server ` +
        `(start nats-server -js on one machine and pass its host:port)`,
    );
  }
  if (nnodes > 1 && options.job === undefined) {
    throw new RangeError(
      `Cannot launch ${nnodes} nodes without --job: every node must pass the same job id`,
    );
  }
  if (options.job !== undefined && !/^[^\s]{1,128}$/.test(options.job)) {
    throw new RangeError(
      `Cannot use job id ${
        JSON.stringify(options.job)
      }: it must be 1-128 characters without spaces`,
    );
  }
  if (options.master !== undefined) normalizeMaster(options.master);
  const port = options.dashboardPort;
  if (port !== undefined && !options.dashboard) {
    throw new RangeError(`Cannot use --port ${port} without --dashboard: it is the dashboard's`);
  }
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= 65535)) {
    throw new RangeError(`Cannot use --port ${port}: it must be a whole number from 0 to 65535`);
  }
  return {
    script: options.script,
    args: [...(options.args ?? [])],
    nproc,
    nnodes,
    nodeRank,
    master: options.master,
    job: options.job ?? `job-${crypto.randomUUID()}`,
    killTimeoutMs: duration(options.killTimeoutMs, "kill timeout", 5000),
    startTimeoutMs: duration(options.startTimeoutMs, "start timeout", 10_000),
    timeoutMs: duration(options.timeoutMs, "job timeout", Infinity),
    env: { ...(options.env ?? {}) },
    onLine: options.onLine ?? writeLine,
    dashboardPort: options.dashboard ? port ?? 8000 : undefined,
  };
}

/** `host:port` or `nats://host:port` -> the parts and a `nats://` URL. */
function normalizeMaster(master: string): { host: string; port: number; url: string } {
  let parts;
  try {
    parts = parseNatsAddress(master);
  } catch {
    throw new RangeError(
      `Cannot use --master "${master}": it must be host:port (or nats://host:port), port 1-65535`,
    );
  }
  const { host, port } = parts;
  return { host, port, url: `nats://${host.includes(":") ? `[${host}]` : host}:${port}` };
}

/**
 * Runs a job: starts (or checks) the NATS server, starts `nproc` children of `script` with
 * their rank's environment and prints their lines prefixed with the rank, waits for them,
 * and stops the server it started, also on failure, abort and SIGINT/SIGTERM. Resolves when
 * every child exits with 0. When one fails, the others get SIGTERM (SIGKILL after
 * `killTimeoutMs`) and the launch rejects with a {@linkcode ChildFailedError} that names it,
 * its exit code and its last stderr lines. Throws a RangeError/TypeError for bad options
 * before anything starts, and an Error naming the URL when the server cannot be reached.
 *
 * @example
 * ```ts
 * import { launch } from "./launch.ts";
 * const script = await Deno.makeTempFile({ suffix: ".ts" });
 * await Deno.writeTextFile(script, "console.log(Deno.env.get('RANK'), Deno.env.get('WORLD_SIZE'));");
 * const lines: string[] = [];
 * await launch({ script, nproc: 2, onLine: (l) => l.rank !== undefined && lines.push(l.text) });
 * console.log(lines.sort()); // ["0 2", "1 2"]
 * await Deno.remove(script);
 * ```
 */
export async function launch(options: LaunchOptions): Promise<LaunchResult> {
  const o = resolveLaunchOptions(options);
  try {
    await Deno.stat(o.script);
  } catch (e) {
    if (!/^(https?|file|npm|jsr):/.test(o.script)) {
      throw new Error(`Cannot launch script "${o.script}": it does not exist`, { cause: e });
    }
  }
  const stop = new AbortController();
  const forward = () => stop.abort(new LaunchError(`the launch was aborted`, 130));
  options.signal?.addEventListener("abort", forward, { once: true });
  if (options.signal?.aborted) forward();
  const removeSignals = options.handleSignals === false ? () => {} : onSignals(stop);
  let server: NatsServer | undefined;
  let dashboard: DashboardChild | undefined;
  try {
    let url: string;
    if (o.master === undefined) {
      server = await startNatsServer({ startTimeoutMs: o.startTimeoutMs });
      url = server.url;
    } else {
      url = normalizeMaster(o.master).url;
      const info = await probeNats(url, o.startTimeoutMs);
      if (info.jetstream !== true) {
        throw new Error(
          `Cannot use the NATS server at ${url}: JetStream is off there (start it with -js)`,
        );
      }
    }
    if (o.dashboardPort !== undefined) {
      dashboard = await startDashboard({
        natsUrl: url,
        job: o.job,
        port: o.dashboardPort,
        timeoutMs: Math.max(o.startTimeoutMs, 60_000), // it bundles the islands first
        onLine: (text, stream) => o.onLine({ rank: undefined, stream, text: `dashboard: ${text}` }),
      });
      o.env = { AUTOPAR_TRACE: "1", ...o.env, AUTOPAR_DASHBOARD_URL: dashboard.url };
    }
    const adapters = planAdapters(findLocalGpus(), o.nproc, {
      cores: navigator.hardwareConcurrency,
      deviceSelectLayer: hasDeviceSelectLayer(),
      lpNumThreads: Deno.env.get("LP_NUM_THREADS"),
    });
    const first = o.nodeRank * o.nproc;
    say(
      o,
      `job ${o.job}: ranks ${first}-${first + o.nproc - 1} of ${o.nnodes * o.nproc} ` +
        `(node ${o.nodeRank} of ${o.nnodes}), NATS ${url}${server ? " (started here)" : ""}`,
    );
    say(o, `adapters: ${adapters.summary}`);
    const codes = await runChildren(o, url, adapters, stop.signal);
    return {
      job: o.job,
      url,
      startedServer: server !== undefined,
      server: server && { port: server.port, storeDir: server.storeDir },
      adapters,
      codes,
      dashboard: dashboard?.url,
    };
  } finally {
    removeSignals();
    options.signal?.removeEventListener("abort", forward);
    await dashboard?.stop(o.killTimeoutMs);
    await server?.stop();
  }
}

function say(o: Resolved, text: string): void {
  o.onLine({ rank: undefined, stream: "stderr", text });
}

/** Turns SIGINT/SIGTERM into an abort of the job; returns the function that undoes it. */
function onSignals(stop: AbortController): () => void {
  const handlers: [Deno.Signal, () => void][] = [["SIGINT", 130], ["SIGTERM", 143]].map(
    ([sig, code]) => [
      sig as Deno.Signal,
      () => stop.abort(new LaunchError(`the launcher got ${sig}`, code as number)),
    ],
  );
  const added: typeof handlers = [];
  for (const [sig, h] of handlers) {
    try {
      Deno.addSignalListener(sig, h);
      added.push([sig, h]);
    } catch {
      // not supported here (Windows has no SIGTERM)
    }
  }
  return () => added.forEach(([sig, h]) => Deno.removeSignalListener(sig, h));
}

/** One running child. */
interface Child {
  rank: number;
  process: Deno.ChildProcess;
  status: Promise<Deno.CommandStatus>;
  exited: Deno.CommandStatus | undefined;
  lastLines: string[];
  pumps: Promise<void>;
  readers: ReadableStreamDefaultReader<Uint8Array>[];
}

/** The environment of local rank `local`. */
function childEnv(
  o: Pick<Resolved, "nproc" | "nnodes" | "nodeRank" | "job" | "env">,
  url: string,
  local: number,
  adapterEnv: Record<string, string>,
): Record<string, string> {
  const { host, port } = normalizeMaster(url);
  return {
    ...o.env,
    ...adapterEnv,
    RANK: String(o.nodeRank * o.nproc + local),
    WORLD_SIZE: String(o.nnodes * o.nproc),
    LOCAL_RANK: String(local),
    LOCAL_WORLD_SIZE: String(o.nproc),
    NODE_RANK: String(o.nodeRank),
    MASTER_ADDR: host,
    MASTER_PORT: String(port),
    AUTOPAR_NATS_URL: url,
    AUTOPAR_JOB: o.job,
  };
}

async function runChildren(
  o: Resolved,
  url: string,
  adapters: AdapterPlan,
  stop: AbortSignal,
): Promise<number[]> {
  const children: Child[] = [];
  for (let local = 0; local < o.nproc; local++) {
    const rank = o.nodeRank * o.nproc + local;
    const process = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", o.script, ...o.args],
      env: childEnv(o, url, local, adapters.env[local]),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const child: Child = {
      rank,
      process,
      status: process.status,
      exited: undefined,
      lastLines: [],
      pumps: Promise.resolve(),
      readers: [],
    };
    child.status = process.status.then((s) => child.exited = s);
    child.pumps = Promise.all([
      pump(process.stdout, (text) => o.onLine({ rank, stream: "stdout", text }), child.readers),
      pump(process.stderr, (text) => {
        o.onLine({ rank, stream: "stderr", text });
        child.lastLines.push(text);
        if (child.lastLines.length > LAST_LINES) child.lastLines.shift();
      }, child.readers),
    ]).then(() => {});
    children.push(child);
  }
  const outcome = await firstOutcome(children, stop, o.timeoutMs);
  if (outcome.kind !== "done") {
    const running = children.filter((c) => c.exited === undefined);
    if (running.length > 0) {
      say(o, `stopping ${ranksText(running.map((c) => c.rank), "")} (SIGTERM, then SIGKILL)`);
    }
    await Promise.all(running.map((c) => stopProcess(c.process, c.status, o.killTimeoutMs)));
  }
  await drain(children);
  if (outcome.kind === "failed") throw failedError(o, outcome.child, children);
  if (outcome.kind === "aborted") {
    const reason = outcome.reason;
    throw new LaunchError(
      `Cannot finish job ${o.job}: ${reason.message}; every rank was stopped`,
      reason.exitCode,
    );
  }
  if (outcome.kind === "timeout") {
    throw new LaunchError(
      `Cannot finish job ${o.job} within ${o.timeoutMs} ms: ${
        ranksText(outcome.running, "")
      } still ran and ${outcome.running.length === 1 ? "was" : "were"} stopped`,
      124,
    );
  }
  return children.map((c) => c.exited!.code);
}

type Outcome =
  | { kind: "done" }
  | { kind: "failed"; child: Child }
  | { kind: "aborted"; reason: LaunchError }
  | { kind: "timeout"; running: number[] };

/** Waits until every child has exited with 0, one has failed, the job is aborted or late. */
function firstOutcome(children: Child[], stop: AbortSignal, timeoutMs: number): Promise<Outcome> {
  return new Promise<Outcome>((resolve) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = (outcome: Outcome) => {
      clearTimeout(timer);
      stop.removeEventListener("abort", aborted);
      resolve(outcome);
    };
    const aborted = () => {
      const r = stop.reason;
      finish({
        kind: "aborted",
        reason: r instanceof LaunchError ? r : new LaunchError(String(r), 130),
      });
    };
    if (stop.aborted) return aborted();
    stop.addEventListener("abort", aborted, { once: true });
    if (Number.isFinite(timeoutMs)) {
      timer = setTimeout(() => {
        finish({
          kind: "timeout",
          running: children.filter((c) => c.exited === undefined).map((c) => c.rank),
        });
      }, timeoutMs);
    }
    for (const child of children) {
      child.status.then((s) => {
        if (s.code !== 0 || s.signal !== null) finish({ kind: "failed", child });
        else if (children.every((c) => c.exited?.code === 0)) finish({ kind: "done" });
      });
    }
  });
}

/** Waits for the children's output to end, at most DRAIN_MS (a grandchild may keep a pipe). */
async function drain(children: Child[]): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((r) => timer = setTimeout(() => r("late"), DRAIN_MS));
  const result = await Promise.race([Promise.all(children.map((c) => c.pumps)), late]);
  clearTimeout(timer);
  if (result === "late") {
    await Promise.allSettled(children.flatMap((c) => c.readers.map((r) => r.cancel())));
    await Promise.all(children.map((c) => c.pumps));
  }
}

/** "rank 2 was" / "ranks 0, 2 were" (or without the verb). */
function ranksText(ranks: number[], verb: "be" | "" = "be"): string {
  const one = ranks.length === 1;
  const be = verb === "" ? "" : one ? " was" : " were";
  return `${one ? "rank" : "ranks"} ${ranks.join(", ")}${be}`;
}

function failedError(o: Resolved, child: Child, children: Child[]): ChildFailedError {
  const s = child.exited!;
  const how = s.signal
    ? `was killed by ${s.signal} (exit code ${s.code})`
    : `exited with code ${s.code}`;
  const others = children.filter((c) => c !== child).map((c) => c.rank);
  const stopped = others.length > 0 ? `; ${ranksText(others)} stopped` : "";
  const tail = child.lastLines.length > 0
    ? `; its last stderr lines:\n${child.lastLines.map((l) => `  ${l}`).join("\n")}`
    : "; it wrote nothing to stderr";
  return new ChildFailedError(
    `Cannot finish job ${o.job}: rank ${child.rank} ${how}${stopped}${tail}`,
    {
      rank: child.rank,
      exitCode: s.code,
      signal: s.signal ?? undefined,
      lastLines: [...child.lastLines],
    },
  );
}

/**
 * Calls `line` for each line of `stream` (the last one too when it has no newline); its
 * reader goes into `readers`, so that a drain that waits too long can cancel it.
 */
async function pump(
  stream: ReadableStream<Uint8Array>,
  line: (text: string) => void,
  readers: ReadableStreamDefaultReader<Uint8Array>[],
): Promise<void> {
  const decoder = new TextDecoder();
  const reader = stream.getReader();
  readers.push(reader);
  let pending = "";
  try {
    while (true) {
      const { value: bytes, done } = await reader.read();
      if (done) break;
      const lines = (pending + decoder.decode(bytes, { stream: true })).split("\n");
      pending = lines.pop()!;
      for (const l of lines) line(l.endsWith("\r") ? l.slice(0, -1) : l);
    }
  } catch {
    // cancelled after the child exited
  }
  pending += decoder.decode();
  if (pending !== "") line(pending);
}
