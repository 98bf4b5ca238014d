/**
 * Waits for a backend whose waits do not block the thread (Dawn): every submission asks
 * `onSubmittedWorkDone` at once and every readback maps at once. The Worker can go on
 * encoding while they are pending, so there is nothing to gain by holding them back, as
 * {@link Drains} must for Deno's blocking waits.
 *
 * @module
 */
import type { DrainQueue, Mappable, Waits } from "./drains.ts";

/** GPUMapMode.READ, so this module needs no WebGPU globals. */
const MAP_READ = 1;

/** See the module's documentation. `onWait` is called as each wait starts. */
export class EagerWaits implements Waits {
  readonly #queue: DrainQueue;
  readonly #onWait: () => void;
  /** The completion of the latest submission: completions are reported in order. */
  #last: Promise<void> = Promise.resolve();

  /** Waits on `queue`; `onWait` runs whenever a wait starts (the Dawn polling's wake). */
  constructor(queue: DrainQueue, onWait: () => void = () => {}) {
    this.#queue = queue;
    this.#onWait = onWait;
  }

  submitted(complete: () => void): void {
    this.#onWait();
    const done = this.#queue.onSubmittedWorkDone();
    this.#last = Promise.all([this.#last, done]).then(complete, complete);
  }

  map(buffer: Mappable, offset?: number, size?: number): Promise<void> {
    this.#onWait();
    return buffer.mapAsync(MAP_READ, offset, size);
  }

  beforeSubmit(): void {}

  idle(): void {}
}
