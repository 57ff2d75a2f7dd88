import { unavailable } from "../../domain/errors.ts";
import { type Store, storeOperations } from "../port.ts";

/**
 * PostgreSQL's faults as a caller sees them. A server that cannot be reached, went away in the middle,
 * refuses new work (shutting down, starting up, out of connections) or is too busy to answer within
 * the statement timeout is a fault of the dependency, not of the request: 503 SERVICE_UNAVAILABLE with
 * Retry-After, logged at warn, and the pool connects again by itself (database.ts: connect timeout and
 * reconnection backoff). A full disk is 507 STORAGE_FULL. Anything else is left as it is: a refusal
 * the domain already answered, or a bug (500).
 */

/** The driver's (postgres.js) and the socket's codes for a connection that could not be made or broke. */
const connectionCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "CONNECT_TIMEOUT",
  "ANSWER_TIMEOUT", // a connection that owed answers heard nothing for too long (database.ts)
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
]);

/** SQLSTATEs of a server that is going away, not accepting, or out of room for another session or statement. */
const unavailableStates = new Set([
  "57P01", // admin_shutdown: the server is stopping, or an operator ended the session
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now: starting up, or in recovery
  "53300", // too_many_connections
  "53200", // out_of_memory
  "57014", // query_canceled: PG_STATEMENT_TIMEOUT_MS passed (a busy server, or a lock held elsewhere)
]);

const DISK_FULL = "53100";

/**
 * `error` as a caller should see it: Unavailable for the faults above, else `error` itself. The code
 * may sit on a cause (drizzle wraps the driver's error in its own).
 */
export function pgFault(error: unknown): unknown {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code !== "string") continue;
    if (code === DISK_FULL) return unavailable.storageFull(e);
    if (connectionCodes.has(code) || unavailableStates.has(code) || code.startsWith("08")) {
      return unavailable.dependency("PostgreSQL", e);
    }
  }
  return error;
}

/**
 * Makes each of the store's operations answer PostgreSQL's faults as pgFault says, in one place rather
 * than in each method; called once, by the PostgreSQL store's constructor.
 */
export function answeringPgFaults(store: Store): void {
  for (const operation of storeOperations) {
    if (operation === "close") continue;
    const method = (store[operation] as (...args: unknown[]) => Promise<unknown>).bind(store);
    const answering = (...args: unknown[]) =>
      method(...args).catch((error: unknown) => {
        throw pgFault(error);
      });
    Object.defineProperty(store, operation, { value: answering, writable: true, configurable: true });
  }
}
