// The child side of a benchmark that runs each WebGPU backend in a process of its own
// (bench/small_ops.ts, bench/fusion.ts): check the backend, run, print the report as the
// last stdout line, close, exit.
import { parseArgs } from "node:util";
import { closeDevices } from "../mod.ts";
import type { WebGpuBackend } from "../lib/devices/backend.ts";

const BACKENDS: readonly string[] = ["deno", "dawn"];

/** Runs `child` for `backend` and exits: 2 for a bad backend, 1 when the report has an error. */
export async function runBackendChild<R extends { backend: WebGpuBackend; error?: string }>(
  backend: string,
  child: (backend: WebGpuBackend) => Promise<R>,
): Promise<never> {
  if (!BACKENDS.includes(backend)) {
    console.error(`Cannot run backend "${backend}": it must be "deno" or "dawn"`);
    Deno.exit(2);
  }
  const b = backend as WebGpuBackend;
  let report: R | { backend: WebGpuBackend; error: string };
  try {
    report = await child(b);
  } catch (e) {
    report = { backend: b, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
  }
  // The report goes out first, so that a crash while closing still leaves the numbers.
  console.log(JSON.stringify(report));
  await closeDevices().catch(() => {});
  // tfjs's device (and Dawn's instance on this thread) would keep the process alive.
  Deno.exit(report.error ? 1 : 0);
}

/**
 * A per-backend benchmark's arguments: `--backend deno|dawn` (in a child) and `--rounds N`
 * (default 5); exits 2 for rounds that are not a whole number >= 1.
 */
export function backendArgs(args: string[]): { backend?: string; rounds: number } {
  const { values } = parseArgs({
    args,
    options: { backend: { type: "string" }, rounds: { type: "string", default: "5" } },
  });
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) {
    console.error(`Cannot run ${values.rounds} rounds: --rounds must be a whole number >= 1`);
    Deno.exit(2);
  }
  return { backend: values.backend, rounds };
}
