/**
 * rxjs's stream types under their own names, for autopar's public stream types to be made of
 * (`TraceStream`, `TensorStream`, `TensorOperator`). rxjs documents them, so `@ignore` leaves
 * them out of autopar's docs, and `deno doc --lint` does not ask for them to be exported and
 * documented here (exporting rxjs's own declarations would have it lint those).
 *
 * @module
 */
import type * as rxjs from "npm:rxjs@7.8.2";

/**
 * rxjs's `Observable`.
 * @ignore
 */
export type Observable<T> = rxjs.Observable<T>;

/**
 * rxjs's `OperatorFunction`: what `.pipe()` takes.
 * @ignore
 */
export type OperatorFunction<T, R> = rxjs.OperatorFunction<T, R>;
