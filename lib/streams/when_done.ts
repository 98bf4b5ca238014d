/**
 * Subscribes to a completion signal: the first value or the completion, whichever comes
 * first, counts as done.
 *
 * @module
 */
import { from, type ObservableInput, type Subscription } from "npm:rxjs@7.8.2";

/** Calls `done` once, at the first value or at completion of `signal`; `error` on an error. */
export function whenDone(
  signal: ObservableInput<unknown>,
  done: () => void,
  error: (e: unknown) => void,
): Subscription {
  let settled = false;
  const once = () => {
    if (settled) return;
    settled = true;
    done();
  };
  return from(signal).subscribe({ next: once, complete: once, error });
}
