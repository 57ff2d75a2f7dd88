/** Stores keep epoch milliseconds; the API shows ISO-8601 UTC strings. */
export function isoOf(ms: number): string {
  return new Date(ms).toISOString();
}

export function isoOrNull(ms: number | null): string | null {
  return ms === null ? null : isoOf(ms);
}

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
