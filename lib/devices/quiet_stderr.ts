/**
 * Keeps Dawn's start-up chatter off stderr. On software adapters, Dawn's Vulkan backend
 * prints "Warning: max...BuffersPerPipelineLayout artificially reduced ..." twice for every
 * adapter it opens, straight to file descriptor 2 from native code, where users take them for
 * errors. While devices start, this sends fd 2 through a pipe and passes on every line but
 * those, so no real error is hidden (only delayed until the devices have started).
 * AUTOPAR_DEBUG=1 leaves stderr alone. Where libc cannot be loaded (no FFI permission, not
 * Linux), nothing is filtered.
 *
 * @module
 */

/** Lines dropped while devices start: Dawn's notes on limits it lowers. */
export const DAWN_NOISE: RegExp = /^Warning: \w+ artificially reduced from \d+ to \d+/;

const O_NONBLOCK = 0o4000;
const F_SETFL = 4;
const STDERR = 2;

interface Libc {
  pipe(fds: Uint8Array): number;
  dup(fd: number): number;
  dup2(from: number, to: number): number;
  close(fd: number): number;
  read(fd: number, buf: Uint8Array, n: bigint): bigint;
  fcntl(fd: number, cmd: number, arg: number): number;
  write(fd: number, buf: Uint8Array, n: bigint): bigint;
}

const decoder = new TextDecoder();

let libc: Libc | null | undefined;

function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  try {
    if (Deno.build.os !== "linux") return libc = null;
    const lib = Deno.dlopen("libc.so.6", {
      pipe: { parameters: ["buffer"], result: "i32" },
      dup: { parameters: ["i32"], result: "i32" },
      dup2: { parameters: ["i32", "i32"], result: "i32" },
      close: { parameters: ["i32"], result: "i32" },
      read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
      fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
      write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
    });
    libc = lib.symbols as unknown as Libc;
  } catch {
    libc = null;
  }
  return libc;
}

interface Redirect {
  saved: number;
  reader: number;
  timer: ReturnType<typeof setInterval> | undefined;
  pending: string;
}

let active: Redirect | undefined;
let users = 0;

/** Reads what the pipe holds and writes on every whole line that is not noise. */
function pass(r: Redirect, flush: boolean): void {
  const c = libc!;
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = Number(c.read(r.reader, buf, BigInt(buf.length)));
    if (n <= 0) break;
    r.pending += decoder.decode(buf.subarray(0, n), { stream: true });
  }
  const lines = r.pending.split("\n");
  r.pending = lines.pop()!; // the line not yet ended
  if (flush && r.pending !== "") {
    lines.push(r.pending);
    r.pending = "";
  }
  const kept = lines.filter((l) => !DAWN_NOISE.test(l));
  if (kept.length === 0) return;
  // Straight to the saved descriptor: fd 2 may still be the pipe.
  const bytes = new TextEncoder().encode(kept.join("\n") + "\n");
  for (let off = 0; off < bytes.length;) {
    const w = Number(c.write(r.saved, bytes.subarray(off), BigInt(bytes.length - off)));
    if (w <= 0) break;
    off += w;
  }
}

/**
 * Filters Dawn's noise out of stderr until the returned function is called (calls nest: the
 * filter ends with the last). Does nothing under AUTOPAR_DEBUG or without libc.
 *
 * @example
 * ```ts
 * import { quietStderr } from "./quiet_stderr.ts";
 * const done = quietStderr();
 * console.error("a real error still shows"); // written out when done() runs
 * done();
 * ```
 */
export function quietStderr(): () => void {
  const debug = Deno.env.get("AUTOPAR_DEBUG");
  if ((debug && debug !== "0") || !loadLibc()) return () => {};
  users++;
  if (!active) {
    const c = libc!;
    const fds = new Uint8Array(8);
    const saved = c.dup(STDERR);
    if (saved < 0 || c.pipe(fds) !== 0) {
      if (saved >= 0) c.close(saved);
      users--;
      return () => {};
    }
    const view = new DataView(fds.buffer);
    const [reader, writer] = [view.getInt32(0, true), view.getInt32(4, true)];
    c.fcntl(reader, F_SETFL, O_NONBLOCK);
    c.dup2(writer, STDERR);
    c.close(writer);
    const r: Redirect = { saved, reader, pending: "", timer: undefined };
    // Drained while devices start, so a writer never blocks on a full pipe.
    r.timer = setInterval(() => pass(r, false), 20);
    Deno.unrefTimer(r.timer as unknown as number);
    active = r;
  }
  let ended = false;
  return () => {
    if (ended) return;
    ended = true;
    if (--users > 0 || !active) return;
    const r = active;
    active = undefined;
    clearInterval(r.timer);
    const c = libc!;
    c.dup2(r.saved, STDERR);
    pass(r, true);
    c.close(r.reader);
    c.close(r.saved);
  };
}
