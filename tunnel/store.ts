/**
 * Shared state of tunnel server instances on Deno KV: the route registry
 * (who owns each exposed name, on which instance, until when), the
 * connections per user, token buckets for rate limits, and audit events.
 *
 * Locally this is a SQLite file (`Deno.openKv(path)`); on Deno Deploy it is
 * the deployment's KV (`Deno.openKv()`), so every instance sees the same
 * routes and limits. Writes that depend on what was read use atomic
 * operations checked on the versionstamp, so two instances racing for one
 * name cannot both win.
 *
 * @module
 */

/** One exposed name in the registry. */
export interface RouteRecord {
  /** The exposed name (`app`). */
  name: string;
  /** The user (JWT `sub`) that owns it. */
  user: string;
  /** The server instance holding the SSH connection. */
  instance: string;
  /** The connection (correlation id) that registered it. */
  connection: string;
  /** Milliseconds since the epoch when the lease runs out unless renewed. */
  expires: number;
  /** Set once the owner released it (kept a while to count reconnects). */
  released?: boolean;
}

/** The outcome of {@linkcode TunnelStore.claimRoute}. */
export type ClaimResult =
  | {
    ok: true;
    /** The same user held the name before (a reconnect or takeover). */
    reconnect: boolean;
    /** The record replaced, if its lease was still live. */
    previous?: RouteRecord;
  }
  | { ok: false; owner: string };

/** One audit event. */
export interface AuditEvent {
  /** What happened (`auth.ok`, `auth.failed`, `tunnel.open`, ...). */
  type: string;
  /** Milliseconds since the epoch. */
  time?: number;
  /** Any detail. */
  [field: string]: unknown;
}

const AUDIT_TTL = 7 * 24 * 3600 * 1000;

/**
 * Several processes (or KV handles) on one SQLite file see "database is
 * locked" while another one writes; such operations are retried with a
 * growing delay (about 1.5 s in all) before the error is passed on.
 */
async function retryLocked<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0;; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (attempt >= 12 || !/locked|busy/i.test(String(e))) throw e;
      await new Promise((r) => setTimeout(r, Math.min(2 << attempt, 250)));
    }
  }
}
const RELEASED_TTL = 10 * 60 * 1000;

/**
 * Tunnel state on Deno KV.
 *
 * @example Claim, reclaim and release a name
 * ```ts
 * import { TunnelStore } from "@fynx/ssh/tunnel";
 * import assert from "node:assert/strict";
 *
 * const store = await TunnelStore.open(":memory:");
 * const lease = { instance: "i1", leaseMs: 30_000 };
 * assert.equal((await store.claimRoute("app", { ...lease, user: "alice", connection: "c1" })).ok, true);
 * assert.equal((await store.claimRoute("app", { ...lease, user: "bob", connection: "c2" })).ok, false);
 * const again = await store.claimRoute("app", { ...lease, user: "alice", connection: "c3" });
 * assert.equal(again.ok && again.reconnect, true);
 * await store.releaseRoute("app", "c3");
 * await store.close();
 * ```
 */
export class TunnelStore {
  /** The KV database. */
  readonly kv: Deno.Kv;
  readonly #owned: boolean;
  readonly #locks = new Map<string, Promise<unknown>>();
  #closed = false;

  /**
   * Wraps an open KV database. With `owned`, {@linkcode TunnelStore.close}
   * closes it.
   */
  constructor(kv: Deno.Kv, options: { owned?: boolean } = {}) {
    this.kv = kv;
    this.#owned = options.owned ?? false;
  }

  /**
   * Opens KV at `path` (a file, `:memory:`, or nothing for Deno Deploy's
   * database).
   */
  static async open(path?: string): Promise<TunnelStore> {
    const kv = await Deno.openKv(path);
    return new TunnelStore(kv, { owned: true });
  }

  /** Runs `fn` after every earlier call for `key` (one instance). */
  #serial<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(key) ?? Promise.resolve();
    const run = () => retryLocked(fn);
    const next = prev.then(run, run);
    const tail = next.catch(() => {});
    this.#locks.set(key, tail);
    tail.then(() => {
      if (this.#locks.get(key) === tail) this.#locks.delete(key);
    });
    return next;
  }

