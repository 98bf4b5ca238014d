/**
 * Number formatting for the dashboard: seconds, milliseconds, bytes and rates.
 *
 * @module
 */

/**
 * Bytes with a binary unit: `formatBytes(1536)` is "1.5 KiB".
 *
 * @example
 * ```ts
 * import { formatBytes } from "./format.ts";
 * console.log(formatBytes(4 * 2 ** 20)); // "4.0 MiB"
 * ```
 */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${Math.round(n)} B` : `${n.toFixed(1)} ${units[i]}`;
}

/**
 * A duration in milliseconds, with a precision that suits its size.
 *
 * @example
 * ```ts
 * import { formatMs } from "./format.ts";
 * console.log(formatMs(0.25)); // "0.250 ms"
 * ```
 */
export function formatMs(ms: number): string {
  if (ms >= 1000) return `${(ms / 1000).toFixed(3)} s`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(3)} ms`;
}
