/**
 * A bounded queue of incoming messages that an async state machine pulls
 * from, so auth can be written as straight-line code.
 *
 * @module
 */
import { DisconnectError } from "../errors.ts";
import { DisconnectReason } from "../wire/messages.ts";

export class Inbox {
  #items: Uint8Array[] = [];
  #waiter:
    | { resolve: (p: Uint8Array) => void; reject: (e: Error) => void }
    | null = null;
  #error: Error | null = null;
  readonly #limit: number;

  constructor(limit = 64) {
    this.#limit = limit;
  }

  /** Adds a message; throws when the peer floods the queue. */
  push(payload: Uint8Array): void {
    if (this.#error) return;
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = null;
      w.resolve(payload);
      return;
    }
    if (this.#items.length >= this.#limit) {
      throw new DisconnectError(
        DisconnectReason.PROTOCOL_ERROR,
        `Peer sent more than ${this.#limit} authentication messages without waiting for replies`,
      );
    }
    this.#items.push(payload);
  }

  /** Waits for the next message. */
  next(): Promise<Uint8Array> {
    if (this.#error) return Promise.reject(this.#error);
    const item = this.#items.shift();
    if (item) return Promise.resolve(item);
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  /** Fails the waiting and all future `next()` calls. */
  close(error: Error): void {
    if (this.#error) return;
    this.#error = error;
    this.#items = [];
    const w = this.#waiter;
    this.#waiter = null;
    w?.reject(error);
  }
}
