/**
 * The tolerance check that GPU results and CPU references share in the tests.
 *
 * @module
 */
import assert from "node:assert/strict";

/**
 * Asserts each element is within `tol` times the larger of 1, the expected value and
 * `magnitude` (the inputs' size); NaN must meet NaN. Fails naming the first element off.
 */
export function assertClose(
  actual: Float32Array,
  expected: ArrayLike<number>,
  tol: number,
  what: string,
  magnitude = 1,
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const e = expected[i];
    const ok = Number.isNaN(e)
      ? Number.isNaN(actual[i])
      : Math.abs(actual[i] - e) <= tol * Math.max(1, Math.abs(e), magnitude);
    if (!ok) assert.fail(`${what}: element ${i} is ${actual[i]}, expected ${e} (tolerance ${tol})`);
  }
}
