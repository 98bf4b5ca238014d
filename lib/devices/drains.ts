/**
 * When a device Worker waits for its device. Deno's WebGPU calls that wait block the thread
 * that makes them (measured in the Workers, Deno 2.9, lavapipe): `onSubmittedWorkDone()` and
 * `mapAsync()` return only once every submission so far has completed, and a map resolves
 * no sooner than 10 ms after that (Deno's map loop sleeps before it looks again). A Worker
 * that waited right after each submission would sit blocked while its device computes: it
 * could neither encode the next batch nor deliver the readbacks that have landed, and the
 * device would idle while the next batch is encoded.
 *
 * So a Worker waits at two points only: right before it submits a batch it has already
 * encoded (the device then has the batch before it as work, and on a software adapter the
 * submission would wait for that batch anyway), and when it has nothing left to do. A wait
 * maps the readbacks asked for since the last one (all in one group) or, with none and
 * submissions no wait covers yet, asks `onSubmittedWorkDone`; when it resolves, the
 * submissions it covers are reported complete.
 *
 * @module
 */
import { nextTask } from "./next_task.ts";

/** The queue's side of a device, as {@link Drains} uses it. */
export interface DrainQueue {
  onSubmittedWorkDone(): Promise<void>;
}

/** A buffer that can be mapped for reading. */
export interface Mappable {
  mapAsync(mode: number, offset?: number, size?: number): Promise<void>;
}

interface MapRequest {
  buffer: Mappable;
  offset?: number;
  size?: number;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/** When a device Worker waits for its device: {@link Drains}, or EagerWaits (eager_waits.ts) for Dawn. */
export interface Waits {
  /** Records a submission; `complete` is called once it is known to have completed. */
  submitted(complete: () => void): void;
  /** Maps `buffer` for reading; resolves once it is mapped. */
  map(buffer: Mappable, offset?: number, size?: number): Promise<void>;
  /** Called right before a submission. */
  beforeSubmit(): void;
  /** Called when the Worker has nothing left to do. */
  idle(): void;
}

/** GPUMapMode.READ, so this module needs no WebGPU globals. */
const MAP_READ = 1;

/** See the module's documentation. */
export class Drains implements Waits {
  readonly #queue: DrainQueue;
  readonly #isIdle: () => boolean;
  #waiting: MapRequest[] = [];
  /** Submissions not yet known complete, oldest first. */
  #unreported: { seq: number; complete: () => void }[] = [];
  #seq = 0;
  /** The last submission a wait already started covers. */
  #covered = 0;
  #inFlight = 0;

  /**
   * `isIdle` tells whether the Worker has no batch left to run; call {@link idle} whenever
   * it becomes so.
   */
  constructor(queue: DrainQueue, isIdle: () => boolean) {
    this.#queue = queue;
    this.#isIdle = isIdle;
  }

  /** Records a submission; `complete` is called once it is known to have completed. */
  submitted(complete: () => void): void {
    this.#unreported.push({ seq: ++this.#seq, complete });
  }

  /** Maps `buffer` for reading at the next wait; resolves once it is mapped. */
  map(buffer: Mappable, offset?: number, size?: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ buffer, offset, size, resolve, reject });
    });
  }

  /** Submissions not yet reported complete. */
  get unreported(): number {
    return this.#unreported.length;
  }

  /** Waits in flight (map groups and queue waits). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Call right before a submission: waits for what was submitted before it. */
  beforeSubmit(): void {
    this.#wait();
  }

  /** Call when the Worker has nothing to do: waits for what no wait covers yet. */
  idle(): void {
    this.#wait();
  }

  #wait(): void {
    const upTo = this.#seq;
    if (this.#waiting.length > 0) {
      this.#covered = upTo;
      this.#start(this.#group(upTo));
    } else if (upTo > this.#covered) {
      this.#covered = upTo;
      this.#start(this.#queue.onSubmittedWorkDone().then(() => this.#completeUpTo(upTo)));
    }
  }

  /** Maps every buffer asked for (the first map blocks until the device is done). */
  #group(upTo: number): Promise<unknown> {
    const group = this.#waiting;
    this.#waiting = [];
    const maps = Promise.allSettled(group.map((r) => {
      try {
        return r.buffer.mapAsync(MAP_READ, r.offset, r.size).then(() => {
          // Everything submitted before the map has completed: report it first.
          this.#completeUpTo(upTo);
          r.resolve();
        }, r.reject);
      } catch (e) {
        r.reject(e);
        return undefined;
      }
    }));
    // Every map failed: the submissions are known complete once the queue says so.
    return maps.then(() =>
      this.#unreported.length > 0 && this.#unreported[0].seq <= upTo
        ? this.#queue.onSubmittedWorkDone().then(() => this.#completeUpTo(upTo))
        : undefined
    );
  }

  #start(wait: Promise<unknown>): void {
    this.#inFlight++;
    // A task later, so the handlers of what resolved (which post the data) run before the
    // next wait can block the thread.
    wait.catch(() => undefined).then(() =>
      nextTask(() => {
        this.#inFlight--;
        if (this.#isIdle()) this.idle();
      })
    );
  }

  #completeUpTo(seq: number): void {
    while (this.#unreported.length > 0 && this.#unreported[0].seq <= seq) {
      this.#unreported.shift()!.complete();
    }
  }
}
