/**
 * Steps that may answer now or later (a backend in memory answers at once, a shared one later):
 * chained without a promise when the value is already there.
 */
import type { ValueOrPromise } from '../queue/seam.js';

/** `then` for a value that may or may not be a promise: synchronous when it is not. */
export function after<T, U>(value: ValueOrPromise<T>, next: (value: T) => U): ValueOrPromise<U> {
  return value instanceof Promise ? value.then(next) : next(value);
}

/** `after` whose next step may itself answer later. */
export function chain<T, U>(value: ValueOrPromise<T>, next: (value: T) => ValueOrPromise<U>): ValueOrPromise<U> {
  return value instanceof Promise ? value.then(next) : next(value);
}

export const yes = (): boolean => true;
export const no = (): boolean => false;
