/**
 * The scheduling core of `DataLoader`, free of tensors so marble tests can drive it: items
 * are made ahead of the consumer (at most `prefetch` beyond the one it has), emitted in
 * order once ready, and lent: each is disposed as soon as the consumer lets go of it. An
 * async iterator over such a stream lets go of an item when the loop asks for the next.
 *
 * @module
 */
import { Observable, type ObservableInput, type Subscription } from "npm:rxjs@7.8.2";
import { hold, release, whenReleased } from "../streams/holds.ts";
import { paced } from "../streams/paced.ts";

/** What {@link lend} needs. */
export interface LendOptions<T> {
  /** How many items. */
  count: number;
  /** Items made ahead of the one the consumer has (>= 0). */
  prefetch: number;
  /** Makes item `i`; may throw, which errors the stream. */
  make: (i: number) => T;
  /** Completes (or emits once) when the item is ready; an error errors the stream. */
  ready: (item: T) => ObservableInput<unknown>;
  /** Frees an item: after the consumer let go of it, or when it will not be emitted. */
  dispose: (item: T) => void;
}

/**
 * Emits items 0..count-1 in order once each is ready. An item is lent: it is disposed once
 * the subscriber's `next` has returned, or later, when a consumer {@link hold}s it, at its
 * {@link release}. Until then at most `prefetch` later items are made.
 */
export function lend<T extends object>(options: LendOptions<T>): Observable<T> {
  const { count, prefetch, make, ready, dispose } = options;
  const items = paced({ count, inFlight: prefetch + 1, make, ready, discard: dispose });
  return new Observable<T>((subscriber) =>
    items.subscribe({
      next: (item) => {
        subscriber.next(item);
        // Registered before paced's own waiter, so the item is freed before the next is made.
        whenReleased(item, () => dispose(item));
      },
      error: (e) => subscriber.error(e),
      complete: () => subscriber.complete(),
    })
  );
}

/**
 * An async iterator over a {@link lend} stream that holds each item it has received until
 * the loop asks for the next one (or stops), then releases it. It subscribes at the first
 * `next()`; `return()` (a `break` out of `for await`) unsubscribes and releases everything.
 * An error of the stream is thrown after the items that came before it.
 */
export function heldIterator<T extends object, V>(
  source: Observable<T>,
  pick: (item: T) => V,
): AsyncIterableIterator<V> {
  const queue: T[] = [];
  let current: T | undefined;
  let failure: { error: unknown } | undefined;
  let complete = false;
  let finished = false;
  let sub: Subscription | undefined;
  let wake = () => {};
  let pending: Promise<void> | undefined;

  const letGo = () => {
    const item = current;
    current = undefined;
    if (item) release(item);
  };
  const finish = () => {
    finished = true;
    sub?.unsubscribe();
    letGo();
    for (const item of queue.splice(0)) release(item);
  };
  const step = async (): Promise<IteratorResult<V, undefined>> => {
    letGo();
    if (finished) return { value: undefined, done: true };
    sub ??= source.subscribe({
      next: (item) => {
        hold(item);
        queue.push(item);
        wake();
      },
      error: (error) => {
        failure = { error };
        wake();
      },
      complete: () => {
        complete = true;
        wake();
      },
    });
    while (queue.length === 0 && !failure && !complete) {
      await new Promise<void>((resolve) => wake = resolve);
    }
    if (queue.length > 0) {
      current = queue.shift()!;
      return { value: pick(current), done: false };
    }
    finish();
    if (failure) throw failure.error;
    return { value: undefined, done: true };
  };
  // One step at a time: a next() during another waits for it, as a loop would; otherwise
  // it lets go of the current item at once, so the producer refills before anything awaits.
  const queued = <R>(run: () => Promise<R>): Promise<R> => {
    const result = pending ? pending.then(run) : run();
    // Attached before the caller awaits `result`, so it runs before the caller resumes.
    const idle = () => {
      if (pending === settled) pending = undefined;
    };
    const settled: Promise<void> = result.then(idle, idle);
    pending = settled;
    return result;
  };
  const iterator: AsyncIterableIterator<V> = {
    next: () => queued(step),
    return: () =>
      queued(() => {
        finish();
        return Promise.resolve({ value: undefined, done: true } as const);
      }),
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}
