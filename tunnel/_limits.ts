/**
 * Per-tunnel limits: a bounded queue of requests waiting for one of a
 * fixed number of slots, and a circuit breaker that fails fast while the
 * client's local service keeps failing.
 *
 * @module
 */

/** Thrown when the queue is full. */
export class QueueFullError extends Error {}

/** At most `slots` holders at once, at most `queue` waiting. */
export class Slots {
  readonly #slots: number;
  readonly #queue: number;
  #busy = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(slots: number, queue: number) {
    this.#slots = slots;
    this.#queue = queue;
  }

  /** Requests in progress. */
  get busy(): number {
    return this.#busy;
  }

  /** Requests waiting. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * Waits for a slot; returns its release function.
   *
   * @throws {QueueFullError} when `queue` requests already wait.
   */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    if (this.#busy >= this.#slots) {
      if (this.#waiting.length >= this.#queue) throw new QueueFullError();
      await new Promise<void>((resolve, reject) => {
        const entry = () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        };
        const onAbort = () => {
          const i = this.#waiting.indexOf(entry);
          if (i >= 0) this.#waiting.splice(i, 1);
          reject(signal!.reason);
        };
        signal?.addEventListener("abort", onAbort, { once: true });
        this.#waiting.push(entry);
      });
    } else {
      this.#busy++;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      // The slot passes straight to the next waiter.
      if (next) next();
      else this.#busy--;
    };
  }
}

/**
 * Closed: requests flow; `threshold` consecutive failures open it. Open:
 * requests fail fast for `openMs`. Then half-open: one trial request; its
 * success closes the breaker, its failure opens it again.
 */
export class CircuitBreaker {
  readonly #threshold: number;
  readonly #openMs: number;
  #failures = 0;
  #openUntil = 0;
  #trial = false;

  constructor(threshold: number, openMs: number) {
    this.#threshold = threshold;
    this.#openMs = openMs;
  }

  /** `closed`, `open` or `half-open`. */
  get state(): "closed" | "open" | "half-open" {
    if (this.#openUntil === 0) return "closed";
    return Date.now() < this.#openUntil ? "open" : "half-open";
  }

  /**
   * Whether a request may go now; otherwise the seconds until it may
   * (for Retry-After).
   */
  allow(): { ok: true } | { ok: false; retryAfter: number } {
    const state = this.state;
    if (state === "closed") return { ok: true };
    if (state === "open") {
      return {
        ok: false,
        retryAfter: Math.max(
          1,
          Math.ceil((this.#openUntil - Date.now()) / 1000),
        ),
      };
    }
    if (this.#trial) return { ok: false, retryAfter: 1 };
    this.#trial = true;
    return { ok: true };
  }

  /** The local service answered. */
  success(): void {
    this.#failures = 0;
    this.#openUntil = 0;
    this.#trial = false;
  }

  /** The local service failed (unreachable, garbage, timeout). */
  failure(): void {
    this.#failures++;
    if (this.#trial || this.#failures >= this.#threshold) {
      this.#openUntil = Date.now() + this.#openMs;
      this.#trial = false;
    }
  }
}
