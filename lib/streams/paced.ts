/**
 * The scheduling core of `produce`, free of tensors so marble tests can drive it: makes
 * items 0..count-1, at most `inFlight` at a time that are not yet ready or still held
 * downstream, and emits them in order once each is ready.
 *
 * @module
 */
import { Observable, type ObservableInput } from "npm:rxjs@7.8.2";
import { countWaiting } from "./backpressure.ts";
import { whenReleased } from "./holds.ts";
import { whenDone } from "./when_done.ts";

/** What {@link paced} needs to know about the items it makes. */
export interface PacedOptions<T> {
  /** How many items. */
  count: number;
  /** At most this many items made and not yet emitted-and-released. */
  inFlight: number;
  /** Makes item `i`; may throw, which errors the stream. */
  make: (i: number) => T;
  /** Completes (or emits once) when the item is ready; an error errors the stream. */
  ready: (item: T) => ObservableInput<unknown>;
  /** Frees an item that was made but will not be emitted (unsubscription, error). */
  discard: (item: T) => void;
}

/** Makes and emits items in order, with at most `inFlight` in flight. */
export function paced<T extends object>(options: PacedOptions<T>): Observable<T> {
  const { count, inFlight, make, ready, discard } = options;
  return new Observable<T>((subscriber) => {
    const slots: { item: T; ready: boolean; sub?: { unsubscribe(): void } }[] = [];
    let next = 0;
    let taken = 0; // made, and not yet emitted-and-released
    let closed = false;
    let stalled = false; // out of slots while a consumer holds an emitted item
    const markStalled = (on: boolean) => {
      if (on === stalled) return;
      stalled = on;
      countWaiting(on);
    };

    const fail = (e: unknown) => {
      if (closed) return;
      subscriber.error(e);
    };
    const emitReady = () => {
      while (!closed && slots.length > 0 && slots[0].ready) {
        const { item } = slots.shift()!;
        subscriber.next(item);
        whenReleased(item, () => {
          taken--;
          fill();
        });
      }
      markStalled(!closed && next < count && taken >= inFlight && taken > slots.length);
      if (!closed && next >= count && taken === 0 && slots.length === 0) subscriber.complete();
    };
    const fill = () => {
      while (!closed && taken < inFlight && next < count) {
        let item: T;
        try {
          item = make(next++);
        } catch (e) {
          fail(e);
          return;
        }
        taken++;
        const slot: (typeof slots)[number] = { item, ready: false };
        slots.push(slot);
        slot.sub = whenDone(ready(item), () => {
          slot.ready = true;
          emitReady();
        }, fail);
      }
      emitReady();
    };
    fill();
    return () => {
      closed = true;
      markStalled(false);
      for (const s of slots.splice(0)) {
        s.sub?.unsubscribe();
        discard(s.item);
      }
    };
  });
}
