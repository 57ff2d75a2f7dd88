import { RedisClient } from "bun";
import { Unavailable, unavailable } from "./domain/errors.ts";

/** The default bound (REDIS_TIMEOUT_MS) on one command, connecting included. */
export const REDIS_TIMEOUT_MS = 200;

/** After a failed attempt to connect, the next waits this long, doubling up to the second figure. */
const RECONNECT_BACKOFF_MS = { first: 50, max: 2000 } as const;

/**
 * A connection to Redis that fails fast while Redis is away and comes back by itself, for as long as
 * the process lives: what the redis coupon strategy and the shared rate limits talk to Redis through.
 *
 * Bun's RedisClient left to its defaults queues commands while disconnected and retries the connection
 * about 20 times over 30 s, then gives up for good ("Max reconnection attempts reached"): a claim hangs
 * for 30 s, then every claim fails until a restart. So its own queue and retries are off, and:
 * - a command waits at most `timeoutMs` in all, connecting included, and otherwise fails with
 *   `unavailable.dependency("Redis")` (503 with Retry-After);
 * - a command that finds no connection makes one (a new client), one attempt at a time; after a failed
 *   attempt the next waits a backoff (50 ms doubling to 2 s, jittered), and commands meanwhile fail at once;
 * - a command that gets no answer in time closes its connection: a Redis that accepts and never answers
 *   (stopped, or a dead network) would otherwise hold every later command too.
 *
 * `generation` counts the connections made. A new one means Redis may have restarted empty, or run a
 * command whose answer never came back: whoever keeps state there reloads it (see redis-gate.ts).
 */
export class RedisLink {
  private client: RedisClient | null = null;
  private connecting: Promise<RedisClient> | null = null;
  private failedAttempts = 0;
  private nextAttemptAt = 0;
  private closed = false;
  generation = 0;

  constructor(
    private readonly url: string,
    readonly timeoutMs: number = REDIS_TIMEOUT_MS,
  ) {}

  /** Runs one command; Redis's own error replies (a bug in a script, say) are thrown as they are. */
  async send(command: string, args: string[]): Promise<unknown> {
    let timer: Timer | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Redis did not answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    let used: RedisClient | null = null;
    const answer = async () => {
      used = this.client?.connected ? this.client : await this.connect();
      return used.send(command, args);
    };
    try {
      return await Promise.race([answer(), deadline]);
    } catch (error) {
      if (error instanceof Unavailable) throw error;
      if (isReply(error) && !isBusyReply(error)) throw error;
      if (used !== null && !isReply(error)) this.lose(used);
      throw unavailable.dependency("Redis", error);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes the connection; commands then fail with Unavailable. */
  close(): void {
    this.closed = true;
    this.client?.close();
    this.client = null;
  }

  private connect(): Promise<RedisClient> {
    if (this.connecting !== null) return this.connecting;
    if (this.closed) return Promise.reject(unavailable.dependency("Redis", new Error("the connection is closed")));
    const wait = this.nextAttemptAt - Date.now();
    if (wait > 0) {
      return Promise.reject(unavailable.dependency("Redis", new Error(`next connection attempt in ${wait} ms`)));
    }
    this.client?.close();
    this.client = null;
    const client = new RedisClient(this.url, {
      autoReconnect: false,
      enableOfflineQueue: false,
      connectionTimeout: this.timeoutMs,
    });
    this.connecting = client
      .connect()
      .then(
        () => {
          if (this.closed) throw new Error("the connection is closed");
          this.client = client;
          this.failedAttempts = 0;
          this.generation++;
          return client;
        },
        (error: unknown) => {
          client.close();
          this.backOff();
          throw unavailable.dependency("Redis", error);
        },
      )
      .finally(() => {
        this.connecting = null;
      });
    return this.connecting;
  }

  /** The connection gave no answer in time or broke: drop it, and connect again after a backoff. */
  private lose(client: RedisClient): void {
    client.close();
    if (this.client === client) this.client = null;
    this.backOff();
  }

  private backOff(): void {
    this.failedAttempts++;
    const delay = Math.min(RECONNECT_BACKOFF_MS.first * 2 ** (this.failedAttempts - 1), RECONNECT_BACKOFF_MS.max);
    this.nextAttemptAt = Date.now() + delay * (0.5 + Math.random() / 2);
  }
}

/** Redis answered, with an error reply. */
function isReply(error: unknown): boolean {
  return (error as { code?: unknown }).code === "ERR_REDIS_SERVER_ERROR";
}

/** Replies that mean "not now" rather than "wrong": loading its data after a restart, a script running too long. */
function isBusyReply(error: unknown): boolean {
  return /^(LOADING|BUSY|TRYAGAIN|MASTERDOWN)\b/.test(error instanceof Error ? error.message : "");
}
