/**
 * How a Worker running Dawn waits for its device. While any promise of dawn.node is pending
 * (a map, `onSubmittedWorkDone`, a pipeline), the binding polls the device by calling the
 * global `setImmediate` again and again (google/dawn, src/dawn/node/binding/AsyncRunner.cpp).
 * With Node's real `setImmediate` that spins: measured on lavapipe, a one-core job used
 * 1.98 cores. With a `setTimeout` in its place, a small readback took 2.2 ms instead of
 * 0.1 ms (nested timers are clamped to 4 ms). And polling never stops: `device.lost` is a
 * promise that stays pending for the device's life.
 *
 * So polls spin for the first {@link PollingOptions.spinMs} after the Worker starts a wait
 * (a short wait is answered at once), then sleep before each poll (long work burns no core):
 * an eighth of the time waited so far, from 0.25 ms up to {@link PollingOptions.sleepMs}, so
 * a wait ends at most about 12% late. Fewer wake-ups matter on a software adapter, where
 * every poll takes a core from the devices: on two devices, T(both)/(T1+T2) was 0.58-0.66
 * with sleeps of 1 ms, 0.54-0.55 with 4 ms, and 0.49-0.57 with this policy. The sleep blocks the Worker (`Atomics.wait`, exact to the
 * millisecond, unlike timers); it starts only once the event loop has had its turn, so a
 * message waits at most one sleep. The Worker calls {@link Polling.wake} whenever it starts
 * a wait.
 *
 * @module
 */

/** Options of {@link Polling}. */
export interface PollingOptions {
  /**
   * How long polls spin after a wake, in ms.
   * @default {1}
   */
  spinMs?: number;
  /**
   * The longest sleep between two polls after that, in ms.
   * @default {4}
   */
  sleepMs?: number;
}

/** The scheduling primitives a {@link Polling} builds on, so tests can give fakes. */
export interface PollingHost {
  now(): number;
  immediate(fn: () => void): void;
  /** Blocks the thread for `ms`. */
  sleep(ms: number): void;
}

/** The shortest sleep between two polls, in ms. */
const MIN_SLEEP_MS = 0.25;

/** A `setImmediate` for dawn.node: spins for a while after each wake, then sleeps. */
export class Polling {
  readonly #host: PollingHost;
  readonly #spinMs: number;
  readonly #sleepMs: number;
  #wokeAt = -Infinity;
  /** Polls that spun and that slept, for benchmarks. */
  spins = 0;
  sleeps = 0;

  /** A policy over `host`'s clock and schedulers. */
  constructor(host: PollingHost, options: PollingOptions = {}) {
    this.#host = host;
    this.#spinMs = options.spinMs ?? 1;
    this.#sleepMs = options.sleepMs ?? 4;
  }

  /** A wait starts: the next polls spin. */
  wake(): void {
    this.#wokeAt = this.#host.now();
  }

  /**
   * Schedules `fn` like `setImmediate(fn, ...args)`. Whether it sleeps first is decided when
   * it runs, so a wake that comes after a poll was queued still makes it prompt.
   */
  schedule(fn: (...args: unknown[]) => void, ...args: unknown[]): void {
    this.#host.immediate(() => {
      const waited = this.#host.now() - this.#wokeAt;
      if (waited < this.#spinMs) this.spins++;
      else {
        this.sleeps++;
        this.#host.sleep(Math.min(this.#sleepMs, Math.max(MIN_SLEEP_MS, waited / 8)));
      }
      fn(...args);
    });
  }
}

/**
 * Installs a {@link Polling} as this thread's global `setImmediate` (dawn.node looks it up on
 * every poll) and returns it. Only a Worker that runs Dawn calls this.
 */
export function installPolling(options: PollingOptions = {}): Polling {
  const g = globalThis as unknown as {
    setImmediate: (fn: (...args: unknown[]) => void, ...args: unknown[]) => unknown;
  };
  const native = g.setImmediate.bind(globalThis);
  const cell = new Int32Array(new SharedArrayBuffer(4));
  const polling = new Polling({
    now: () => performance.now(),
    immediate: (fn) => native(fn),
    sleep: (ms) => Atomics.wait(cell, 0, 0, ms),
  }, options);
  g.setImmediate = (fn, ...args) => polling.schedule(fn, ...args);
  return polling;
}
