/**
 * A local NATS server for a job: Debian's `nats-server` with JetStream on, bound to
 * 127.0.0.1 on a free port, its store in a temporary directory that goes with it. The
 * launcher starts one when it is given no `--master`; tests start their own.
 *
 * @module
 */

/**
 * Options of {@linkcode startNatsServer}.
 *
 * @example
 * ```ts
 * import { type NatsServerOptions, startNatsServer } from "./nats_server.ts";
 * const options: NatsServerOptions = { maxPayload: 64 * 1024, startTimeoutMs: 10_000 };
 * await using server = await startNatsServer(options);
 * console.log(server.maxPayload); // 65536
 * ```
 */
export interface NatsServerOptions {
  /**
   * The port to listen on; taken as given (no retry on another one when it is busy).
   * @default {a free port, chosen anew if the first one is taken meanwhile}
   */
  port?: number;
  /**
   * The largest message the server accepts, in bytes (written to a config file: nats-server
   * 2.9 has no flag for it).
   * @default {the server's own, 1 MiB}
   */
  maxPayload?: number;
  /**
   * How long the server may take to accept connections before starting fails.
   * @default {10000}
   */
  startTimeoutMs?: number;
  /**
   * How long a stopping server may take after SIGTERM before it is killed with SIGKILL.
   * @default {5000}
   */
  stopTimeoutMs?: number;
  /**
   * The program to run.
   * @default {"nats-server"}
   */
  executable?: string;
}

/**
 * What a NATS server says about itself when a client connects (the `INFO` line of the
 * protocol); the fields the launcher reads.
 *
 * @example
 * ```ts
 * import { type NatsInfo, probeNats, startNatsServer } from "./nats_server.ts";
 * await using server = await startNatsServer();
 * const info: NatsInfo = await probeNats(server.url);
 * console.log(info.jetstream, info.max_payload); // true 1048576
 * ```
 */
export interface NatsInfo {
  /** The server's version, for example "2.9.10". */
  version: string;
  /** The largest message it accepts, in bytes. */
  max_payload: number;
  /** Whether JetStream (and with it key-value buckets) is on. */
  jetstream?: boolean;
}

/**
 * A running server. `await using` stops it at the end of the scope.
 *
 * @example
 * ```ts
 * import { type NatsServer, startNatsServer } from "./nats_server.ts";
 * const server: NatsServer = await startNatsServer();
 * console.log(server.url.startsWith("nats://127.0.0.1:")); // true
 * await server.stop(); // its port is closed and its store removed
 * ```
 */
export interface NatsServer extends AsyncDisposable {
  /** `nats://127.0.0.1:<port>`. */
  url: string;
  /** The address it listens on: always "127.0.0.1". */
  host: string;
  /** The port it listens on. */
  port: number;
  /** Its temporary directory (the JetStream store and the config); removed by `stop()`. */
  storeDir: string;
  /** The largest message it accepts, as it reported on connect. */
  maxPayload: number;
  /** The server's process id. */
  pid: number;
  /** Stops it (SIGTERM, then SIGKILL after `stopTimeoutMs`) and removes its store; idempotent. */
  stop(): Promise<void>;
}

const HOST = "127.0.0.1";
const PROBE_EVERY_MS = 25;

/** A port nothing listens on right now (the OS picks it; it may be taken before it is used). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Splits `nats://host:port` or `host:port` into a host (without IPv6 brackets) and a port. */
export function parseNatsAddress(address: string): { host: string; port: number } {
  const m = /^(?:nats:\/\/)?(\[[^\]]+\]|[^:/\s]+):(\d+)\/?$/.exec(address.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 1 && port <= 65535)) {
    throw new RangeError(
      `Cannot use NATS address "${address}": it must be host:port or nats://host:port with a port 1-65535`,
    );
  }
  return { host: m[1].replace(/^\[|\]$/g, ""), port };
}

