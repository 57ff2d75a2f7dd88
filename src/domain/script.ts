/**
 * A write is written once, as a script: a generator that yields each data move it needs ("does this
 * user exist", "take 2 of product 7 if there are 2") and decides every rule from the answers. Each
 * store runs the same script with a storage of its own that only answers the moves:
 *
 * - SQLite runs it synchronously (`runSync`) inside its write transaction, where no `await` may go;
 * - PostgreSQL runs it asynchronously (`runAsync`), one round trip per move.
 *
 * So the order of the checks, and every refusal, cannot drift between backends.
 */

// biome-ignore lint/suspicious/noExplicitAny: a storage method may take and return anything
type Method = (...args: any[]) => unknown;

/** One data move a script asks for: the storage method's name and its arguments. */
export type Need<S> = { [K in keyof S]: S[K] extends Method ? { op: K; args: Parameters<S[K]> } : never }[keyof S];

export type Script<S, R> = Generator<Need<S>, R, unknown>;

/** The same storage, answering through promises (PostgreSQL). */
export type AsyncStorage<S> = {
  [K in keyof S]: S[K] extends Method ? (...args: Parameters<S[K]>) => Promise<ReturnType<S[K]>> : never;
};

type Ask<S> = <K extends keyof S>(
  op: K,
  ...args: S[K] extends Method ? Parameters<S[K]> : never
) => Generator<Need<S>, S[K] extends Method ? ReturnType<S[K]> : never, unknown>;

function* ask(op: PropertyKey, ...args: unknown[]): Generator<unknown, unknown, unknown> {
  return yield { op, args };
}

/** `yield* ask("findUser", id)` asks the storage for `findUser(id)` and evaluates to its answer, typed. */
export function askerOf<S>(): Ask<S> {
  return ask as unknown as Ask<S>;
}

export type Progress<S, R> = IteratorResult<Need<S>, R>;

/** Runs a script to the end against a synchronous storage, from the start or from `from`. */
export function runSync<S, R>(script: Script<S, R>, storage: S, from: Progress<S, R> = script.next()): R {
  let next = from;
  while (!next.done) {
    const { op, args } = next.value;
    next = script.next((storage[op] as Method).apply(storage, args));
  }
  return next.value;
}

/** What a storage that knows only some answers says when it does not know this one. */
export const UNKNOWN: unique symbol = Symbol("unknown");

/** Some of a storage's moves, each answered when known (from memory, say) and UNKNOWN otherwise. */
export type KnownAnswers<S> = {
  [K in keyof S]?: S[K] extends Method ? (...args: Parameters<S[K]>) => ReturnType<S[K]> | typeof UNKNOWN : never;
};

/**
 * Answers the script's moves for as long as `known` knows the answer, synchronously, and returns
 * where it stopped: the result (a refusal is thrown), or the first move it cannot answer, for
 * `runSync` to go on from against the real storage.
 */
export function advanceSync<S, R>(script: Script<S, R>, from: Progress<S, R>, known: KnownAnswers<S>): Progress<S, R> {
  let next = from;
  while (!next.done) {
    const { op, args } = next.value;
    const method = known[op] as Method | undefined;
    if (method === undefined) return next;
    const answer = method.apply(known, args);
    if (answer === UNKNOWN) return next;
    next = script.next(answer);
  }
  return next;
}

/**
 * Answers the script's moves for as long as `storage` has the method asked for, and returns where it
 * stopped: the result, or the first move `storage` cannot answer (for another storage to go on from).
 */
export async function advance<S, R>(
  script: Script<S, R>,
  from: Progress<S, R>,
  storage: Partial<AsyncStorage<S>>,
): Promise<Progress<S, R>> {
  let next = from;
  while (!next.done) {
    const { op, args } = next.value;
    const method = storage[op] as Method | undefined;
    if (method === undefined) return next;
    next = script.next(await method.apply(storage, args));
  }
  return next;
}

/** Runs a script to the end against an asynchronous storage, from the start or from `from`. */
export async function runAsync<S, R>(
  script: Script<S, R>,
  storage: AsyncStorage<S>,
  from: Progress<S, R> = script.next(),
): Promise<R> {
  const last = await advance(script, from, storage);
  if (!last.done) throw new Error(`the storage cannot answer "${String(last.value.op)}"`);
  return last.value;
}
