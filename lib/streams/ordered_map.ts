/**
 * The scheduling core of `copyTo`, free of tensors so marble tests can drive it: maps each
 * item through an asynchronous step with at most `concurrency` steps running, and emits the
 * results in the order of the items. Items waiting for a free step are held, which slows a
 * `paced` producer upstream.
 *
 * @module
 */
import { Observable, type ObservableInput, type OperatorFunction } from "npm:rxjs@7.8.2";
import { hold, release } from "./holds.ts";
import { whenDone } from "./when_done.ts";

/** What {@link orderedMap} needs. */
export interface OrderedMapOptions<T, R> {
  /** Most steps running at once (>= 1). */
  concurrency: number;
  /** Starts the step for an item; its first value is the result. */
  start: (item: T) => { result: R; done: ObservableInput<unknown> };
  /** Frees an item that was taken but not started (unsubscription, error). */
  discardItem?: (item: T) => void;
  /** Frees a result that will not be emitted (unsubscription, error). */
  discardResult?: (result: R) => void;
}

/** Emits `start(item).result` for each item, in order, once its `done` completes. */
export function orderedMap<T extends object, R>(
  options: OrderedMapOptions<T, R>,
): OperatorFunction<T, R> {
  const { concurrency, start, discardItem = () => {}, discardResult = () => {} } = options;
  return (source) =>
    new Observable<R>((subscriber) => {
      const waiting: T[] = [];
      const running: { result: R; done: boolean; sub?: { unsubscribe(): void } }[] = [];
      let sourceDone = false;
      let closed = false;

      const flush = () => {
        while (!closed && running.length > 0 && running[0].done) {
          subscriber.next(running.shift()!.result);
        }
        startSome();
        if (!closed && sourceDone && waiting.length === 0 && running.length === 0) {
          subscriber.complete();
        }
      };
      const startSome = () => {
        while (!closed && waiting.length > 0 && running.length < concurrency) {
          const item = waiting.shift()!;
          let step: { result: R; done: ObservableInput<unknown> };
          try {
            step = start(item);
          } catch (e) {
            release(item);
            discardItem(item);
            subscriber.error(e);
            return;
          }
          const slot: (typeof running)[number] = { result: step.result, done: false };
          running.push(slot);
          slot.sub = whenDone(step.done, () => {
            slot.done = true;
            flush();
          }, (e) => subscriber.error(e));
          // Last: releasing may make the producer emit more, re-entering this loop.
          release(item);
        }
      };
      const sub = source.subscribe({
        next: (item) => {
          hold(item);
          waiting.push(item);
          startSome();
        },
        error: (e) => subscriber.error(e),
        complete: () => {
          sourceDone = true;
          flush();
        },
      });
      return () => {
        closed = true;
        sub.unsubscribe();
        for (const item of waiting.splice(0)) {
          release(item);
          discardItem(item);
        }
        for (const r of running.splice(0)) {
          r.sub?.unsubscribe();
          discardResult(r.result);
        }
      };
    });
}