/**
 * Connects to the NATS server at `url` (`nats://host:port` or `host:port`) and resolves to
 * the `INFO` it greets clients with, then closes the connection. Retries while the
 * connection is refused, for at most `timeoutMs`; then rejects with an Error naming the URL
 * and the last reason.
 *
 * @example
 * ```ts
 * import { probeNats, startNatsServer } from "./nats_server.ts";
 * await using server = await startNatsServer();
 * console.log((await probeNats(server.url, 2000)).version); // "2.9.10"
 * ```
 */
export function probeNats(url: string, timeoutMs = 5000): Promise<NatsInfo> {
  return waitForInfo(url, timeoutMs, () => false);
}

/** Like {@linkcode probeNats}, but gives up early once `stopIf()` is true. */
async function waitForInfo(
  url: string,
  timeoutMs: number,
  stopIf: () => boolean,
): Promise<NatsInfo> {
  const { host, port } = parseNatsAddress(url);
  const deadline = performance.now() + timeoutMs;
  let reason = "no answer";
  while (!stopIf()) {
    try {
      return await readInfo(host, port, Math.max(1, deadline - performance.now()));
    } catch (e) {
      reason = e instanceof Error ? e.message : String(e);
    }
    if (performance.now() + PROBE_EVERY_MS >= deadline) break;
    await new Promise((r) => setTimeout(r, PROBE_EVERY_MS));
  }
  throw new Error(`Cannot reach the NATS server at ${url} within ${timeoutMs} ms: ${reason}`);
}

/** Reads the first protocol line, `INFO {...}`, from a fresh connection, within `ms`. */
async function readInfo(host: string, port: number, ms: number): Promise<NatsInfo> {
  const connecting = Deno.connect({ hostname: host, port });
  let connectTimer: ReturnType<typeof setTimeout> | undefined;
  const conn = await Promise.race([
    connecting,
    new Promise<never>((_, reject) => {
      connectTimer = setTimeout(() => {
        connecting.then((c) => c.close(), () => {});
        reject(new Error(`no connection within ${Math.round(ms)} ms`));
      }, ms);
    }),
  ]).finally(() => clearTimeout(connectTimer));
  let late = false;
  const timer = setTimeout(() => {
    late = true;
    conn.close();
  }, ms);
  try {
    const buf = new Uint8Array(4096);
    let text = "";
    while (!text.includes("\r\n") && text.length < 64 * 1024) {
      const n = await conn.read(buf);
      if (n === null) throw new Error("the connection closed before the server said INFO");
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    const line = text.split("\r\n")[0];
    if (!line.startsWith("INFO ")) {
      throw new Error(`it is no NATS server: it said ${JSON.stringify(line.slice(0, 80))}`);
    }
    return JSON.parse(line.slice(5)) as NatsInfo;
  } catch (e) {
    throw late ? new Error(`no INFO within ${Math.round(ms)} ms`) : e;
  } finally {
    clearTimeout(timer);
    if (!late) conn.close();
  }
}

/**
 * Starts `nats-server -js -a 127.0.0.1 -p PORT -sd DIR` and resolves once it accepts
 * connections and has said INFO. A port taken between choosing and binding is retried on
 * another (three tries). Rejects with an Error that names the command and ends with the
 * server's last log lines when it exits or does not answer within `startTimeoutMs`, and says
 * how to install it when the program is missing; nothing is left running then.
 *
 * @example
 * ```ts
 * import { startNatsServer } from "./nats_server.ts";
 * await using server = await startNatsServer();
 * console.log(server.url); // "nats://127.0.0.1:40123" (a free port)
 * ```
 */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const { maxPayload, startTimeoutMs = 10_000, stopTimeoutMs = 5000 } = options;
  if (maxPayload !== undefined && !(Number.isInteger(maxPayload) && maxPayload > 0)) {
    throw new RangeError(`Cannot use max_payload ${maxPayload}: it must be a whole number > 0`);
  }
  if (!(startTimeoutMs > 0)) {
    throw new RangeError(`Cannot wait ${startTimeoutMs} ms for nats-server: it must be > 0`);
  }
  const dir = await Deno.makeTempDir({ prefix: "autopar_nats_" });
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < (options.port === undefined ? 3 : 1); attempt++) {
    try {
      return await startOnce(dir, options.port ?? freePort(), options, stopTimeoutMs);
    } catch (e) {
      lastError = e as Error;
      if (!/address already in use/.test(lastError.message)) break;
    }
  }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  throw lastError;
}

