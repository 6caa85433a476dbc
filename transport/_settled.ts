/**
 * Shared promise helpers for objects that live as long as a connection: a
 * `() => {}` literal or a `Promise.resolve()` in a constructor is one more
 * heap object per connection, these are one per process.
 *
 * @module
 */

/** A no-op handler, for `.catch(ignore)` and settled resolvers. */
export function ignore(): void {}

/** A settled promise to start a chain from. */
export const SETTLED: Promise<void> = Promise.resolve();
