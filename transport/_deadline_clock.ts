/**
 * One timer for many deadlines: what `rekeyInterval` needs on every
 * connection, without a timer object (and its closures) per connection.
 * Deadlines are coarse by design: wake-ups are at least
 * {@linkcode DeadlineClock.granularity} apart, so a burst of connections
 * made together is handled in one pass.
 *
 * @module
 */

/** Calls `due(key)` once each key's deadline has passed. */
export class DeadlineClock<K extends object> {
  /** Fewest milliseconds between two wake-ups. */
  readonly granularity: number;
  readonly #due: (key: K) => void;
  readonly #deadlines = new Map<K, number>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;

  constructor(due: (key: K) => void, granularity = 1000) {
    this.#due = due;
    this.granularity = granularity;
  }

  /** Number of keys waiting. */
  get size(): number {
    return this.#deadlines.size;
  }

  /** Sets (or moves) the deadline of `key` to the time `at` (ms epoch). */
  set(key: K, at: number): void {
    if (!Number.isFinite(at)) {
      this.#deadlines.delete(key);
      return;
    }
    this.#deadlines.set(key, at);
    if (at < this.#timerAt) this.#arm(at);
  }

  /** Forgets `key`. */
  delete(key: K): void {
    this.#deadlines.delete(key);
    if (this.#deadlines.size === 0 && this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#timerAt = Infinity;
    }
  }

  #arm(at: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    const wait = Math.max(this.granularity, at - Date.now());
    this.#timerAt = Date.now() + wait;
    this.#timer = setTimeout(() => this.#tick(), wait);
    // Deadlines alone must not keep the process alive.
    Deno.unrefTimer(this.#timer);
  }

  #tick(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = Date.now();
    let next = Infinity;
    const fired: K[] = [];
    for (const [key, at] of this.#deadlines) {
      if (at <= now) fired.push(key);
      else if (at < next) next = at;
    }
    for (const key of fired) this.#deadlines.delete(key);
    if (next < Infinity) this.#arm(next);
    for (const key of fired) {
      try {
        this.#due(key);
      } catch {
        // One key's failure is its own (the transport reports it); the
        // others still fire.
      }
    }
  }
}