  /**
   * Claims `name` for `user`. Free names, released or expired ones, and
   * names the same user holds (a reconnect: the new connection takes over)
   * succeed; a live lease of another user fails with its owner.
   */
  claimRoute(
    name: string,
    options: {
      user: string;
      instance: string;
      connection: string;
      leaseMs: number;
      now?: number;
    },
  ): Promise<ClaimResult> {
    return this.#serial(`route:${name}`, async () => {
      for (let attempt = 0; attempt < 20; attempt++) {
        const now = options.now ?? Date.now();
        const key = ["route", name];
        const entry = await this.kv.get<RouteRecord>(key);
        const old = entry.value;
        const live = old !== null && !old.released && old.expires > now;
        if (live && old.user !== options.user) {
          return { ok: false, owner: old.user };
        }
        const record: RouteRecord = {
          name,
          user: options.user,
          instance: options.instance,
          connection: options.connection,
          expires: now + options.leaseMs,
        };
        const res = await this.kv.atomic().check(entry).set(key, record)
          .commit();
        if (res.ok) {
          return {
            ok: true,
            reconnect: old !== null && old.user === options.user,
            previous: live ? old : undefined,
          };
        }
      }
      throw new Error(`Cannot claim route ${name}: too much contention`);
    });
  }

  /**
   * Extends the lease of `name` if `connection` still owns it; false when
   * another connection took it over (or it is gone).
   */
  renewRoute(
    name: string,
    connection: string,
    leaseMs: number,
  ): Promise<boolean> {
    return this.#serial(`route:${name}`, async () => {
      const key = ["route", name];
      const entry = await this.kv.get<RouteRecord>(key);
      const old = entry.value;
      if (old === null || old.released || old.connection !== connection) {
        return false;
      }
      const res = await this.kv.atomic().check(entry).set(key, {
        ...old,
        expires: Date.now() + leaseMs,
      }).commit();
      return res.ok;
    });
  }

  /**
   * Releases `name` if `connection` owns it. The record stays (marked
   * released) for ten minutes so a reconnect of the same user is known.
   */
  releaseRoute(name: string, connection: string): Promise<void> {
    return this.#serial(`route:${name}`, async () => {
      if (this.#closed) return;
      const key = ["route", name];
      const entry = await this.kv.get<RouteRecord>(key);
      const old = entry.value;
      if (old === null || old.connection !== connection) return;
      await this.kv.atomic().check(entry).set(
        key,
        { ...old, released: true },
        { expireIn: RELEASED_TTL },
      ).commit();
    });
  }

  /** The live record of `name`, or null if free. */
  async getRoute(name: string, now: number = Date.now()): Promise<
    RouteRecord | null
  > {
    const { value } = await retryLocked(() =>
      this.kv.get<RouteRecord>(["route", name])
    );
    if (value === null || value.released || value.expires <= now) return null;
    return value;
  }

  /**
   * Registers a tunnel connection of `user` unless it already has `limit`
   * live ones (on any instance). Returns false at the limit.
   */
  addConnection(
    user: string,
    id: string,
    options: { limit: number; leaseMs: number; instance: string },
  ): Promise<boolean> {
    return this.#serial(`conn:${user}`, async () => {
      const now = Date.now();
      let live = 0;
      for await (
        const e of this.kv.list<{ expires: number }>({
          prefix: ["conn", user],
        })
      ) {
        if (e.value.expires > now) live++;
        else await this.kv.delete(e.key);
      }
      if (live >= options.limit) return false;
      await this.kv.set(["conn", user, id], {
        expires: now + options.leaseMs,
        instance: options.instance,
      }, { expireIn: options.leaseMs * 2 });
      return true;
    });
  }

  /** Extends a connection's lease. */
  async renewConnection(
    user: string,
    id: string,
    options: { leaseMs: number; instance: string },
  ): Promise<void> {
    await retryLocked(() =>
      this.kv.set(["conn", user, id], {
        expires: Date.now() + options.leaseMs,
        instance: options.instance,
      }, { expireIn: options.leaseMs * 2 })
    );
  }

  /** Forgets a connection. */
  async removeConnection(user: string, id: string): Promise<void> {
    if (this.#closed) return;
    await retryLocked(() => this.kv.delete(["conn", user, id]));
  }

  /**
   * Takes one token from the bucket `key` (capacity `capacity`, refilled
   * at `perSecond`). When empty, `retryAfter` says in how many seconds a
   * token will be there.
   */
  take(
    key: string,
    capacity: number,
    perSecond: number,
  ): Promise<{ ok: boolean; retryAfter: number }> {
    return this.#serial(`rate:${key}`, async () => {
      const k = ["rate", key];
      for (let attempt = 0; attempt < 10; attempt++) {
        const now = Date.now();
        const entry = await this.kv.get<{ tokens: number; at: number }>(k);
        const prev = entry.value ?? { tokens: capacity, at: now };
        const tokens = Math.min(
          capacity,
          prev.tokens + (now - prev.at) / 1000 * perSecond,
        );
        if (tokens < 1) {
          return {
            ok: false,
            retryAfter: Math.max(1, Math.ceil((1 - tokens) / perSecond)),
          };
        }
        const res = await this.kv.atomic().check(entry).set(k, {
          tokens: tokens - 1,
          at: now,
        }, { expireIn: Math.ceil(capacity / perSecond * 1000) + 60_000 })
          .commit();
        if (res.ok) return { ok: true, retryAfter: 0 };
      }
      // Heavy contention between instances: refuse rather than overrun.
      return { ok: false, retryAfter: 1 };
    });
  }

  /** Records an audit event (kept seven days). */
  async audit(event: AuditEvent): Promise<void> {
    if (this.#closed) return;
    const time = event.time ?? Date.now();
    const key = ["audit", time, crypto.randomUUID()];
    await retryLocked(() =>
      this.kv.set(key, { ...event, time }, { expireIn: AUDIT_TTL })
    );
  }

  /** The newest audit events, newest first. */
  async listAudit(limit = 100): Promise<AuditEvent[]> {
    const out: AuditEvent[] = [];
    for await (
      const e of this.kv.list<AuditEvent>({ prefix: ["audit"] }, {
        reverse: true,
        limit,
      })
    ) out.push(e.value);
    return out;
  }

  /** Waits for pending writes; closes the database if this store owns it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await Promise.all([...this.#locks.values()]);
    this.#closed = true;
    if (this.#owned) this.kv.close();
  }
}
