/**
 * Holds: how a consumer tells the producer upstream that an item it was given is still
 * waiting in the consumer's buffer. A producer keeps an item's slot taken while it is held,
 * so a slow consumer slows production instead of growing memory (backpressure).
 *
 * @module
 */

const counts = new WeakMap<object, number>();
const waiters = new WeakMap<object, (() => void)[]>();

/** Marks `item` as held by a consumer; pair each call with {@link release}. */
export function hold(item: object): void {
  counts.set(item, (counts.get(item) ?? 0) + 1);
}

/** Lets go of one {@link hold} of `item`; when none is left, wakes whoever waits on it. */
export function release(item: object): void {
  const n = (counts.get(item) ?? 0) - 1;
  if (n > 0) {
    counts.set(item, n);
    return;
  }
  counts.delete(item);
  const ws = waiters.get(item) ?? [];
  waiters.delete(item);
  for (const w of ws) w();
}

/** Calls `then` once `item` is not held (at once when it is not held now). */
export function whenReleased(item: object, then: () => void): void {
  if (!counts.has(item)) {
    then();
    return;
  }
  const ws = waiters.get(item) ?? [];
  ws.push(then);
  waiters.set(item, ws);
}
