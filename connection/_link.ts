/**
 * Two {@linkcode Connection}s wired back to back through an in-memory link,
 * for tests: each side's payloads are copied and delivered asynchronously,
 * in order, to the other side's `dispatch`, through a bounded queue (a full
 * queue makes `send` wait, as a real transport's backpressure does).
 *
 * @module
 */

import { Connection, type ConnectionOptions } from "./connection.ts";

/** A connected client/server pair and what went over the link. */
export interface ConnectionPair {
  client: Connection;
  server: Connection;
  /** Resolves with the error that ended the pair (a protocol error thrown by dispatch), or null after close(). */
  readonly closed: Promise<Error | null>;
  /** Called with each payload before delivery; `from` is the sending side. */
  onMessage: ((from: "client" | "server", payload: Uint8Array) => void) | null;
  /** Closes both connections (idempotent). */
  close(error?: Error): void;
}

/** Options for {@linkcode connectionPair}. */
export interface ConnectionPairOptions {
  /** Payloads queued per direction before `send` waits. @default 64 */
  queueLimit?: number;
}

/** Makes a client and a server {@linkcode Connection} joined by an in-memory link. */
export function connectionPair(
  clientOptions: Omit<ConnectionOptions, "side"> = {},
  serverOptions: Omit<ConnectionOptions, "side"> = {},
  options: ConnectionPairOptions = {},
): ConnectionPair {
  const limit = options.queueLimit ?? 64;
  let ended = false;
  let resolveClosed!: (e: Error | null) => void;
  const closed = new Promise<Error | null>((r) => resolveClosed = r);

  class Direction {
    queue: Uint8Array[] = [];
    spaceWaiters: (() => void)[] = [];
    pumping = false;
    target!: Connection;
    constructor(readonly from: "client" | "server") {}

    async send(payload: Uint8Array): Promise<void> {
      if (ended) throw new Error("Link closed");
      // The order is fixed when send() is called, as a transport does; a
      // full queue then makes the caller wait.
      pair.onMessage?.(this.from, payload);
      this.queue.push(payload.slice());
      if (!this.pumping) this.pump();
      while (!ended && this.queue.length > limit) {
        await new Promise<void>((r) => this.spaceWaiters.push(r));
      }
      if (ended) throw new Error("Link closed");
    }

    async pump(): Promise<void> {
      this.pumping = true;
      while (!ended && this.queue.length > 0) {
        await null;
        const payload = this.queue.shift()!;
        for (const w of this.spaceWaiters.splice(0)) w();
        try {
          await this.target.dispatch(payload);
        } catch (e) {
          pair.close(e as Error);
        }
      }
      this.pumping = false;
    }

    end(): void {
      this.queue = [];
      for (const w of this.spaceWaiters.splice(0)) w();
    }
  }

  const toServer = new Direction("client");
  const toClient = new Direction("server");
  const client = new Connection({ send: (p) => toServer.send(p) }, {
    ...clientOptions,
    side: "client",
  });
  const server = new Connection({ send: (p) => toClient.send(p) }, {
    ...serverOptions,
    side: "server",
  });
  toServer.target = server;
  toClient.target = client;

  const pair: ConnectionPair = {
    client,
    server,
    closed,
    onMessage: null,
    close(error?: Error): void {
      if (ended) return;
      ended = true;
      toServer.end();
      toClient.end();
      client.close(error);
      server.close(error);
      resolveClosed(error ?? null);
    },
  };
  return pair;
}