async function startOnce(
  dir: string,
  port: number,
  options: NatsServerOptions,
  stopTimeoutMs: number,
): Promise<NatsServer> {
  const executable = options.executable ?? "nats-server";
  const args = ["-js", "-a", HOST, "-p", String(port), "-sd", `${dir}/store`];
  if (options.maxPayload !== undefined) {
    await Deno.writeTextFile(`${dir}/server.conf`, `max_payload: ${options.maxPayload}\n`);
    args.push("-c", `${dir}/server.conf`);
  }
  const command = `${executable} ${args.join(" ")}`;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(executable, {
      args,
      env: { GOGC: goGc() },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound
      ? "it is not installed (apt-get install -y nats-server)"
      : String(e);
    throw new Error(`Cannot start ${command}: ${why}`, { cause: e });
  }
  const log: string[] = [];
  const logged = collectLines(child.stderr, log, 20);
  let exited = false;
  const status = child.status.finally(() => exited = true);
  const stop = once(async () => {
    await stopProcess(child, status, stopTimeoutMs);
    await logged;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  });
  const startTimeoutMs = options.startTimeoutMs ?? 10_000;
  const url = `nats://${HOST}:${port}`;
  const info = await Promise.race([
    waitForInfo(url, startTimeoutMs, () => exited).catch((e: Error) => e),
    status.then((s) => new Error(`it exited with code ${s.code}`)),
  ]);
  if (info instanceof Error || exited) {
    await stopProcess(child, status, stopTimeoutMs);
    await logged;
    const why = info instanceof Error ? info.message : "it exited";
    throw new Error(`Cannot start ${command}: ${why}; its last lines:\n${log.join("\n")}`);
  }
  return {
    url,
    host: HOST,
    port,
    storeDir: dir,
    maxPayload: info.max_payload,
    pid: child.pid,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * The Go collector's target of the server: GOGC when it is set, else 400 (Go's default is
 * 100). A server relaying large messages allocates for each; at 100 its collections took about
 * a fifth of its CPU in bench/distributed.ts (4 ranks, 4 MiB), at 400 the all-reduce ran about
 * 15% faster and the server's peak RSS was about 100 MB instead of 45 MB.
 */
function goGc(): string {
  try {
    return Deno.env.get("GOGC") ?? "400";
  } catch { /* no --allow-env: our own */ }
  return "400";
}

/** Runs `f` once; later calls get the same promise. */
function once(f: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => done ??= f();
}

/**
 * Sends SIGTERM, waits at most `graceMs` for the process to exit, then sends SIGKILL and
 * waits for it. Resolves to its exit status.
 */
export async function stopProcess(
  child: Deno.ChildProcess,
  status: Promise<Deno.CommandStatus>,
  graceMs: number,
): Promise<Deno.CommandStatus> {
  signal(child, "SIGTERM");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((r) => timer = setTimeout(() => r("late"), graceMs));
  const first = await Promise.race([status, late]);
  clearTimeout(timer);
  if (first !== "late") return first;
  signal(child, "SIGKILL");
  return await status;
}

function signal(child: Deno.ChildProcess, sig: Deno.Signal): void {
  try {
    child.kill(sig);
  } catch {
    // already exited
  }
}

/** Reads a stream line by line, keeping the last `keep` lines in `into`. */
async function collectLines(
  stream: ReadableStream<Uint8Array>,
  into: string[],
  keep: number,
): Promise<void> {
  let pending = "";
  const decoder = new TextDecoder();
  try {
    for await (const bytes of stream) {
      const text = decoder.decode(bytes, { stream: true });
      const lines = (pending + text).split("\n");
      pending = lines.pop()!;
      into.push(...lines);
      if (into.length > keep) into.splice(0, into.length - keep);
    }
  } catch {
    // the process is gone
  }
  if (pending) into.push(pending);
}
